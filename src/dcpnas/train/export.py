"""The packed model format (``.dcpnas``): 1-bit conv weights as bits, everything else as stored.

File layout (integers little-endian)::

    offset 0   8 bytes   magic  b"DCPNASPK"
    offset 8   8 bytes   uint64 H, the length of the compressed header
    offset 16  H bytes   the header: UTF-8 JSON compressed with zlib (RFC 1950), then zero padding
                         to a multiple of 64
    data_offset          the data section: one blob per tensor, each starting at a multiple of 8

(The header is compressed because a small network has hundreds of tensors, mostly BatchNorm
statistics, whose names would otherwise outweigh the packed weights.) The header
(``format: dcpnas-packed/1``) holds the model ``spec`` (genotype, C, layers, layout, scope,
binary, in_channels, num_classes, image_size, dataset, mean/std: everything needed to rebuild the
network standalone), the training ``metrics``, ``data_offset``, ``data_size``, ``data_sha256`` (of
the data section) and ``tensors``: one entry per state-dict entry, in order, with ``name``,
``dtype``, ``shape``, ``offset`` (from data_offset), ``nbytes`` and ``encoding``:

* ``sign-bits``: the latent weights ŵ of a ``BinaryConv2d`` running with binary weights, stored as
  sign bits, ``numpy.packbits`` of the C-order flattened tensor with ``bitorder="big"`` (element 0
  is the most significant bit of byte 0), bit 1 = +1 and 0 = −1 (sign(0) = +1, as the network's
  binariser); the last byte is zero-padded. Its scale β is the tensor ``<layer>.beta``, stored raw.
  On loading ŵ becomes ±1, so the network computes exactly the same β∘sign(ŵ) as in training.
* ``raw``: the tensor's bytes in C order, little-endian (float32 parameters, BN statistics, the
  int64 ``num_batches_tracked``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from ..binary import BinaryConv2d
from ..errors import DataError
from ..utils.io import atomic_write
from .modelfile import DTYPES, MAGIC, PACKED_FORMAT, load_model
from .spec import ModelSpec

# The readers of the format (read_packed, load_packed) are in modelfile.py with every other model format.
__all__ = ["PACKED_FORMAT", "MAGIC", "PackedReport", "export_packed"]

_ALIGN_HEADER, _ALIGN_BLOB = 64, 8


@dataclass
class PackedReport:
    path: str
    file_bytes: int
    fp32_state_bytes: int              # every state-dict tensor at its stored precision (fp32 weights)
    reference_file_bytes: Optional[int]  # the model file it was exported from, when given as a path
    binary_weights: int                # number of 1-bit weights
    binary_fp32_bytes: int             # those weights in fp32
    binary_packed_bytes: int           # those weights as bits
    beta_bytes: int                    # their per-channel β scales (fp32, stored raw)
    real_bytes: int                    # every other tensor (raw)

    @property
    def binary_ratio(self) -> float:
        """How many times smaller the 1-bit weights are than in fp32 (at most 32)."""
        return self.binary_fp32_bytes / self.binary_packed_bytes if self.binary_packed_bytes else float("nan")

    @property
    def file_ratio(self) -> float:
        ref = self.reference_file_bytes or self.fp32_state_bytes
        return ref / self.file_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "binary_ratio": self.binary_ratio, "file_ratio": self.file_ratio}

    def table(self) -> str:
        ref = self.reference_file_bytes
        lines = [f"packed model        {self.path}: {self.file_bytes:,} bytes"
                 + (f" ({self.file_ratio:.1f}x smaller than the fp32 model file, {ref:,} bytes)" if ref else ""),
                 f"1-bit conv weights  {self.binary_weights:,} weights: {self.binary_packed_bytes:,} bytes packed "
                 f"vs {self.binary_fp32_bytes:,} in fp32 ({self.binary_ratio:.1f}x smaller)",
                 f"their beta scales   {self.beta_bytes:,} bytes (fp32)",
                 f"real tensors        {self.real_bytes:,} bytes (stem, BN, PReLU, classifier, statistics)"]
        return "\n".join(lines)


def _packed_names(model: nn.Module) -> set[str]:
    """State-dict names of latent weights that run binary (packable as sign bits)."""
    return {f"{name}.weight" for name, m in model.named_modules()
            if isinstance(m, BinaryConv2d) and m.binary_weights}


def _beta_names(model: nn.Module) -> set[str]:
    return {f"{name}.beta" for name, m in model.named_modules()
            if isinstance(m, BinaryConv2d) and m.binary_weights}


def _dtype_name(t: torch.Tensor) -> str:
    for name, dt in DTYPES.items():
        if t.dtype == dt:
            return name
    raise DataError(f"cannot pack a tensor of dtype {t.dtype}")


def _raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _sign_bits(t: torch.Tensor) -> bytes:
    return np.packbits((t.detach().cpu().reshape(-1) >= 0).numpy(), bitorder="big").tobytes()


def _source(source) -> tuple[nn.Module, ModelSpec, dict, Optional[int]]:
    if isinstance(source, (str, os.PathLike)):
        model, spec, payload = load_model(source)
        return model, spec, dict(payload.get("metrics") or {}), os.path.getsize(source)
    model, spec = source
    return model, spec, {}, None


def export_packed(source, path: str | os.PathLike, *, metrics: Optional[dict] = None) -> PackedReport:
    """Write the packed file of ``source`` (a model file path, or a ``(model, spec)`` pair)."""
    model, spec, stored_metrics, reference = _source(source)
    packed, betas = _packed_names(model), _beta_names(model)
    entries, blobs, offset = [], [], 0
    sizes = {"fp32": 0, "bin_fp32": 0, "bin_packed": 0, "beta": 0, "real": 0, "n_bin": 0}
    for name, t in model.state_dict().items():
        enc = "sign-bits" if name in packed else "raw"
        blob = _sign_bits(t) if enc == "sign-bits" else _raw_bytes(t)
        pad = (-offset) % _ALIGN_BLOB
        if pad:
            blobs.append(b"\0" * pad)
            offset += pad
        entries.append({"name": name, "dtype": _dtype_name(t), "shape": list(t.shape), "offset": offset,
                        "nbytes": len(blob), "encoding": enc})
        blobs.append(blob)
        offset += len(blob)
        full = t.numel() * t.element_size()
        sizes["fp32"] += full
        if enc == "sign-bits":
            sizes["bin_fp32"] += full
            sizes["bin_packed"] += len(blob)
            sizes["n_bin"] += t.numel()
        elif name in betas:
            sizes["beta"] += len(blob)
        else:
            sizes["real"] += len(blob)
    data = b"".join(blobs)
    header = {"format": PACKED_FORMAT, "spec": spec.to_dict(), "metrics": dict(metrics or stored_metrics),
              "bit_order": "big", "data_size": len(data), "data_sha256": hashlib.sha256(data).hexdigest(),
              "tensors": entries}
    # data_offset depends on the header's own length: iterate until the padded length is stable.
    data_offset = 0
    while True:
        header["data_offset"] = data_offset
        raw_header = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
        end = 16 + len(raw_header)
        if end <= data_offset:
            break
        data_offset = end + (-end) % _ALIGN_HEADER
    prefix = MAGIC + struct.pack("<Q", len(raw_header)) + raw_header
    prefix += b"\0" * (data_offset - len(prefix))
    atomic_write(path, lambda f: (f.write(prefix), f.write(data)))
    return PackedReport(str(path), len(prefix) + len(data), sizes["fp32"], reference, sizes["n_bin"],
                        sizes["bin_fp32"], sizes["bin_packed"], sizes["beta"], sizes["real"])
