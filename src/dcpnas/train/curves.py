"""Training curves from the epoch records: matplotlib PNG when it imports, else a pure-Python SVG.

Two panels share the epoch axis: training loss, and test top-1 (top-5 dotted). A dashed vertical
line marks the start of step 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

from ..utils.io import atomic_write_text

__all__ = ["plot_curves"]


def _series(records: Sequence[dict], key: str) -> list[tuple[float, float]]:
    return [(r["global_epoch"], float(r[key])) for r in records
            if r.get(key) is not None and math.isfinite(float(r[key]))]


def _step2_start(records: Sequence[dict]) -> float | None:
    starts = [r["global_epoch"] for r in records if r.get("stage") == 2]
    return min(starts) - 0.5 if starts else None


def plot_curves(records: Sequence[dict], out_stem: str | Path, title: str = "") -> Path:
    """Write ``<out_stem>.png`` (matplotlib) or ``<out_stem>.svg`` and return the path."""
    out_stem = Path(out_stem)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        path = out_stem.with_suffix(".svg")
        atomic_write_text(path, _svg(records, title))
        return path
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, label in ((a1, ("train_loss",), "training loss"),
                            (a2, ("test_top1", "test_top5"), "test accuracy (%)")):
        for key, style in zip(keys, ("-o", ":")):
            pts = _series(records, key)
            if pts:
                ax.plot(*zip(*pts), style, markersize=3, label=key)
        split = _step2_start(records)
        if split is not None:
            ax.axvline(split, linestyle="--", color="gray")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = out_stem.with_suffix(".png")
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def _nice_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _panel(x0: float, y0: float, w: float, h: float, series: dict[str, list], ylabel: str,
           split: float | None) -> list[str]:
    """SVG elements of one panel: frame, ticks, polylines, legend."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    out = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>']
    pts = [p for s in series.values() for p in s]
    if not pts:
        return out + [f'<text x="{x0 + w / 2}" y="{y0 + h / 2}" text-anchor="middle">no data</text>']
    xlo, xhi = _nice_range([p[0] for p in pts])
    ylo, yhi = _nice_range([p[1] for p in pts])

    def sx(v):
        return x0 + (v - xlo) / (xhi - xlo) * w

    def sy(v):
        return y0 + h - (v - ylo) / (yhi - ylo) * h

    for i in range(5):
        yv = ylo + (yhi - ylo) * i / 4
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end" font-size="10">{yv:.3g}</text>')
        xv = xlo + (xhi - xlo) * i / 4
        out.append(f'<text x="{sx(xv):.1f}" y="{y0 + h + 14}" text-anchor="middle" font-size="10">{xv:.3g}</text>')
    if split is not None:
        out.append(f'<line x1="{sx(split):.1f}" x2="{sx(split):.1f}" y1="{y0}" y2="{y0 + h}" '
                   f'stroke="gray" stroke-dasharray="4,3"/>')
    for k, (name, s) in enumerate(series.items()):
        if not s:
            continue
        colour = colours[k % len(colours)]
        dash = ' stroke-dasharray="2,2"' if k else ""
        line = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in s)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
        out.append(f'<text x="{x0 + w - 6}" y="{y0 + 14 + 13 * k}" text-anchor="end" font-size="11" '
                   f'fill="{colour}">{escape(name)}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 30}" text-anchor="middle" font-size="11">epoch</text>')
    out.append(f'<text x="{x0 - 40}" y="{y0 + h / 2}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 {x0 - 40} {y0 + h / 2})">{escape(ylabel)}</text>')
    return out


def _svg(records: Sequence[dict], title: str) -> str:
    W, H = 900, 360
    split = _step2_start(records)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>']
    parts += _panel(70, 40, 340, 260, {"train_loss": _series(records, "train_loss")}, "training loss", split)
    parts += _panel(530, 40, 340, 260, {"test_top1": _series(records, "test_top1"),
                                        "test_top5": _series(records, "test_top5")},
                    "test accuracy (%)", split)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
