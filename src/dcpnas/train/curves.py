"""Training curves from the epoch records, as a PNG.

Two panels share the epoch axis: training loss, and test top-1 (top-5 dotted). A dashed vertical
line marks the start of step 2.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

from ..utils.io import atomic_write_bytes

__all__ = ["plot_curves"]


def _series(records: Sequence[dict], key: str) -> list[tuple[float, float]]:
    return [(r["global_epoch"], float(r[key])) for r in records
            if r.get(key) is not None and math.isfinite(float(r[key]))]


def _step2_start(records: Sequence[dict]) -> float | None:
    starts = [r["global_epoch"] for r in records if r.get("stage") == 2]
    return min(starts) - 0.5 if starts else None


def plot_curves(records: Sequence[dict], out_stem: str | Path, title: str = "") -> Path:
    """Write ``<out_stem>.png`` and return its path."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4))  # no pyplot: no global backend or figure state is touched
    a1, a2 = fig.subplots(1, 2)
    for ax, keys, label in ((a1, ("train_loss",), "training loss"),
                            (a2, ("test_top1", "test_top5"), "test accuracy (%)")):
        for key, style in zip(keys, ("-o", ":")):
            pts = _series(records, key)
            if pts:
                ax.plot(*zip(*pts), style, markersize=3, label=key)
        split = _step2_start(records)
        if split is not None:
            ax.axvline(split, linestyle="--", color="gray")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(Path(out_stem).with_suffix(".png"), buf.getvalue())
