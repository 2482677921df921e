"""Cost accounting of a network built from dcpnas ops: parameters, memory (MBits), FLOPs, BOPs, OPs.

Conventions (Bi-Real Net / ReActNet; docs/METHOD.md#decision-cost):

* **FLOPs** are the real-valued multiply-accumulates (MACs) of convolution and linear layers; one MAC
  counts as one FLOP. BatchNorm, PReLU, pooling, additions, bias terms and the per-channel β scaling
  are not counted (they are folded or negligible, as in the papers the numbers are compared with).
* **BOPs** are the MACs of a convolution whose weights *and* input activations are both 1-bit: only
  such a layer can run as XNOR + popcount.
* A :class:`~dcpnas.binary.BinaryConv2d` with 1-bit weights but **real input activations** (W1A32:
  the depthwise and preprocessing convs of the ``official`` binarisation scope) cannot use
  XNOR-popcount, so its MACs are counted as **FLOPs**; its weights still take 1 bit each in memory.
  Likewise a BinaryConv2d running with real weights and binary activations (W32A1, step 1 of the
  two-step recipe) counts FLOPs and 32-bit weights.
* **OPs = FLOPs + BOPs / 64** (one 64-bit word performs 64 binary operations).
* **Memory** = 1 bit per binary weight + 32 bits per real parameter: β, conv/linear biases,
  BatchNorm affine parameters, PReLU slopes, the real-valued stem and the classifier. Buffers (BN
  running statistics) are not parameters and are not counted. The classifier's share is reported
  separately (memory with and without it). MBits = bits / 1e6.
* Architecture parameters α of a supernet are not part of any deployed network; they are reported
  on their own (``arch_params``) and left out of every total.

Sizes come from forward hooks on one image, so whatever a module actually computes is counted
(a shared module called twice counts its MACs twice, its parameters once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn as nn

from ..binary import BinaryConv2d
from ..errors import ConfigError

__all__ = ["GroupCost", "LayerCost", "Profile", "profile_genotype", "profile_model"]

BITS_REAL = 32
WORD_BITS = 64  # BOPs per OP

# Precision labels: weight bits / activation bits of a layer.
W1A1, W1A32, W32A1, W32A32 = "W1A1", "W1A32", "W32A1", "W32A32"

# Summary groups, in table order.
GROUPS = {
    "real conv": "real conv (FLOPs)",
    W1A1: "1-bit conv, binary activations W1A1 (BOPs)",
    W1A32: "1-bit-weight conv, real activations W1A32 (FLOPs)",
    W32A1: "real-weight conv, binary activations W32A1 (FLOPs)",
    "linear": "linear (FLOPs)",
    "classifier": "classifier (FLOPs)",
    "other": "other real params (BN, PReLU, ...)",
}


class _Costs:
    """The derived measures shared by a layer, a group and a whole profile: each holds
    ``binary_params``, ``real_params``, ``flops`` and ``bops``."""

    @property
    def params(self) -> int:
        return self.binary_params + self.real_params

    @property
    def bits(self) -> int:
        """1 bit per binary weight, 32 per real parameter."""
        return self.binary_params + BITS_REAL * self.real_params

    @property
    def ops(self) -> float:
        """OPs = FLOPs + BOPs/64."""
        return self.flops + self.bops / WORD_BITS


@dataclass(frozen=True)
class LayerCost(_Costs):
    """The cost of one convolution or linear layer (summed over its calls in one forward pass)."""

    name: str
    type: str
    precision: str  # W1A1 | W1A32 | W32A1 | W32A32
    group: str  # a key of GROUPS
    binary_params: int  # 1-bit weights
    real_params: int  # 32-bit parameters (real weights, β, bias)
    flops: int
    bops: int
    output_shape: tuple[int, ...]  # of the last call, batch dimension dropped
    calls: int

    @property
    def kind(self) -> str:
        """``binary`` when the weights are stored as 1 bit, else ``real``."""
        return "binary" if self.binary_params else "real"

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "kind": self.kind, "precision": self.precision,
                "group": self.group, "binary_params": self.binary_params,
                "real_params": self.real_params, "bits": self.bits, "flops": self.flops,
                "bops": self.bops, "ops": self.ops, "output_shape": list(self.output_shape),
                "calls": self.calls}


@dataclass(frozen=True)
class GroupCost(_Costs):
    """Summed costs of the layers of one summary group."""

    group: str
    label: str
    layers: int
    binary_params: int
    real_params: int
    flops: int
    bops: int


@dataclass
class Profile(_Costs):
    """Per-layer costs of one network and their totals (see the module docstring for conventions)."""

    input_shape: tuple[int, ...]
    layers: list[LayerCost]
    other_params: dict[str, int]  # real parameters outside conv/linear layers, by module type
    arch_params: int = 0
    classifier: str | None = None  # name of the layer counted as the classifier
    info: dict = field(default_factory=dict)  # what was profiled (genotype, size, dataset, ...)

    # -- totals ------------------------------------------------------------------------------
    @property
    def binary_params(self) -> int:
        return sum(r.binary_params for r in self.layers)

    @property
    def real_params(self) -> int:
        return sum(r.real_params for r in self.layers) + sum(self.other_params.values())

    @property
    def classifier_bits(self) -> int:
        return sum(r.bits for r in self.layers if r.group == "classifier")

    @property
    def classifier_params(self) -> int:
        return sum(r.params for r in self.layers if r.group == "classifier")

    @property
    def bits_without_classifier(self) -> int:
        return self.bits - self.classifier_bits

    @property
    def mbits(self) -> float:
        return self.bits / 1e6

    @property
    def mbits_without_classifier(self) -> float:
        return self.bits_without_classifier / 1e6

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.layers)

    @property
    def bops(self) -> int:
        return sum(r.bops for r in self.layers)

    def groups(self) -> list[GroupCost]:
        """Per-group sums in table order; empty groups are left out."""
        out = []
        for key, label in GROUPS.items():
            if key == "other":
                n = sum(self.other_params.values())
                if n:
                    out.append(GroupCost(key, label, 0, 0, n, 0, 0))
                continue
            rows = [r for r in self.layers if r.group == key]
            if rows:
                out.append(GroupCost(key, label, len(rows), sum(r.binary_params for r in rows),
                                     sum(r.real_params for r in rows), sum(r.flops for r in rows),
                                     sum(r.bops for r in rows)))
        return out

    # -- output ------------------------------------------------------------------------------
    def totals(self) -> dict:
        return {"binary_params": self.binary_params, "real_params": self.real_params,
                "params": self.params, "bits": self.bits, "mbits": self.mbits,
                "bits_without_classifier": self.bits_without_classifier,
                "mbits_without_classifier": self.mbits_without_classifier,
                "classifier_params": self.classifier_params, "classifier_bits": self.classifier_bits,
                "flops": self.flops, "bops": self.bops, "ops": self.ops,
                "arch_params": self.arch_params}

    def to_dict(self) -> dict:
        return {"info": dict(self.info), "input_shape": list(self.input_shape),
                "conventions": {"ops": "FLOPs + BOPs/64",
                                "memory": "1 bit per binary weight + 32 bits per real parameter",
                                "w1a32": "1-bit weights with real activations count MACs as FLOPs"},
                "totals": self.totals(),
                "groups": [{"group": g.group, "label": g.label, "layers": g.layers,
                            "binary_params": g.binary_params, "real_params": g.real_params,
                            "bits": g.bits, "flops": g.flops, "bops": g.bops, "ops": g.ops}
                           for g in self.groups()],
                "other_params": dict(self.other_params),
                "layers": [r.to_dict() for r in self.layers]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, per_layer: bool = False) -> str:
        """An aligned text table: the grouped summary, then totals; every layer with ``per_layer``."""
        lines = []
        if self.info:
            lines.append("  ".join(f"{k}={v}" for k, v in self.info.items()))
        lines.append(f"input {'x'.join(map(str, self.input_shape))}")
        lines.append("")
        if per_layer:
            head = ("layer", "type", "precision", "output", "1-bit params", "real params", "bits",
                    "FLOPs", "BOPs")
            body = [(r.name, r.type, r.precision, "x".join(map(str, r.output_shape)),
                     _count(r.binary_params), _count(r.real_params), _count(r.bits),
                     _count(r.flops), _count(r.bops)) for r in self.layers]
            body += [(f"({t})", t, W32A32, "", "0", _count(n), _count(BITS_REAL * n), "0", "0")
                     for t, n in self.other_params.items()]
            lines += _align(head, body)
            lines.append("")
        head = ("group", "layers", "1-bit params", "real params", "MBits", "FLOPs", "BOPs", "OPs")
        body = [(g.label, str(g.layers) if g.layers else "", _count(g.binary_params),
                 _count(g.real_params), f"{g.bits / 1e6:.3f}", _count(g.flops), _count(g.bops),
                 _count(g.ops)) for g in self.groups()]
        body.append(("total", str(len(self.layers)), _count(self.binary_params),
                     _count(self.real_params), f"{self.mbits:.3f}", _count(self.flops),
                     _count(self.bops), _count(self.ops)))
        lines += _align(head, body, rule_before_last=True)
        lines.append("")
        lines.append(f"memory  {self.mbits:.3f} MBits ({self.mbits_without_classifier:.3f} MBits "
                     f"without the classifier, which holds {_count(self.classifier_params)} params)")
        lines.append(f"OPs     {_count(self.ops)} = FLOPs {_count(self.flops)} + BOPs "
                     f"{_count(self.bops)} / {WORD_BITS}")
        if self.arch_params:
            lines.append(f"(architecture parameters α: {self.arch_params}, not counted)")
        return "\n".join(lines)


def _count(n: float) -> str:
    """Compact count: exact below 10 000, else with a K/M/G suffix and 3 significant decimals."""
    if abs(n) < 10_000:
        return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3f}{suffix}"
    return str(n)  # unreachable


def _align(head: Sequence[str], body: Sequence[Sequence[str]], rule_before_last: bool = False):
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]

    def fmt(row):
        # First column left-aligned (names), numbers right-aligned.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [fmt(head), rule]
    for i, row in enumerate(body):
        if rule_before_last and i == len(body) - 1:
            out.append(rule)
        out.append(fmt(row))
    return out


# -- counting ----------------------------------------------------------------------------------
def _precision(m: nn.Module) -> str:
    if isinstance(m, BinaryConv2d):
        w = "W1" if m.binary_weights else "W32"
        a = "A1" if m.binary_activations else "A32"
        return w + a
    return W32A32


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    """Multiply-accumulates of one call, per image."""
    per_image = out[0].numel() if out.dim() > 1 else out.numel()
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        return per_image * (m.in_channels // m.groups) * kh * kw
    return per_image * m.in_features  # nn.Linear


def _unwrap(model: nn.Module) -> nn.Module:
    # DDP / DataParallel hold the network as .module; profile the network itself.
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def profile_model(model: nn.Module, input_shape: Sequence[int], *, info: dict | None = None) -> Profile:
    """Profile ``model`` (a DerivedNetwork, a Supernet or any module of conv/linear layers).

    input_shape: ``(C, H, W)`` of one image. The model runs once, in eval mode and without
    gradients, on a zero image placed on the model's own device (the ``meta`` device works and
    allocates nothing); module training flags are restored afterwards.
    """
    model = _unwrap(model)
    shape = tuple(int(s) for s in input_shape)
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32

    arch_ids = {id(p) for p in model.arch_parameters()} if hasattr(model, "arch_parameters") else set()
    stats: dict[str, dict] = {}
    order: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            s = stats.setdefault(name, {"macs": 0, "calls": 0})
            if name not in order:
                order.append(name)
            s["macs"] += _macs(module, output)
            s["calls"] += 1
            s["shape"] = tuple(output.shape[1:])
        return record

    costed = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    handles = [m.register_forward_hook(hook(name)) for name, m in costed.items()]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode

    # The classifier is the last linear layer the forward pass ran (our networks have one).
    linear_run = [n for n in order if isinstance(costed[n], nn.Linear)]
    classifier = linear_run[-1] if linear_run else None

    seen: set[int] = set(arch_ids)
    layers = []
    # Layers in execution order; layers that never ran keep their parameters (and zero MACs).
    for name in order + [n for n in costed if n not in stats]:
        m = costed[name]
        s = stats.get(name, {"macs": 0, "calls": 0, "shape": ()})
        precision = _precision(m)
        binary_params = real_params = 0
        for pname, p in m.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if pname == "weight" and precision in (W1A1, W1A32):
                binary_params += p.numel()
            else:
                real_params += p.numel()
        if isinstance(m, nn.Linear):
            group = "classifier" if name == classifier else "linear"
        elif isinstance(m, BinaryConv2d) and precision != W32A32:
            group = precision
        else:
            group = "real conv"
        macs = s["macs"]
        layers.append(LayerCost(name, type(m).__name__, precision, group, binary_params, real_params,
                                flops=0 if precision == W1A1 else macs,
                                bops=macs if precision == W1A1 else 0,
                                output_shape=s["shape"], calls=s["calls"]))

    costed_ids = {id(m) for m in costed.values()}
    other: dict[str, int] = {}
    for m in model.modules():
        if id(m) in costed_ids:
            continue
        for p in m.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            other[type(m).__name__] = other.get(type(m).__name__, 0) + p.numel()

    return Profile(shape, layers, other, arch_params=sum(p.numel() for p in model.parameters()
                                                            if id(p) in arch_ids),
                   classifier=classifier, info=dict(info or {}))


def profile_genotype(genotype, size: str = "L", dataset: str = "imagenet", *, binary: bool = True,
                     scope: str = "official", device: str | torch.device = "cpu") -> Profile:
    """Profile the derived network of ``genotype`` at ``size`` for ``dataset``.

    The dataset fixes the input (channels, image size), the classes and the layout: ``imagenet``
    uses the ImageNet layout at 224×224, every other dataset the CIFAR layout. The network is built
    on ``device``: the CPU takes about a second for DCP-NAS-L (≈60 MB of weights); ``"meta"``
    allocates nothing but runs slower (every op goes through Python shape functions).
    """
    from ..data.registry import dataset_info
    from ..space.genotype import load_genotype
    from ..space.network import SIZES, build_network
    from ..space.primitives import SCOPES

    if size not in SIZES:
        raise ConfigError(f"unknown network size {size!r}; expected one of {', '.join(SIZES)}")
    if scope not in SCOPES:
        raise ConfigError(f"unknown binarisation scope {scope!r}; expected one of {', '.join(SCOPES)}")
    g = load_genotype(genotype)
    ds = dataset_info(dataset)
    layout = "imagenet" if dataset == "imagenet" else "cifar"
    from ..utils.budget import check_budget, network_estimate

    net_size = SIZES[size]
    check_budget(network_estimate(f"profiling {size} on {dataset} ({ds.image_size}px images)", C=net_size.C,
                                  layers=net_size.layers, image_size=ds.image_size, in_channels=ds.channels,
                                  num_classes=ds.num_classes, layout=layout, training=False))
    with torch.device(device):
        net = build_network(g, size, binary=binary, in_channels=ds.channels,
                            num_classes=ds.num_classes, layout=layout, scope=scope)
    info = {"genotype": genotype if isinstance(genotype, str) and "Genotype(" not in genotype
            else "custom", "size": size, "C": net.C, "layers": net.layers, "dataset": dataset,
            "layout": layout, "binary": binary}
    if binary:
        info["scope"] = scope
    return profile_model(net, (ds.channels, ds.image_size, ds.image_size), info=info)
