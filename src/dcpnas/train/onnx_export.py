"""ONNX export of the inference graph of a trained network.

:func:`fold_for_inference` replaces every ``BinaryConv2d`` by a plain convolution whose weight is
the constant β∘sign(ŵ) (a ±β tensor) and, where the layer binarises its input, a sign on the
activations (x ≥ 0 → +1, else −1: ONNX ``GreaterOrEqual`` + ``Where``). The folded network gives
the same logits as the original in eval mode; :func:`export_onnx` writes it with a dynamic batch
axis. BatchNorm is left to the ONNX runtime's own fusion.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..binary import BinaryConv2d
from ..errors import DcpnasError
from ..kernels import conv2d
from ..utils.io import atomic_write_bytes, check_output_file

__all__ = ["FoldedBinaryConv2d", "fold_for_inference", "export_onnx"]


class FoldedBinaryConv2d(nn.Module):
    """Inference form of a BinaryConv2d: constant effective weight, optional input sign."""

    def __init__(self, conv: BinaryConv2d):
        super().__init__()
        with torch.no_grad():
            self.register_buffer("weight", conv.effective_weight().detach().clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.binary_activations = conv.binary_activations

    def forward(self, x):
        if self.binary_activations:
            x = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def fold_for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every BinaryConv2d folded (see the module docstring)."""
    folded = copy.deepcopy(model).eval()
    for name, module in list(folded.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, BinaryConv2d):
                setattr(module, child_name, FoldedBinaryConv2d(child))
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def _missing_package(exc: BaseException) -> str | None:
    name = getattr(exc, "name", None)
    if isinstance(exc, ImportError) and name:
        return name.split(".")[0]
    return None


def opset_range(exporter: str = "torchscript") -> tuple[int, int]:
    """The ONNX opsets the installed torch's ``exporter`` writes (inclusive)."""
    try:
        from torch.onnx import _constants as c
        low = int(c.ONNX_MIN_OPSET)
        high = int(getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", c.ONNX_MAX_OPSET)
                   if exporter == "torchscript" else c.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):
        low, high = 7, 17
    return low, high


def check_opset(opset: int, exporter: str = "torchscript") -> None:
    """Refuse an opset the exporter cannot write, before anything is exported (torch's own failure
    is a traceback with the whole graph)."""
    low, high = opset_range(exporter)
    if not low <= opset <= high:
        raise DcpnasError(f"ONNX export: --opset {opset} is not an opset the {exporter} exporter writes "
                          f"({low}..{high})")


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape, *, opset: int = 18,
                exporter: str = "torchscript") -> Path:
    """Write the folded inference graph of ``model`` for inputs ``(N, *input_shape)`` to ``path``.

    The input is named ``images`` (normalised N×C×H×W float32, N dynamic), the output ``logits``.
    ``exporter``: ``torchscript`` (torch's legacy exporter: fast, needs no extra package; used by
    default) or ``dynamo`` (``torch.export``-based; needs ``onnxscript``/``onnx`` in some torch
    builds). If the chosen exporter is unavailable the other one is tried; a DcpnasError names the
    missing package when both fail for want of one.

    Binary activations make the logits sensitive to rounding: an activation within ~1e-7 of 0 can
    take the other sign under another runtime's summation order (fp32 vs fp64 in PyTorch differs
    the same way), so compare ONNX and PyTorch by predictions, not bit for bit.
    """
    if exporter not in ("torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    check_opset(opset, exporter)
    path = check_output_file(path)
    folded = fold_for_inference(model).cpu().float()
    example = (torch.zeros((2, *input_shape)),)
    names = dict(input_names=["images"], output_names=["logits"], opset_version=opset)

    def torchscript():
        torch.onnx.export(folded, example, str(path), dynamo=False,
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **names)

    def dynamo():
        torch.onnx.export(folded, example, str(path), dynamo=True, external_data=False, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), **names)

    order = [torchscript, dynamo] if exporter == "torchscript" else [dynamo, torchscript]
    missing = []
    target = path
    # torch writes the graph itself; it goes to a scratch folder first and then, atomically and with a
    # one-line error on failure, to ``target`` (never a half-written .onnx).
    with tempfile.TemporaryDirectory(prefix="dcpnas-onnx-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(scratch) / "model.onnx"
        for attempt in order:
            try:
                attempt()
                atomic_write_bytes(target, path.read_bytes())
                return target
            except ImportError as e:  # this exporter needs a package that is not installed
                missing.append(_missing_package(e) or "onnxscript")
            except torch.onnx.errors.OnnxExporterError as e:  # e.g. an op the chosen opset lacks
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise DcpnasError(f"ONNX export to {target} failed at opset {opset}: {first}") from None
    raise DcpnasError(f"ONNX export needs the {' and '.join(sorted(set(missing)))} package(s): "
                      f"pip install onnx onnxscript")
