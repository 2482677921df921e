"""The search checkpoint: everything needed to continue a run exactly where it stopped.

One file, ``<out>/ckpt/last.pt``, rewritten atomically after every epoch (temp file + rename, so a
crash leaves the previous one): the method's state (supernets, optimisers, lr schedules,
decoupled-optimisation state, method bookkeeping), the number of finished epochs, the history, RNG
states and the time spent. The batch order of an epoch depends only on (seed, epoch), so the
batchers need no more than the epoch index. Loaded with ``weights_only=True``: only tensors and
plain containers are stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import DataError
from ...utils.finite import check_finite_state, kept_checkpoint
from ...utils.io import atomic_save, load_run_checkpoint
from ...utils.runstate import rng_state, set_rng_state  # noqa: F401  (part of this module's API)

__all__ = ["FORMAT", "checkpoint_path", "rng_state", "set_rng_state", "save_search_checkpoint",
           "load_search_checkpoint"]

FORMAT = "dcpnas-search-checkpoint/1"


def checkpoint_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "ckpt" / "last.pt"


# -- packing: thousands of small state tensors -> one flat buffer per dtype -------------------------
# A supernet's state holds thousands of tiny tensors (every BN of every candidate op); pickling
# them one by one dominates the save time of small runs. Packed, a checkpoint is a handful of
# buffers plus a skeleton of plain containers in which ("__tensor__", i) marks tensor i.
_MARK = "__tensor__"


def pack_tensors(obj: Any) -> dict:
    """``{"skeleton", "buffers", "dtypes", "offsets", "shapes"}``: tensor i lives in
    ``buffers[dtypes[i]]`` at ``offsets[i]`` with shape ``shapes[i]`` (-1 padded)."""
    tensors: list[torch.Tensor] = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            tensors.append(x)
            return (_MARK, len(tensors) - 1)
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            items = [walk(v) for v in x]
            return items if isinstance(x, list) else tuple(items)
        return x

    skeleton = walk(obj)
    # One buffer per (dtype, device): a single cat and a single host copy each (Adam's "step"
    # counters live on the CPU next to CUDA parameters of the same dtype).
    keys = [(str(t.dtype).replace("torch.", ""), str(t.device)) for t in tensors]
    names = sorted(set(keys))
    code = {n: i for i, n in enumerate(names)}
    ndim = max([t.dim() for t in tensors] + [1])
    sizes = dict.fromkeys(names, 0)
    groups: dict[tuple, list[torch.Tensor]] = {n: [] for n in names}
    offsets, shapes = [], []
    for t, key in zip(tensors, keys):
        offsets.append(sizes[key])
        shapes.append(list(t.shape) + [-1] * (ndim - t.dim()))
        sizes[key] += t.numel()
        groups[key].append(t.reshape(-1))
    with torch.no_grad():
        buffers = [torch.cat(groups[n]).cpu() for n in names]
    return {"skeleton": skeleton, "buffers": buffers, "devices": [dev for _, dev in names],
            "dtypes": torch.tensor([code[k] for k in keys], dtype=torch.int64),
            "offsets": torch.tensor(offsets, dtype=torch.int64),
            "shapes": torch.tensor(shapes, dtype=torch.int64).view(len(tensors), ndim)}


def unpack_tensors(packed: dict, map_location="cpu") -> Any:
    """The object ``pack_tensors`` packed: CPU tensors stay on the CPU, the others go to
    ``map_location``."""
    buffers = [b if dev == "cpu" else b.to(map_location)
               for b, dev in zip(packed["buffers"], packed["devices"])]
    tensors = []
    for d, offset, shape in zip(packed["dtypes"].tolist(), packed["offsets"].tolist(),
                                packed["shapes"].tolist()):
        shape = [s for s in shape if s >= 0]
        n = 1
        for s in shape:
            n *= s
        tensors.append(buffers[d][offset:offset + n].view(shape).clone())

    def walk(x):
        if isinstance(x, tuple) and len(x) == 2 and x[0] == _MARK:
            return tensors[x[1]]
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, tuple):
            return tuple(walk(v) for v in x)
        return x

    return walk(packed["skeleton"])


def save_search_checkpoint(path: str | Path, *, epochs_done: int, method: str, method_state: dict,
                           history: list, elapsed_s: float, config: dict,
                           data_state: dict | None = None, previous: str | Path | None = None) -> Path:
    """Write the checkpoint atomically, after checking every tensor of ``method_state`` is finite
    (weights, BN buffers, optimiser moments); ``previous``: the checkpoint a refusal names as kept."""
    kept = kept_checkpoint(previous if previous is not None else path)
    check_finite_state(method_state, what=f"the checkpoint after epoch {epochs_done}", kept=kept,
                       hint="lower optim.w.lr or optim.alpha.lr")
    return atomic_save({"format": FORMAT, "epochs_done": int(epochs_done), "method": method,
                        "method_state": pack_tensors(method_state), "history": history,
                        "elapsed_s": float(elapsed_s), "rng": rng_state(), "config": config,
                        "data": data_state or {}}, path, kept=kept)


_FIELDS = {"epochs_done": int, "method": str, "method_state": dict, "history": list, "elapsed_s": float,
           "rng": dict, "config": dict}


def load_search_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The checkpoint at ``path``, its fields type-checked and its tensors unpacked; anything else
    (another format, a crafted or damaged file) is a one-line DataError."""
    state = load_run_checkpoint(path, FORMAT, _FIELDS, "dcpnas search checkpoint")
    try:
        state["method_state"] = unpack_tensors(state["method_state"], map_location)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError):
        raise DataError(f"{path}: the search checkpoint's tensors are damaged (offsets, shapes or "
                        f"buffers do not fit)") from None
    return state
