"""Curvature products H_G·v for the tangent-propagation gradient (Eqs. 4.33, 4.36–4.41; Decision C).

∇_α̂ D = H_G · ∂D/∂g_C with H_G = ∂²G/∂α̂² (symmetric), so one product serves every distance.
Three ways to form it:

* ``exact``  — Pearlmutter: differentiate ⟨g_C, v⟩ once more (double backward). The reference and
  the "w/o GGN" ablation; needs g_C computed with ``create_graph=True`` (under
  ``consistent_derivatives`` for a Child with PReLU layers).
* ``ggn``    — the Generalized Gauss-Newton product Jᵀ H_z J v, J = ∂(child logits)/∂α̂, H_z the
  Hessian of G w.r.t. the logits (negative semi-definite, so the sign matches H_G). J v by
  forward-mode AD (dual tensors), Jᵀu by one VJP through the graph of the main Child
  forward: one extra forward, no second-order backward. Equal to ``exact`` where the Child's
  softmax equals the Parent's (the residual term (p − p̂)·∂²z vanishes there). With a curvature
  fraction f < 1 the product is taken on the first ⌈f·B⌉ images of the α̂-batch in one forward
  of its own carrying both J v and the graph for Jᵀu (Hessian-free's curvature mini-batch).
* ``fisher`` — the book's fast path (Eqs. 4.36–4.41): s·(1/K) Σ_k ⟨g_k, v⟩ g_k with s = −1 by
  default (G is a log-likelihood to maximise, so H_G ≈ −F). K = 1 uses g_1 = g_C: O(d) work and no
  extra pass at all. K > 1 uses the gradients of the K micro-batch means of G, taken through the
  graph of the one full-batch forward (so Σ_k (n_k/B) g_k = g_C exactly and BN statistics stay
  those of the full batch).

All products are returned detached, as lists shaped like α.
"""

from __future__ import annotations

import functools
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.modules import modules_of_type
from ...utils.registry import Registry


TensorList = Sequence[torch.Tensor]


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _dot(a: TensorList, b: TensorList) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


@functools.cache
def _forward_ad_ready() -> None:
    """Load torch's jvp decompositions once, quietly, before the first dual tensor.

    torch loads them on a process's first ``make_dual`` through ``torch.jit.script``, which torch
    2.14 itself deprecates: every search log and benchmark opened with that FutureWarning, torch's
    internals and nothing the user can act on. Only that warning is silenced, only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
        with fwAD.dual_level():
            fwAD.make_dual(torch.zeros(()), torch.zeros(()))


def _dual_level():
    """``fwAD.dual_level()`` for the curvature products, torch's jvp decompositions loaded first."""
    _forward_ad_ready()
    return fwAD.dual_level()


# -- BN running statistics during extra forwards ----------------------------------------------------
@contextmanager
def frozen_bn_statistics(module: nn.Module) -> Iterator[None]:
    """Run extra forwards without touching BN running statistics.

    A BN layer in training mode normally updates ``running_mean``/``running_var`` and
    ``num_batches_tracked`` on every forward, so a curvature forward on the same batch would count
    that batch twice. Switching ``track_running_stats`` off while in training mode keeps the
    output identical (training-mode BN normalises with batch statistics either way) and makes the
    layer skip the update. This is chosen over save/restore of the buffers because it copies
    nothing and because ``torch.func`` transforms refuse in-place updates of captured buffers
    (so the forward-mode pass works with either forward-AD API).
    Layers in eval mode are left alone (they use and keep their running statistics).
    """
    switched = [m for m in modules_of_type(module, _BatchNorm) if m.training and m.track_running_stats]
    for m in switched:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in switched:
            m.track_running_stats = True


@contextmanager
def consistent_derivatives(module: nn.Module) -> Iterator[None]:
    """Switch layers that offer it (``consistent_derivatives`` attribute, e.g. the Child's PReLU)
    to a form whose first and second derivatives follow one convention at their kinks.

    The exact curvature path builds its graph under this switch, so its double backward is the
    derivative of the same g_C that the other modes use (see ``space.ops.PReLU``).
    """
    switched = [m for m in module.modules()
                if getattr(m, "consistent_derivatives", None) is False]
    for m in switched:
        m.consistent_derivatives = True
    try:
        yield
    finally:
        for m in switched:
            m.consistent_derivatives = False


# -- exact ----------------------------------------------------------------------------------------
def exact_hvp(g_C: TensorList, alphas: TensorList, v: TensorList, *,
              retain_graph: bool = False) -> list[torch.Tensor]:
    """H_G v = ∂⟨g_C, v⟩/∂α̂ by double backward (Pearlmutter). g_C needs ``create_graph=True``."""
    if not all(g.requires_grad for g in g_C):
        raise ValueError("exact curvature needs g_C computed with create_graph=True")
    hv = torch.autograd.grad(list(g_C), list(alphas), grad_outputs=[t.detach() for t in v],
                             retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(a) if h is None else h.detach() for h, a in zip(hv, alphas)]


# -- GGN --------------------------------------------------------------------------------------------
def logit_hessian_product(logits: torch.Tensor, u: torch.Tensor, *, temperature: float = 1.0,
                          label_ce_weight: float = 0.0) -> torch.Tensor:
    """H_z u for G̃ = (1/B) Σ_b [Σ_n p_bn log p̂_bn − w·CE_b] as a function of the logits z.

    Per sample (block-diagonal), with p̂ = softmax(z/T) and p̂₁ = softmax(z):
      H_z u_b = −[(p̂⊙u_b − p̂ ⟨p̂, u_b⟩)/T² + w (p̂₁⊙u_b − p̂₁ ⟨p̂₁, u_b⟩)] / B.
    Neither term depends on the Parent's p or the labels: the soft-target and label
    cross-entropies have the softmax covariance as their logit Hessian.
    """
    dtype = torch.promote_types(u.dtype, torch.float32)  # half-precision tangents: fp32 math
    z, u = logits.detach().to(dtype), u.to(dtype)
    B = z.shape[0]

    def cov(q: torch.Tensor) -> torch.Tensor:  # (diag(q) − q qᵀ) u, row by row
        return q * u - q * (q * u).sum(dim=1, keepdim=True)

    T = float(temperature)
    out = cov(F.softmax(z / T, dim=1)) / (T * T)
    if label_ce_weight:
        out = out + label_ce_weight * cov(F.softmax(z, dim=1))
    return -out / B


def jacobian_vector_product(child: nn.Module, x: torch.Tensor, alphas: TensorList,
                            v: TensorList) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, J v) with J = ∂ child(x, α̂)/∂α̂, by forward-mode AD; BN statistics untouched.

    Dual tensors (``torch.autograd.forward_ad``) carry v through ``child(x, alphas=...)``: the same
    forward-mode AD as ``torch.func.jvp``, with the same results, but without wrapping every op,
    which makes it cheaper (its cost: benchmarks/README.md, "bench_ggn_parts.py").
    """
    net = _unwrap(child)
    # no_grad: forward-mode AD is unaffected, and no reverse graph is recorded over the weights.
    with torch.no_grad(), frozen_bn_statistics(net), _dual_level():
        duals = [fwAD.make_dual(a.detach(), t.detach().to(a.dtype)) for a, t in zip(alphas, v)]
        logits, jv = fwAD.unpack_dual(net(x, alphas=duals))
    if jv is None:  # the logits do not depend on α̂ at all
        jv = torch.zeros_like(logits)
    return logits, jv


def ggn_product(child: nn.Module, x: torch.Tensor, alphas: TensorList, v: TensorList, *,
                child_logits: Optional[torch.Tensor] = None, temperature: float = 1.0,
                label_ce_weight: float = 0.0, retain_graph: bool = False,
                g_C: Optional[TensorList] = None, logit_grad: Optional[torch.Tensor] = None
                ) -> list[torch.Tensor]:
    """Jᵀ H_z J v: the Generalized Gauss-Newton approximation of H_G applied to v.

    child_logits: the Child's logits on ``x`` still attached to the graph of ``alphas`` (from the
      forward that gave g_C, kept with ``retain_graph=True``); Jᵀu is one VJP through it. Without
      them ``fresh_ggn_product`` runs one forward of its own (BN statistics untouched).
    g_C, logit_grad: when g_C was taken as Jᵀu with ``u = logit_grad`` a leaf and
      ``create_graph=True`` (``GGN(jvp="reverse")``), J v is the derivative of ⟨g_C, v⟩ w.r.t. u:
      a double VJP through the backward graph the step already holds (the R-op), instead of a
      forward-mode pass that re-runs the Child forward.
    Otherwise the forward-mode pass must see the same function as that graph: same ``x``, same
    weights, same BN mode; the logits it returns are the ones H_z is evaluated at.
    """
    if child_logits is None or not child_logits.requires_grad:
        return fresh_ggn_product(child, x, alphas, v, temperature=temperature,
                                 label_ce_weight=label_ce_weight)
    if logit_grad is not None and g_C is not None:
        jv, = torch.autograd.grad(list(g_C), logit_grad, grad_outputs=[t.detach().to(g) for t, g
                                                                      in zip(v, g_C)],
                                  retain_graph=True)
        logits = child_logits
    else:
        logits, jv = jacobian_vector_product(child, x, alphas, v)
    u = logit_hessian_product(logits, jv, temperature=temperature,
                              label_ce_weight=label_ce_weight)
    jtu = torch.autograd.grad(child_logits, list(alphas), grad_outputs=u.to(child_logits.dtype),
                              retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(a) if g is None else g.detach() for g, a in zip(jtu, alphas)]


def subbatch_size(batch: int, fraction: float) -> int:
    """⌈fraction·batch⌉ images, at least 2 (a training-mode BN needs two) and at most ``batch``."""
    return min(batch, max(2, math.ceil(fraction * batch - 1e-9)))


def fresh_ggn_product(child: nn.Module, x: torch.Tensor, alphas: TensorList, v: TensorList, *,
                      temperature: float = 1.0, label_ce_weight: float = 0.0
                      ) -> list[torch.Tensor]:
    """Jᵀ H_z J v on ``x`` from one forward of its own that yields both J v and Jᵀu.

    The forward runs on dual tensors (α̂, v) with the reverse graph recorded, so its tangent is
    J v and its primal the logits whose VJP gives Jᵀu: one forward-mode pass and one backward,
    where ``ggn_product`` without attached logits runs a forward-mode pass and a second forward.
    BN statistics are those of ``x`` and are left untouched (the curvature sub-batch, Decision C).
    """
    net = _unwrap(child)
    with torch.enable_grad(), frozen_bn_statistics(net), _dual_level():
        duals = [fwAD.make_dual(a, t.detach().to(a.dtype)) for a, t in zip(alphas, v)]
        logits, jv = fwAD.unpack_dual(net(x, alphas=duals))
    if jv is None or not logits.requires_grad:  # the logits do not depend on α̂
        return [torch.zeros_like(a) for a in alphas]
    u = logit_hessian_product(logits, jv.detach(), temperature=temperature,
                              label_ce_weight=label_ce_weight)
    jtu = torch.autograd.grad(logits, list(alphas), grad_outputs=u.to(logits.dtype),
                              allow_unused=True)
    return [torch.zeros_like(a) if g is None else g.detach() for g, a in zip(jtu, alphas)]


# -- Fisher -----------------------------------------------------------------------------------------
def microbatch_gradients(per_sample_objective: torch.Tensor, alphas: TensorList,
                         microbatches: int, *, retain_graph: bool = False
                         ) -> list[list[torch.Tensor]]:
    """g_k = ∂/∂α̂ of the mean of ``per_sample_objective`` over micro-batch k, k = 1..K.

    The batch is cut into K contiguous, near-equal parts (``tensor_split``). All K gradients come
    from one batched backward (``is_grads_batched``) through the existing graph: no extra forward.
    """
    B = per_sample_objective.shape[0]
    K = int(microbatches)
    if not 1 <= K <= B:
        raise ValueError(f"fisher micro-batches must be in 1..{B} (the batch size), got {K}")
    weights = per_sample_objective.new_zeros(K, B)
    for k, idx in enumerate(torch.arange(B).tensor_split(K)):
        weights[k, idx] = 1.0 / len(idx)
    grads = torch.autograd.grad(per_sample_objective, list(alphas), grad_outputs=weights,
                                retain_graph=retain_graph, is_grads_batched=True,
                                allow_unused=True)
    grads = [torch.zeros((K, *a.shape), dtype=a.dtype, device=a.device) if g is None else g.detach()
             for g, a in zip(grads, alphas)]
    return [[g[k] for g in grads] for k in range(K)]


def fisher_product(v: TensorList, gradients: Sequence[TensorList], *,
                   sign: float = -1.0) -> list[torch.Tensor]:
    """s·F̂ v with F̂ = (1/K) Σ_k g_k g_kᵀ, i.e. s·(1/K) Σ_k ⟨g_k, v⟩ g_k (Eqs. 4.36–4.41)."""
    K = len(gradients)
    if K == 0:
        raise ValueError("the Fisher product needs at least one gradient")
    out = [torch.zeros_like(t) for t in v]
    for g in gradients:
        coeff = _dot(g, v) * (sign / K)
        for o, gi in zip(out, g):
            o.add_(coeff * gi)
    return out


# -- strategies -------------------------------------------------------------------------------------
@dataclass
class ChildGraph:
    """What a curvature product may use of one Child forward on the α̂-batch.

    child (bare module), x, alphas: the function and the point; child_logits and per_sample: the
    forward's outputs, still attached to the graph of ``alphas`` when the strategy asked for it
    (``retain_graph``); g_C: ∂G̃/∂α̂, attached when the strategy asked for ``create_graph``;
    logit_grad: the leaf u = ∂G̃/∂z that g_C = Jᵀu was taken through (``logit_graph``), else None.
    """

    child: nn.Module
    x: torch.Tensor
    alphas: TensorList
    child_logits: torch.Tensor
    per_sample: torch.Tensor
    g_C: TensorList
    retain: bool = False               # keep the graph after the product (several products)
    logit_grad: Optional[torch.Tensor] = None


class Curvature:
    """A way to form H_G·v (docs/METHOD.md, Decision C). Built once from the config.

    Class attributes say what the Child forward must keep for ``product``:
    create_graph (g_C differentiable again), retain_graph (the forward graph stays),
    logit_graph (g_C taken as Jᵀu through a leaf u = ∂G̃/∂z, differentiable in u),
    consistent (one derivative convention at kinks, ``consistent_derivatives``),
    full_precision (no autocast).
    """

    name = "?"
    create_graph = False
    retain_graph = False
    logit_graph = False
    consistent = False
    full_precision = False

    def product(self, graph: ChildGraph, v: TensorList) -> list[torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({opts})"


CURVATURES: Registry[type[Curvature]] = Registry("curvature mode")
register_curvature = CURVATURES.register


@register_curvature("exact")
class Exact(Curvature):
    """Pearlmutter's H_G v by double backward: the reference, the "w/o GGN" row of Table 4.3."""

    create_graph = True
    consistent = True
    full_precision = True

    def product(self, graph, v):
        return exact_hvp(graph.g_C, graph.alphas, v, retain_graph=graph.retain)


#: How the GGN forms J v: "forward", forward-mode AD (one more Child forward with dual tensors);
#: "reverse", the double VJP through the backward graph that gave g_C.
GGN_JVP = ("forward", "reverse")


@register_curvature("ggn")
class GGN(Curvature):
    """Jᵀ H_z J v; for G's softmax the true Fisher of Eq. 4.36 (the default, Decision C).

    jvp="forward" (default): J v by forward-mode AD. jvp="reverse": J v as the derivative of
    ⟨Jᵀu, v⟩ w.r.t. u on the graph of the g_C backward (docs/METHOD.md, Decision C), equal to
    1e-10 in float64 (tests/test_curvature.py); it saves a Child forward but keeps the backward
    graph, twice the peak memory (benchmarks/README.md, "bench_search_round.py").
    fraction < 1: the product on the first ``subbatch_size(B, fraction)`` images of the α̂-batch,
    from one forward of its own (``fresh_ggn_product``); g_C's graph is then not kept.
    """

    retain_graph = True

    def __init__(self, temperature: float = 1.0, label_ce_weight: float = 0.0,
                 jvp: str = "forward", fraction: float = 1.0):
        if jvp not in GGN_JVP:
            raise ValueError(f"ggn jvp must be one of {', '.join(GGN_JVP)}, got {jvp!r}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"ggn curvature fraction must be in (0, 1], got {fraction}")
        if fraction < 1.0 and jvp != "forward":
            raise ValueError("a ggn curvature sub-batch (fraction < 1) needs jvp='forward'")
        self.temperature, self.label_ce_weight = float(temperature), float(label_ce_weight)
        self.jvp, self.fraction = jvp, float(fraction)
        self.logit_graph = self.consistent = jvp == "reverse"
        self.retain_graph = self.fraction == 1.0

    def product(self, graph, v):
        if self.fraction < 1.0:
            m = subbatch_size(graph.x.shape[0], self.fraction)
            return fresh_ggn_product(graph.child, graph.x[:m], graph.alphas, v,
                                     temperature=self.temperature,
                                     label_ce_weight=self.label_ce_weight)
        return ggn_product(graph.child, graph.x, graph.alphas, v, child_logits=graph.child_logits,
                           temperature=self.temperature, label_ce_weight=self.label_ce_weight,
                           retain_graph=graph.retain, g_C=graph.g_C, logit_grad=graph.logit_grad)


@register_curvature("fisher")
class Fisher(Curvature):
    """The book-literal empirical outer product s·(1/K) Σ_k g_k g_kᵀ v (Eqs. 4.36–4.41).

    K = 1 uses g_1 = g_C: the product is parallel to g_C, so −g_C + λ·F̂v only rescales the
    step and can never turn α̂ towards the Parent's tangent (measured cos(step, −g_C) = 1).
    """

    def __init__(self, microbatches: int = 1, sign: float = -1.0):
        self.microbatches, self.sign = int(microbatches), float(sign)
        if self.microbatches < 1:
            raise ValueError(f"fisher micro-batches must be >= 1, got {microbatches}")
        if self.sign not in (-1.0, 1.0):
            raise ValueError(f"fisher sign must be -1 or 1, got {sign}")
        self.retain_graph = self.microbatches > 1

    def product(self, graph, v):
        if self.microbatches == 1:
            grads = [[g.detach() for g in graph.g_C]]
        else:
            grads = microbatch_gradients(graph.per_sample, graph.alphas, self.microbatches,
                                         retain_graph=graph.retain)
        return fisher_product(v, grads, sign=self.sign)


def _check_mode(mode: str) -> None:
    CURVATURES[mode]  # raises ValueError naming the known modes


def make_curvature(mode: str | Curvature, *, temperature: float = 1.0,
                   label_ce_weight: float = 0.0, fisher_microbatches: int = 1,
                   fisher_sign: float = -1.0, ggn_jvp: str = "forward",
                   curvature_fraction: float = 1.0) -> Curvature:
    """The strategy for ``mode`` with the options it uses (a ``Curvature`` passes through)."""
    if isinstance(mode, Curvature):
        return mode
    _check_mode(mode)
    if mode == "ggn":
        return GGN(temperature, label_ce_weight, jvp=ggn_jvp, fraction=curvature_fraction)
    if mode == "fisher":
        return Fisher(fisher_microbatches, fisher_sign)
    return CURVATURES[mode]()


def curvature_from_config(oc) -> Curvature:
    """``make_curvature`` from an ``ObjectiveConfig``."""
    return make_curvature(oc.curvature, temperature=oc.temperature,
                          label_ce_weight=oc.label_ce_weight,
                          fisher_microbatches=oc.fisher_microbatches, fisher_sign=oc.fisher_sign,
                          ggn_jvp=oc.ggn_jvp, curvature_fraction=oc.fraction)


def curvature_product(mode: str | Curvature, graph: ChildGraph, v: TensorList,
                      **options) -> list[torch.Tensor]:
    """H_G v by ``mode`` on ``graph`` (options as for ``make_curvature``); detached tensors."""
    return make_curvature(mode, **options).product(graph, v)


CURVATURE_MODES = CURVATURES.names()
