"""The model file formats, read and written in one place (evaluate, export, init_from and teachers use it).

* ``model.pt`` / ``step1.pt`` (``dcpnas-model/1``) and the training ``checkpoint.pt``: a torch file of
  plain containers with ``spec`` (:class:`~dcpnas.train.spec.ModelSpec`), ``state_dict`` and ``metrics``;
  :func:`save_model` writes one, :func:`read_model_file` / :func:`load_model` read either.
* ``.dcpnas`` (``dcpnas-packed/1``): 1-bit weights as sign bits, everything else raw, with a
  zlib-compressed JSON header; the layout is documented in :mod:`dcpnas.train.export` (which writes it);
  :func:`read_packed` / :func:`load_packed` read it.
* :func:`load_any`: whichever of the two a file is, by its first bytes.

Every field is type-checked before use, and sizes are checked against the bytes that are there before
anything is allocated: a crafted file (a wrong dtype, a missing offset, a shape that does not match its
bytes or claims 256 GB) is a one-line :class:`~dcpnas.errors.DataError`, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError
from ..utils.bounded import GIB, MIB, read_bytes, regular_file
from ..utils.io import atomic_save, load_checkpoint
from .spec import MODEL_FORMAT, ModelSpec

__all__ = ["MODEL_FORMAT", "PACKED_FORMAT", "MAGIC", "DTYPES", "ENCODINGS", "save_model", "read_model_file",
           "load_model", "read_packed", "load_packed", "load_any", "is_packed"]

#: checkpoint.pt of a training run (written by train/checkpoint.py; read here as a model too).
STATE_FORMAT = "dcpnas-train-state/1"

PACKED_FORMAT = "dcpnas-packed/1"
MAGIC = b"DCPNASPK"
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8}
ENCODINGS = ("raw", "sign-bits")
#: Bounds of a packed file: the file, its compressed and its decompressed header.
PACKED_LIMIT, HEADER_LIMIT = 8 * GIB, 64 * MIB
_MAX_DIMS = 8


# -- .pt model files -----------------------------------------------------------------------------
def save_model(path: Path, spec: ModelSpec, model: torch.nn.Module, metrics: Optional[dict[str, Any]] = None,
               *, kept: str | None = None) -> Path:
    """Write a model file: what is needed to rebuild and evaluate the network."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_save({"format": MODEL_FORMAT, "spec": spec.to_dict(), "state_dict": state,
                        "metrics": dict(metrics or {})}, path, kept=kept)


def is_packed(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the packed format's magic (False for unreadable files)."""
    try:
        regular_file(path)
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except (DataError, OSError):
        return False


def read_model_file(path: str | os.PathLike, *, purpose: str | None = None) -> tuple[ModelSpec, dict, dict]:
    """(spec, state_dict, payload) from a model file (model.pt) or a training checkpoint; ``purpose``
    names the setting in the message for a packed file (``model.init_from``, ``teacher.checkpoint``)."""
    regular_file(path, what="checkpoint")
    if is_packed(path):
        raise DataError(f"{path} is a packed .dcpnas model (read by 'dcpnas eval' and load_packed only); "
                        f"{'for ' + purpose + ', ' if purpose else ''}pass the model.pt (or checkpoint.pt) "
                        f"it was exported from")
    payload = load_checkpoint(path)
    if not isinstance(payload, dict) or "spec" not in payload or "state_dict" not in payload:
        raise DataError(f"{path} is not a dcpnas model or training checkpoint (no spec/state_dict; "
                        f"was it written by 'dcpnas train'?)")

    fmt = payload.get("format")
    if fmt is not None and fmt not in (MODEL_FORMAT, STATE_FORMAT):
        raise DataError(f"{path}: format {str(fmt)[:60]!r} is not one this dcpnas reads ({MODEL_FORMAT} or "
                        f"{STATE_FORMAT}; written by a newer dcpnas?)")
    spec = ModelSpec.from_dict(payload["spec"], str(path))
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DataError(f"{path}: 'state_dict' must map names to tensors, got {type(state).__name__}")
    metrics = payload.get("metrics", {})
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: 'metrics' must be a table, got {type(metrics).__name__}")
    return spec, state, payload


def _fit(model: nn.Module, state: dict, path, what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "mismatch"
        raise DataError(f"{path}: the {what} do not fit the stored model spec ({detail})") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", *, purpose: str | None = None
               ) -> tuple[nn.Module, ModelSpec, dict]:
    """Rebuild the network a model file describes and load its weights; returns (model in eval mode,
    spec, payload)."""
    spec, state, payload = read_model_file(path, purpose=purpose)
    model = spec.build()
    _fit(model, state, path, "weights")
    return model.to(device).eval(), spec, payload


# -- .dcpnas packed files ------------------------------------------------------------------------
def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _header(raw: bytes, path: Path) -> dict:
    (hlen,) = struct.unpack("<Q", raw[8:16])
    if hlen > min(len(raw) - 16, HEADER_LIMIT):
        raise DataError(f"{path} is truncated or corrupt (header length {hlen} exceeds the file)")
    d = zlib.decompressobj()
    try:
        text = d.decompress(raw[16:16 + hlen], HEADER_LIMIT)
        if d.unconsumed_tail:
            raise DataError(f"{path}: the packed model's header is larger than {HEADER_LIMIT // MIB} MiB")
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, zlib.error):
        raise DataError(f"{path}: the packed model's header is truncated or corrupt") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: the packed model's header is not a table")
    if header.get("format") != PACKED_FORMAT:
        raise DataError(f"{path}: unsupported packed format {header.get('format')!r} (expected {PACKED_FORMAT})")
    for key in ("data_offset", "data_size"):
        if not _int(header.get(key)):
            raise DataError(f"{path}: the packed model's header has no valid {key!r}")
    if header.get("bit_order", "big") != "big":
        raise DataError(f"{path}: unsupported bit order {header.get('bit_order')!r} (expected 'big')")
    if not isinstance(header.get("tensors"), list):
        raise DataError(f"{path}: the packed model's header has no tensor list")
    if not isinstance(header.get("metrics", {}), dict):
        raise DataError(f"{path}: the packed model's 'metrics' is not a table")
    return header


def _entry(e: Any, i: int, size: int, path: Path) -> tuple[str, str, tuple[int, ...], int, int, str]:
    """One tensor entry, checked: its name, dtype, shape, offset and byte count agree with each other
    and with the data section before anything is allocated."""
    if not isinstance(e, dict):
        raise DataError(f"{path}: tensor entry {i} is not a table")
    name = e.get("name")
    where = f"{path}: tensor {name!r}" if isinstance(name, str) else f"{path}: tensor entry {i}"
    if not isinstance(name, str):
        raise DataError(f"{where} has no name")
    dtype, enc, shape = e.get("dtype"), e.get("encoding"), e.get("shape")
    if dtype not in DTYPES:
        raise DataError(f"{where} has unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    if enc not in ENCODINGS:
        raise DataError(f"{where} has unknown encoding {enc!r} (known: {', '.join(ENCODINGS)})")
    if (not isinstance(shape, list) or len(shape) > _MAX_DIMS or not all(_int(s) for s in shape)):
        raise DataError(f"{where} has an invalid shape {shape!r}")
    offset, nbytes = e.get("offset"), e.get("nbytes")
    if not _int(offset) or not _int(nbytes):
        raise DataError(f"{where} has no valid offset/nbytes")
    n = 1
    for s in shape:
        n *= s                                   # Python ints: no overflow, no allocation
    itemsize = torch.empty(0, dtype=DTYPES[dtype]).element_size()
    expected = (n + 7) // 8 if enc == "sign-bits" else n * itemsize
    if nbytes != expected:
        raise DataError(f"{where}: shape {shape} ({dtype}, {enc}) needs {expected} bytes, the entry says "
                        f"{nbytes}")
    if offset + nbytes > size:
        raise DataError(f"{where} lies outside the data section ({offset}+{nbytes} > {size} bytes)")
    return name, dtype, tuple(shape), offset, nbytes, enc


def read_packed(path: str | os.PathLike) -> tuple[ModelSpec, dict, dict]:
    """(spec, state_dict, header) of a packed file; a foreign, truncated, corrupt or crafted file is a
    DataError."""
    path = Path(path)
    raw = read_bytes(path, what="packed model", limit=PACKED_LIMIT)
    if len(raw) < 16 or raw[:8] != MAGIC:
        raise DataError(f"{path} is not a dcpnas packed model (bad magic)")
    header = _header(raw, path)
    start, size = header["data_offset"], header["data_size"]
    data = raw[start:start + size]
    if len(data) != size:
        raise DataError(f"{path} is truncated ({len(raw)} bytes, expected {start + size})")
    if hashlib.sha256(data).hexdigest() != header.get("data_sha256"):
        raise DataError(f"{path} is corrupt (data checksum mismatch)")
    spec = ModelSpec.from_dict(header.get("spec"), str(path))
    state = {}
    for i, e in enumerate(header["tensors"]):
        name, dtype, shape, offset, nbytes, enc = _entry(e, i, size, path)
        if name in state:
            raise DataError(f"{path}: tensor {name!r} is listed twice")
        blob = data[offset:offset + nbytes]
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if enc == "sign-bits":
            bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=n, bitorder="big")
            state[name] = torch.from_numpy(bits.astype(np.float32) * 2.0 - 1.0).reshape(shape).to(DTYPES[dtype])
        elif dtype == "bfloat16":
            state[name] = torch.from_numpy(np.frombuffer(blob, "<i2").copy()).view(torch.bfloat16).reshape(shape)
        else:
            np_dtype = np.dtype(torch.empty(0, dtype=DTYPES[dtype]).numpy().dtype).newbyteorder("<")
            state[name] = torch.from_numpy(np.frombuffer(blob, np_dtype).copy()).reshape(shape)
    return spec, state, header


def load_packed(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The network stored in a packed file, in eval mode; it gives the same logits as the model it
    was exported from (eval mode)."""
    spec, state, _ = read_packed(path)
    model = spec.build()
    _fit(model, state, path, "tensors")
    return model.to(device).eval()


def load_any(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec]:
    """A model from a model file, a training checkpoint or a packed ``.dcpnas`` file (by content)."""
    regular_file(path, what="checkpoint")
    if is_packed(path):
        spec, state, _ = read_packed(path)
        model = spec.build()
        _fit(model, state, path, "tensors")
        return model.to(device).eval(), spec
    model, spec, _ = load_model(path, device)
    return model, spec
