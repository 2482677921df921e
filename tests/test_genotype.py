"""Genotypes: derivation from α, the three text formats, files, errors, the CLI and drawings."""

from __future__ import annotations

import json
import shutil
import struct
import xml.etree.ElementTree as ET

import pytest
import torch

from dcpnas.cli.main import main
from dcpnas.errors import DcpnasError, GenotypeError
from dcpnas.space import NAMED_GENOTYPES, PRIMITIVES, Genotype, derive_genotype, edge_index
from dcpnas.space.draw import draw_genotype, genotype_dot, genotype_figure
from dcpnas.space.genotype import load_genotype, parse_genotype_string

OP = {name: i for i, name in enumerate(PRIMITIVES)}
NAMES = sorted(NAMED_GENOTYPES)
HAS_DOT = shutil.which("dot") is not None


def alpha(entries):
    """A 14×8 α, zero except ``{(node, input): {op: value}}``."""
    a = torch.zeros(14, len(PRIMITIVES))
    for (node, inp), ops in entries.items():
        for op, v in ops.items():
            a[edge_index(node, inp), OP[op]] = v
    return a


# -- derivation --------------------------------------------------------------------------------------
def test_derive_genotype_hand_made_alpha():
    # Edge strength = softmax weight of the edge's best non-none op. With one op at v and the
    # other 7 entries at 0 that weight is e^v/(e^v + 7); a strong `none` shrinks it.
    normal = alpha({
        # node 0 keeps both edges; `none` is strongest on edge 0 and must be skipped.
        (0, 0): {"none": 5.0, "sep_conv_3x3": 2.0}, (0, 1): {"dil_conv_5x5": 3.0},
        # node 1: edges from inputs 1 (skip 4.0) and 2 (avg 2.0) beat input 0 (max 1.0).
        (1, 0): {"max_pool_3x3": 1.0}, (1, 1): {"skip_connect": 4.0}, (1, 2): {"avg_pool_3x3": 2.0},
        # node 2: input 0's raw α is the largest (3.0) but its `none` (6.0) leaves it a softmax
        # weight of e³/(e⁶+e³+6) ≈ 0.047, below input 2 (e^2.5/(e^2.5+7) ≈ 0.635) and input 1
        # (e^1.5/(e^1.5+7) ≈ 0.390); input 3 (e/(e+7) ≈ 0.280) is third.
        (2, 0): {"none": 6.0, "sep_conv_5x5": 3.0}, (2, 1): {"max_pool_3x3": 1.5},
        (2, 2): {"dil_conv_3x3": 2.5}, (2, 3): {"avg_pool_3x3": 1.0},
        # node 3: `none` everywhere strongest; the best real ops still compete by their weights.
        (3, 0): {"none": 9.0, "skip_connect": 1.0}, (3, 1): {"none": 1.0, "sep_conv_3x3": 0.5},
        (3, 2): {"none": 2.0, "dil_conv_3x3": 1.9, "max_pool_3x3": 0.2},
        (3, 3): {"none": 9.0, "sep_conv_5x5": 8.0}, (3, 4): {"none": 3.0, "avg_pool_3x3": 0.1},
    })
    # node 3 weights: in0 e/(e⁹+e+6) ≈ 3e-4; in1 e^.5/(e+e^.5+6) ≈ 0.158; in2 e^1.9/(e²+e^1.9+e^.2+5)
    # ≈ 0.336; in3 e⁸/(e⁹+e⁸+6) ≈ 0.269; in4 e^.1/(e³+e^.1+6) ≈ 0.041 -> inputs 2 then 3.
    reduce = alpha({(0, 0): {"max_pool_3x3": 1.0}, (0, 1): {"max_pool_3x3": 1.0},  # a tie
                    (1, 2): {"sep_conv_3x3": 1.0}, (1, 0): {"skip_connect": 0.5},
                    (2, 3): {"dil_conv_5x5": 1.0}, (2, 1): {"avg_pool_3x3": 0.5},
                    (3, 4): {"sep_conv_5x5": 1.0}, (3, 0): {"max_pool_3x3": 0.5}})
    g = derive_genotype(normal, reduce)
    assert g.normal == (("dil_conv_5x5", 1), ("sep_conv_3x3", 0),
                        ("skip_connect", 1), ("avg_pool_3x3", 2),
                        ("dil_conv_3x3", 2), ("max_pool_3x3", 1),
                        ("dil_conv_3x3", 2), ("sep_conv_5x5", 3))
    # Ties break towards the lower input index.
    assert g.reduce == (("max_pool_3x3", 0), ("max_pool_3x3", 1),
                        ("sep_conv_3x3", 2), ("skip_connect", 0),
                        ("dil_conv_5x5", 3), ("avg_pool_3x3", 1),
                        ("sep_conv_5x5", 4), ("max_pool_3x3", 0))
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


def test_derive_genotype_never_picks_none():
    a = torch.zeros(14, len(PRIMITIVES))
    a[:, OP["none"]] = 10.0
    a[:, OP["avg_pool_3x3"]] = 0.1
    g = derive_genotype(a, a)
    assert {op for op, _ in g.normal + g.reduce} == {"avg_pool_3x3"}


# -- formats and files --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_round_trips_every_format(name, tmp_path):
    g = NAMED_GENOTYPES[name]
    assert parse_genotype_string(g.to_darts()) == g
    assert parse_genotype_string(g.to_nested()) == g
    assert load_genotype(g.to_darts()) == g
    assert json.loads(g.to_json())["format"] == "dcpnas-genotype/1"
    g.save(tmp_path / "g.json")
    assert load_genotype(str(tmp_path / "g.json")) == g
    for fmt, text in (("darts", g.to_darts()), ("nested", g.to_nested())):
        path = tmp_path / f"g_{fmt}.py"
        path.write_text(f"{name} = {text}\n")
        assert load_genotype(str(path)) == g


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["json", "darts", "nested"])
def test_cli_convert_round_trip(name, fmt, tmp_path, capsys):
    out = tmp_path / f"g.{fmt}"
    assert main(["genotype", "convert", name, "--to", fmt, "--out", str(out)]) == 0
    assert load_genotype(str(out)) == NAMED_GENOTYPES[name]
    # ... and back to JSON from that file.
    back = tmp_path / "back.json"
    assert main(["genotype", "convert", str(out), "--to", "json", "--out", str(back)]) == 0
    assert load_genotype(str(back)) == NAMED_GENOTYPES[name]
    assert main(["genotype", "show", str(out), "--format", fmt]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_darts_file_with_range_concat(tmp_path):
    path = tmp_path / "genotypes.py"
    path.write_text(
        "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))\n")
    assert load_genotype(str(path)) == NAMED_GENOTYPES["DARTS_V2"]


def test_cli_list_and_show(capsys):
    assert main(["genotype", "list"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert "DDPNAS_MCN_2" in listed and "DCP_NAS_L (= DDPNAS_MCN_2)" in listed
    assert main(["genotype", "show", "DARTS_V1", "--format", "darts"]) == 0
    assert parse_genotype_string(capsys.readouterr().out) == NAMED_GENOTYPES["DARTS_V1"]


# -- errors -------------------------------------------------------------------------------------------
BASE = NAMED_GENOTYPES["DARTS_V2"].to_dict()


@pytest.mark.parametrize("mutate,pattern", [
    (lambda d: d["normal"].__setitem__(3, ["conv_7x7", 1]), r"normal cell, node 3: unknown operation 'conv_7x7'"),
    (lambda d: d["reduce"].__setitem__(4, ["max_pool_3x3", 4]), r"reduce cell, node 4: input 4 out of range 0\.\.3"),
    (lambda d: d["normal"].pop(), r"normal cell has 7 genes; expected 8"),
    (lambda d: d["reduce"].__setitem__(0, ["none", 0]), r"reduce cell, node 2: unknown operation 'none'"),
    (lambda d: d.__setitem__("normal_concat", [2, 2]), r"normal_concat \[2, 2\]"),
    (lambda d: d.__setitem__("extra", 1), r"unknown key\(s\) extra"),
])
def test_invalid_genotype_files(tmp_path, mutate, pattern):
    data = json.loads(json.dumps(BASE))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GenotypeError, match=pattern) as info:
        load_genotype(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unreadable_inputs(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"normal": [\n  ["sep_conv_3x3", 0],\n')
    with pytest.raises(GenotypeError, match=r"broken\.json: invalid JSON at line 3"):
        load_genotype(str(bad))
    with pytest.raises(GenotypeError, match=r"'/no/such/file\.json' is neither a file nor a known name"):
        load_genotype("/no/such/file.json")
    with pytest.raises(GenotypeError, match="only literal values"):
        load_genotype("Genotype(normal=__import__('os').getcwd())")
    with pytest.raises(GenotypeError, match="unknown field 'foo'"):
        parse_genotype_string("Genotype(foo=[])")


@pytest.mark.parametrize("argv", [["genotype", "show", "/no/such.json"],
                                  ["genotype", "convert", "nope", "--to", "json"],
                                  ["genotype", "draw", "/no/such.json", "--out", "x.svg"]])
def test_cli_errors_are_one_line_exit_2(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcpnas: error: genotype ") and err.count("\n") == 1


def test_cli_broken_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "g.json"
    bad.write_text(json.dumps({"normal": [["sep_conv_3x3", 9]] * 8, "reduce": BASE["reduce"]}))
    assert main(["genotype", "show", str(bad)]) == 2
    assert "input 9 out of range" in capsys.readouterr().err


# -- drawings -----------------------------------------------------------------------------------------
def _svg_texts(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return ["".join(el.itertext()) for el in root.iter() if el.tag.endswith("text")]


def _ops(g: Genotype, cells=("normal", "reduce")):
    return {op for c in cells for op, _ in getattr(g, c)}


@pytest.mark.skipif(not HAS_DOT, reason="graphviz dot is not installed")
def test_cli_draw_with_dot(tmp_path, capsys):
    svg, png = tmp_path / "g.svg", tmp_path / "g.png"
    assert main(["genotype", "draw", "DDPNAS_MCN_2", "--out", str(svg)]) == 0
    texts = _svg_texts(svg)
    assert _ops(NAMED_GENOTYPES["DDPNAS_MCN_2"]) <= set(texts)
    assert main(["genotype", "draw", "DDPNAS_MCN_2", "--out", str(png), "--cell", "normal"]) == 0
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width > 300 and height > 100


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_cli_draw_without_graphviz(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    g = NAMED_GENOTYPES["DDPNAS_MCN_2"]
    svg = tmp_path / "g.svg"
    assert main(["genotype", "draw", "DDPNAS_MCN_2", "--out", str(svg)]) == 0
    texts = [t.strip() for t in _svg_texts(svg)]
    assert _ops(g) <= set(texts)
    assert sum(t in _ops(g) for t in texts) == 16  # one label per gene
    assert {"normal cell", "reduction cell"} <= set(texts)
    assert sum(t in {"0", "1", "2", "3"} for t in texts) == 8
    # PNG too (matplotlib), no graphviz needed.
    png = tmp_path / "r.png"
    assert main(["genotype", "draw", "DARTS_V1", "--out", str(png), "--cell", "reduce"]) == 0
    width, height = _png_size(png)
    assert width > 300 and height > 100


PARALLEL = Genotype(normal=[("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1), ("dil_conv_3x3", 1),
                            ("max_pool_3x3", 2), ("max_pool_3x3", 2), ("sep_conv_5x5", 3), ("avg_pool_3x3", 4)],
                    normal_concat=[2, 3, 4, 5],
                    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
                    reduce_concat=[2, 3, 4, 5])


@pytest.mark.parametrize("genotype", ["DARTS_V1", "DARTS_V2", "DDPNAS_MCN_2", PARALLEL],
                         ids=["DARTS_V1", "DARTS_V2", "DDPNAS_MCN_2", "parallel-edges"])
def test_matplotlib_drawing_is_readable(genotype):
    # No two labels and no label and node overlap; every node and label lies inside the figure.
    fig = genotype_figure(genotype)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    for ax in fig.axes:
        labels = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "label"]
        nodes = [p.get_window_extent(renderer) for p in ax.patches if p.get_gid() == "node"]
        assert len(labels) == 8 and len(nodes) == 7
        boxes = labels + nodes
        for box in boxes:
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        for i, a in enumerate(labels):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (a, b)


def test_dot_source_and_errors(tmp_path):
    src = genotype_dot("DDPNAS_MCN_2", cells=("reduce",))
    assert src.count("label=\"dil_conv_5x5\"") == 2 and "cluster_normal" not in src
    assert draw_genotype("DARTS_V2", tmp_path / "g.dot").read_text() == genotype_dot("DARTS_V2")
    with pytest.raises(DcpnasError, match="cannot draw to format 'pdf'"):
        draw_genotype("DARTS_V2", tmp_path / "g.pdf")
    with pytest.raises(DcpnasError, match="unknown cell 'middle'"):
        draw_genotype("DARTS_V2", tmp_path / "g.svg", cells=("middle",))
