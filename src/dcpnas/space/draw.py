"""Drawings of genotype cells, DARTS style.

Input nodes c_{k-2}, c_{k-1} on the left, intermediate nodes 0..3 in the middle, the output c_{k}
(concatenation) on the right, every edge labelled with its operation. Graphviz ``dot`` renders the
drawing when it is on PATH (SVG or PNG); otherwise matplotlib draws the fixed DARTS layout (the
``python`` engine).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

from ..errors import DcpnasError
from .genotype import CELL_TYPES, Genotype, load_genotype

__all__ = ["FORMATS", "cell_graph", "draw_cell", "draw_genotype", "genotype_dot", "genotype_figure"]

FORMATS = ("svg", "png", "dot")
ENGINES = ("auto", "dot", "python")
TITLES = {"normal": "normal cell", "reduce": "reduction cell"}
# DARTS' plot_genotype colours.
FILL = {"input": "darkseagreen2", "node": "lightblue", "output": "palegoldenrod"}
DOT_TIMEOUT_S = 60


# -- the graph of one cell -----------------------------------------------------------------------
@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str  # the operation; "" for the concatenation edges into c_{k}


def _node_id(index: int) -> str:
    """Node ids: cell input 0/1 -> 'c_{k-2}'/'c_{k-1}', intermediate node n (index n+2) -> 'n'."""
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)


def cell_graph(genotype: Genotype, cell: str = "normal"):
    """(nodes, edges) of one cell: nodes as ``(id, kind)`` with kind input/node/output, in order."""
    if cell not in CELL_TYPES:
        raise DcpnasError(f"unknown cell {cell!r}; expected one of {', '.join(CELL_TYPES)}")
    genes, concat = genotype.cell(cell)
    steps = len(genes) // 2
    nodes = [("c_{k-2}", "input"), ("c_{k-1}", "input")]
    nodes += [(str(n), "node") for n in range(steps)] + [("c_{k}", "output")]
    edges = [Edge(_node_id(index), str(k // 2), op) for k, (op, index) in enumerate(genes)]
    edges += [Edge(_node_id(index), "c_{k}", "") for index in concat]
    return nodes, edges


# -- graphviz --------------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html_label(node: str) -> str:
    """c_{k-2} -> c with subscript k-2 (a graphviz HTML label)."""
    if node.startswith("c_{"):
        return f"<c<SUB>{escape(node[3:-1])}</SUB>>"
    return _q(node)


def genotype_dot(genotype, cells: Sequence[str] = CELL_TYPES) -> str:
    """Graphviz DOT source drawing ``cells`` of the genotype (one cluster per cell)."""
    genotype = load_genotype(genotype)
    lines = ["digraph genotype {", "  rankdir=LR;", "  compound=true;",
             '  node [style=filled, shape=rect, align=center, fontsize=20, height=0.5, width=0.5, '
             'penwidth=2, fontname="times"];',
             '  edge [fontsize=20, fontname="times"];']
    # With rankdir=LR dot stacks clusters bottom-up in declaration order: declare the last first.
    for cell in reversed(list(cells)):
        nodes, edges = cell_graph(genotype, cell)
        lines += [f"  subgraph cluster_{cell} {{", f"    label={_q(TITLES[cell])};",
                  "    fontsize=24;", '    color="gray60";']
        for node, kind in nodes:
            lines.append(f"    {_q(cell + ':' + node)} [label={_html_label(node)}, "
                         f"fillcolor={FILL[kind]}];")
        # Keep c_{k-2} above c_{k-1}: same rank, and an invisible edge c_{k-1} -> c_{k-2}
        # (rankdir=LR turns a same-rank edge a -> b into "a below b").
        a, b = _q(cell + ":c_{k-2}"), _q(cell + ":c_{k-1}")
        lines.append(f"    {{ rank=same; {a}; {b}; }} {b} -> {a} [style=invis];")
        for e in edges:
            attrs = f"label={_q(e.label)}, fillcolor=gray" if e.label else "fillcolor=gray, color=gray40"
            lines.append(f"    {_q(cell + ':' + e.src)} -> {_q(cell + ':' + e.dst)} [{attrs}];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _run_dot(dot: str, source: str, fmt: str) -> bytes:
    try:
        proc = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DcpnasError(f"graphviz dot ({dot}) could not run: {e.__class__.__name__}") from None
    if proc.returncode != 0 or not proc.stdout:
        msg = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[0]
        raise DcpnasError(f"graphviz dot failed (exit {proc.returncode}): {msg}")
    return proc.stdout


# -- matplotlib: the fixed DARTS layout ------------------------------------------------------------
# Every DARTS cell has the same nodes, so their places are fixed: the inputs near the middle on the
# left, the intermediate nodes zig-zagging wide up and down, the output on the right. This layout was
# chosen by a search over such zig-zags: every straight edge a genotype can have (input -> node,
# node -> later node, node -> output) passes at least 0.2 units (a quarter of a node's width) clear
# of every other node. Only parallel edges (the same pair twice) need a bow.
NODE_W, NODE_H = 0.75, 0.34
COLOURS = {"input": "#bcee68", "node": "#add8e6", "output": "#eee8aa"}
LABEL_T = (0.5, 0.62, 0.38, 0.72, 0.28, 0.8)  # where along its edge a label may sit, in this order


def _place(node: str) -> tuple[float, float]:
    fixed = {"c_{k-2}": (0.0, 0.5), "c_{k-1}": (0.0, -0.5), "c_{k}": (10.0, 0.0)}
    if node in fixed:
        return fixed[node]
    j = int(node)
    return 2.0 * (j + 1), 1.4 if j % 2 == 0 else -1.4


def _border(x: float, y: float, tx: float, ty: float, gap: float = 0.03) -> tuple[float, float]:
    """Where the ray from a node's centre (x, y) towards (tx, ty) leaves the node's box (+ gap)."""
    dx, dy = tx - x, ty - y
    t = min((NODE_W / 2 + gap) / abs(dx) if dx else float("inf"),
            (NODE_H / 2 + gap) / abs(dy) if dy else float("inf"))
    return x + t * dx, y + t * dy


def _tex(node: str) -> str:
    return f"$c_{{{node[3:-1]}}}$" if node.startswith("c_{") else node


def _overlaps(a, b, pad: float = 1.0) -> bool:
    return not (a.x1 + pad < b.x0 or b.x1 + pad < a.x0 or a.y1 + pad < b.y0 or b.y1 + pad < a.y0)


def _label(ax, x: float, y: float, text: str):
    return ax.text(x, y, text, ha="center", va="center", fontsize=9, zorder=5, gid="label",
                   bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.9))


def _draw_cell(ax, genotype: Genotype, cell: str) -> None:
    """One cell into ``ax``: nodes (gid ``node``), edges and op labels (gid ``label``)."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    nodes, edges = cell_graph(genotype, cell)
    ax.set_xlim(-0.6, 10.6)
    ax.set_ylim(-1.8, 1.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(TITLES[cell], fontsize=13, loc="left", fontweight="bold")
    ax.apply_aspect()  # final data -> pixel mapping, so the extents measured below are the drawn ones
    renderer = ax.figure.canvas.get_renderer()
    taken = []
    for node, kind in nodes:
        x, y = _place(node)
        box = FancyBboxPatch((x - NODE_W / 2, y - NODE_H / 2), NODE_W, NODE_H, gid="node",
                             boxstyle="round,pad=0,rounding_size=0.06", facecolor=COLOURS[kind],
                             edgecolor="black", linewidth=1.6, zorder=3)
        ax.add_patch(box)
        ax.text(x, y, _tex(node), ha="center", va="center", fontsize=12, zorder=4)
        taken.append(box.get_window_extent(renderer))
    curves = []  # (edge, start, end, rad) in data coordinates
    seen: dict[tuple[str, str], int] = {}
    for e in edges:
        k = seen.get((e.src, e.dst), 0)
        seen[(e.src, e.dst)] = k + 1
        (x0, y0), (x1, y1) = _place(e.src), _place(e.dst)
        # A parallel edge bows towards the middle row (edges run left to right: rad > 0 bows down).
        rad = 0.0 if k == 0 else (0.3 if y0 + y1 >= 0 else -0.3)
        style = (dict(color="#333", linewidth=1.3) if e.label
                 else dict(color="#999", linewidth=1.1, linestyle=(0, (4, 3))))
        # The arrow runs border to border, so its head is never hidden under a node.
        ax.add_patch(FancyArrowPatch(_border(x0, y0, x1, y1), _border(x1, y1, x0, y0),
                                     connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=12, shrinkA=0, shrinkB=0, zorder=2, **style))
        curves.append((e, (x0, y0), (x1, y1), rad))
    # Pixels along each curve, to keep a label off the other edges (so it reads as its own edge's).
    samples = [ax.transData.transform([_on_curve(p, q, rad, i / 40) for i in range(41)])
               for _, p, q, rad in curves]
    for k, (e, p, q, rad) in enumerate(curves):
        if not e.label:
            continue
        best = None
        for t in LABEL_T:
            text = _label(ax, *_on_curve(p, q, rad, t), e.label)
            box = text.get_window_extent(renderer)
            clashes = sum(_overlaps(box, other) for other in taken)
            crossings = sum(_crosses(box, pts) for j, pts in enumerate(samples) if j != k)
            score = (clashes, crossings)
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, text, box)
            else:
                text.remove()
            if score == (0, 0):
                break
        taken.append(best[2])


def _crosses(box, pts) -> bool:
    return bool(((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
                 & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)).any())


def _on_curve(p, q, rad: float, t: float) -> tuple[float, float]:
    """The point at t of matplotlib's arc3 curve from p to q (a quadratic Bézier whose control point
    sits rad × |pq| off the chord's middle, along its normal)."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = x1 - x0, y1 - y0
    bow = 2 * rad * t * (1 - t)
    return x0 + t * dx + bow * dy, y0 + t * dy - bow * dx


def genotype_figure(genotype, cells: Sequence[str] = CELL_TYPES):
    """A matplotlib Figure drawing ``cells`` of the genotype (one row each), without graphviz."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    genotype = load_genotype(genotype)
    fig = Figure(figsize=(10, 3.6 * len(cells)), dpi=100)
    FigureCanvasAgg(fig)  # an Agg canvas, so text extents are known while placing labels
    axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.3 / (3.6 * len(cells)), bottom=0.01, hspace=0.12)
    for ax, cell in zip(axes, cells):
        _draw_cell(ax, genotype, cell)
    return fig


def _figure_bytes(genotype, cells: Sequence[str], fmt: str) -> bytes:
    import io

    import matplotlib

    buf = io.BytesIO()
    # svg.fonttype "none" keeps labels as <text> (searchable, smaller) instead of glyph outlines.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dcpnas"}):
        genotype_figure(genotype, cells).savefig(buf, format=fmt, facecolor="white")
    return buf.getvalue()


# -- files -----------------------------------------------------------------------------------------
def _format(out_path: Path, fmt: str | None) -> str:
    fmt = (fmt or out_path.suffix.lstrip(".") or "svg").lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise DcpnasError(f"{out_path}: cannot draw to format {fmt!r}; expected one of "
                          f"{', '.join(FORMATS)}")
    return fmt


def draw_genotype(genotype, out_path, fmt: str | None = None, *,
                  cells: Sequence[str] = CELL_TYPES, engine: str = "auto") -> Path:
    """Draw the cells of a genotype to ``out_path``; returns the path written.

    genotype: a Genotype, a name, a file or a ``Genotype(...)`` string. fmt: ``svg``, ``png`` or
    ``dot`` (the DOT source); by default the file suffix. engine: ``dot`` (graphviz, required),
    ``python`` (matplotlib, the fixed DARTS layout) or ``auto`` (graphviz when ``dot`` is on PATH).
    """
    from ..utils.io import atomic_write_bytes, atomic_write_text

    if engine not in ENGINES:
        raise DcpnasError(f"unknown drawing engine {engine!r}; expected one of {', '.join(ENGINES)}")
    genotype = load_genotype(genotype)
    out_path = Path(out_path)
    fmt = _format(out_path, fmt)
    for cell in cells:
        if cell not in CELL_TYPES:
            raise DcpnasError(f"unknown cell {cell!r}; expected one of {', '.join(CELL_TYPES)}")
    if fmt == "dot":
        return atomic_write_text(out_path, genotype_dot(genotype, cells))
    dot = shutil.which("dot") if engine != "python" else None
    if engine == "dot" and dot is None:
        raise DcpnasError("graphviz 'dot' is not on PATH (install graphviz or use the python engine)")
    if dot is not None:
        return atomic_write_bytes(out_path, _run_dot(dot, genotype_dot(genotype, cells), fmt))
    return atomic_write_bytes(out_path, _figure_bytes(genotype, cells, fmt))


def draw_cell(genotype, cell: str, out_path, fmt: str | None = None, *,
              engine: str = "auto") -> Path:
    """Draw one cell (``normal`` or ``reduce``) of a genotype; see :func:`draw_genotype`."""
    return draw_genotype(genotype, out_path, fmt, cells=(cell,), engine=engine)
