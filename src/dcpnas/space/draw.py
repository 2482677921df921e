"""Drawings of genotype cells, DARTS style.

Input nodes c_{k-2}, c_{k-1} on the left, intermediate nodes 0..3 in the middle, the output c_{k}
(concatenation) on the right, every edge labelled with its operation. Graphviz ``dot`` renders the
drawing when it is on PATH (SVG or PNG); otherwise a pure-Python layered layout writes SVG, and PNG
is refused with a :class:`~dcpnas.errors.DcpnasError` after the SVG has been written next to it.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

from ..errors import DcpnasError
from .genotype import CELL_TYPES, Genotype, load_genotype

__all__ = ["FORMATS", "cell_graph", "draw_cell", "draw_genotype", "genotype_dot", "genotype_svg"]

FORMATS = ("svg", "png", "dot")
ENGINES = ("auto", "dot", "python")
TITLES = {"normal": "normal cell", "reduce": "reduction cell"}
# DARTS' plot_genotype colours.
FILL = {"input": "darkseagreen2", "node": "lightblue", "output": "palegoldenrod"}
SVG_FILL = {"input": "#bcee68", "node": "#add8e6", "output": "#eee8aa"}
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


# -- pure-Python SVG -------------------------------------------------------------------------------
NODE_H, COL_GAP, ROW_GAP = 34, 200, 100
FONT, LABEL_FONT = 15, 13
LABEL_CHAR_W = 7.4  # average glyph width of the label font, for label boxes


def _node_w(label: str) -> float:
    return max(44.0, 10.0 * len(label.replace("_{", "").replace("}", "")) + 18)


@dataclass
class _Box:
    x: float  # centre
    y: float
    w: float
    h: float

    def hits(self, px: float, py: float, pad: float = 0.0) -> bool:
        return abs(px - self.x) <= self.w / 2 + pad and abs(py - self.y) <= self.h / 2 + pad

    def overlaps(self, other: "_Box", pad: float = 0.0) -> bool:
        return (abs(self.x - other.x) < (self.w + other.w) / 2 + pad
                and abs(self.y - other.y) < (self.h + other.h) / 2 + pad)

    def boundary(self, towards_x: float, towards_y: float):
        """Where the ray from the centre towards a point leaves the box."""
        dx, dy = towards_x - self.x, towards_y - self.y
        if dx == 0 and dy == 0:
            return self.x, self.y
        t = min(self.w / 2 / abs(dx) if dx else math.inf, self.h / 2 / abs(dy) if dy else math.inf)
        return self.x + t * dx, self.y + t * dy


def _layout(nodes, edges) -> dict[str, _Box]:
    """Layered layout: column = longest path from the inputs; rows by barycentre of predecessors."""
    preds: dict[str, list[str]] = {n: [] for n, _ in nodes}
    for e in edges:
        preds[e.dst].append(e.src)
    layer: dict[str, int] = {}
    for n, kind in nodes:  # nodes are listed in topological order
        layer[n] = 0 if kind == "input" else 1 + max((layer[p] for p in preds[n]), default=0)
    y: dict[str, float] = {}
    for col in range(max(layer.values()) + 1):
        members = [n for n, _ in nodes if layer[n] == col]
        if col == 0:
            want = {n: i * ROW_GAP for i, n in enumerate(members)}
        else:
            want = {n: sum(y[p] for p in preds[n]) / len(preds[n]) if preds[n] else 0.0
                    for n in members}
        ordered = sorted(members, key=lambda n: (want[n], n))
        placed, last = [], -math.inf
        for n in ordered:
            last = max(want[n], last + ROW_GAP)
            placed.append(last)
        # Centre the column on its wished-for positions after pushing overlaps apart.
        shift = sum(want.values()) / len(members) - sum(placed) / len(placed)
        for n, p in zip(ordered, placed):
            y[n] = p + shift
    return {n: _Box(layer[n] * COL_GAP, y[n], _node_w(n), NODE_H) for n, _ in nodes}


def _quad(p0, c, p1, t: float):
    u = 1 - t
    return (u * u * p0[0] + 2 * u * t * c[0] + t * t * p1[0],
            u * u * p0[1] + 2 * u * t * c[1] + t * t * p1[1])


def _route(a: _Box, b: _Box, obstacles: list[_Box], first_bow: int):
    """Control point of a quadratic curve a→b that clears every obstacle box (0 bow = straight)."""
    mx, my = (a.x + b.x) / 2, (a.y + b.y) / 2
    dx, dy = b.x - a.x, b.y - a.y
    norm = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / norm, dx / norm  # unit normal
    bows = [0] + [s * k * 45 for k in range(1, 12) for s in (1, -1)]
    for bow in bows[first_bow:] + bows[:first_bow]:
        c = (mx + 2 * bow * nx, my + 2 * bow * ny)  # the curve's midpoint lies bow px off the chord
        pts = [_quad((a.x, a.y), c, (b.x, b.y), i / 40) for i in range(1, 40)]
        if not any(o.hits(px, py, pad=8) for o in obstacles for px, py in pts):
            return c
    return (mx, my)


def _place_label(text: str, k: int, curves, samples, taken: list[_Box]) -> _Box:
    """A box for edge k's label: on its own curve, never onto a node or another label if
    avoidable, then under as few other edges as possible (so a label reads as its edge's), then
    as close to the middle as possible. Only a crowded spot pushes it off the curve, by a label
    height up or down."""
    _, p0, c, p1 = curves[k]
    w, h = LABEL_CHAR_W * len(text) + 8, LABEL_FONT + 6

    def cost(t, shift):
        px, py = _quad(p0, c, p1, t)
        box = _Box(px, py + shift * (h + 2), w, h)
        clashes = sum(box.overlaps(o, 2) for o in taken)
        crossings = sum(any(box.hits(x, y) for x, y in pts)
                        for j, pts in enumerate(samples) if j != k)
        return (clashes, abs(shift), crossings, abs(t - 0.5)), box

    return min((cost(0.5 + s * i * 0.04, shift) for i in range(10) for s in (1, -1)
                for shift in (0, 1, -1)), key=lambda cb: cb[0])[1]


def _cell_svg_body(genotype: Genotype, cell: str):
    """SVG elements of one cell, its width and height (coordinates start at 0, 0)."""
    nodes, edges = cell_graph(genotype, cell)
    boxes = _layout(nodes, edges)

    # Edges: straight where nothing is in the way, else bowed round the other nodes.
    curves, seen_pairs = [], {}
    for e in edges:
        a, b = boxes[e.src], boxes[e.dst]
        k = seen_pairs.get((e.src, e.dst), 0)  # parallel edges get successive bows
        seen_pairs[(e.src, e.dst)] = k + 1
        c = _route(a, b, [box for n, box in boxes.items() if n not in (e.src, e.dst)], k)
        # End points on the box borders, along the curve's end tangents (towards c).
        curves.append((e, a.boundary(*c), c, b.boundary(*c)))
    samples = [[_quad(p0, c, p1, i / 30) for i in range(31)] for _, p0, c, p1 in curves]
    labels: dict[int, _Box] = {}
    for k, (e, *_) in enumerate(curves):
        if e.label:
            labels[k] = _place_label(e.label, k, curves, samples,
                                     list(boxes.values()) + list(labels.values()))

    # Shift everything so that nodes, labels and curves start at the margin, below the title.
    margin, title_h = 30, 36
    parts = list(boxes.values()) + list(labels.values())
    xs = [b.x - b.w / 2 for b in parts] + [x for pts in samples for x, _ in pts]
    ys = [b.y - b.h / 2 for b in parts] + [y for pts in samples for _, y in pts]
    dx, dy = margin - min(xs), margin + title_h - min(ys)

    def xy(p):
        return f"{p[0] + dx:.1f},{p[1] + dy:.1f}"

    out = [f'<text x="{margin / 2:.0f}" y="26" font-size="18" font-weight="bold">'
           f'{escape(TITLES[cell])}</text>']
    for e, p0, c, p1 in curves:
        style = ('stroke="#333" stroke-width="1.6"' if e.label
                 else 'stroke="#999" stroke-width="1.3" stroke-dasharray="5,3"')
        out.append(f'<path d="M{xy(p0)} Q{xy(c)} {xy(p1)}" fill="none" {style} '
                   f'marker-end="url(#arrow)"/>')
    for k, box in labels.items():
        out.append(f'<rect x="{box.x - box.w / 2 + dx:.1f}" y="{box.y - box.h / 2 + dy:.1f}" '
                   f'width="{box.w:.1f}" height="{box.h:.1f}" rx="3" fill="white" '
                   f'fill-opacity="0.9"/>')
        out.append(f'<text x="{box.x + dx:.1f}" y="{box.y + dy:.1f}" font-size="{LABEL_FONT}" '
                   f'text-anchor="middle" dominant-baseline="central">'
                   f'{escape(curves[k][0].label)}</text>')
    for n, kind in nodes:
        b = boxes[n]
        out.append(f'<rect x="{b.x - b.w / 2 + dx:.1f}" y="{b.y - b.h / 2 + dy:.1f}" '
                   f'width="{b.w:.1f}" height="{b.h:.1f}" rx="4" fill="{SVG_FILL[kind]}" '
                   f'stroke="#000" stroke-width="2"/>')
        out.append(f'<text x="{b.x + dx:.1f}" y="{b.y + dy:.1f}" font-size="{FONT}" '
                   f'text-anchor="middle" dominant-baseline="central">{_svg_label(n)}</text>')

    width = max([b.x + b.w / 2 for b in parts] + [x for pts in samples for x, _ in pts]) + dx
    height = max([b.y + b.h / 2 for b in parts] + [y for pts in samples for _, y in pts]) + dy
    return out, width + margin, height + margin


def _svg_label(node: str) -> str:
    """c_{k-2} -> c with a subscript k-2."""
    if node.startswith("c_{"):
        return f'c<tspan baseline-shift="sub" font-size="{FONT - 4}">{escape(node[3:-1])}</tspan>'
    return escape(node)


def genotype_svg(genotype, cells: Sequence[str] = CELL_TYPES) -> str:
    """A standalone SVG drawing of ``cells`` (stacked vertically), without graphviz."""
    genotype = load_genotype(genotype)
    parts, width, top = [], 0.0, 0.0
    for cell in cells:
        body, w, h = _cell_svg_body(genotype, cell)
        parts.append(f'<g transform="translate(0,{top:.1f})">')
        parts += ["  " + line for line in body]
        parts.append("</g>")
        width, top = max(width, w), top + h
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{top:.0f}" '
            f'viewBox="0 0 {width:.0f} {top:.0f}" font-family="Helvetica, Arial, sans-serif">',
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            'fill="#333"/></marker></defs>',
            f'<rect width="{width:.0f}" height="{top:.0f}" fill="white"/>']
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', *head, *parts, "</svg>"]) + "\n"


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
    ``python`` (the built-in SVG layout) or ``auto`` (graphviz when ``dot`` is on PATH). PNG needs
    graphviz: without it the SVG is written next to ``out_path`` and a DcpnasError says where.
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
    svg = genotype_svg(genotype, cells)
    if fmt == "png":
        svg_path = atomic_write_text(out_path.with_suffix(".svg"), svg)
        raise DcpnasError(f"{out_path}: PNG output needs graphviz 'dot' on PATH; wrote SVG to "
                          f"{svg_path} instead")
    return atomic_write_text(out_path, svg)


def draw_cell(genotype, cell: str, out_path, fmt: str | None = None, *,
              engine: str = "auto") -> Path:
    """Draw one cell (``normal`` or ``reduce``) of a genotype; see :func:`draw_genotype`."""
    return draw_genotype(genotype, out_path, fmt, cells=(cell,), engine=engine)
