"""The benchmarks count what runs and print their tables (no timing is asserted). ``benchmarks/`` is
on the tests' import path (``pythonpath`` in pyproject.toml), as it is for a script run from it."""

from __future__ import annotations

import torch

import _common
import bench_op_breakdown


def test_op_timer_counts_each_aten_call():
    a, b = torch.ones(4), torch.full((4,), 2.0)
    timer = bench_op_breakdown.OpTimer()
    with timer:
        c = a + b
        c = c * b
        c = c + a
    assert torch.equal(c, torch.full((4,), 7.0))          # results pass through unchanged
    assert timer.stats["add"][0] == 2 and timer.stats["mul"][0] == 1
    assert all(seconds >= 0 for _, seconds in timer.stats.values())


def test_breakdown_table_on_a_tiny_search(capsys):
    bench_op_breakdown.main(["--variant", "cpnas", "--C", "4", "--layers", "3", "--batch", "4", "--size", "8",
                             "--warmup", "0", "--rows", "3"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| aten op | parent pair ms | calls | child pair ms | calls |")
    assert len(lines) == 1 + 3 + 3                            # header, 3 ops, other/outside/wall
    assert "| convolution" in out and "Child pair ÷ Parent pair:" in out


def test_compile_table_on_a_tiny_edge(capsys):
    import bench_compile
    bench_compile.main(["--C", "4", "--size", "6", "--batch", "2", "--repeats", "1", "--backend", "aot_eager"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| full") or line.startswith("| alpha")]
    assert len(rows) == 2 and all(len(r.split("|")) == 9 for r in rows)
    assert "compile time" in out


def test_op_layout_variants_each_change_the_child_edge(capsys):
    """Every ablation edits the edge it names (its output or its input gradient differs from the
    Child's on one batch: the mid PReLU sits before a sign, so only the gradient sees it), and the
    table prints the Parent and every variant."""
    import argparse

    import bench_op_layout
    args = argparse.Namespace(C=4, stride=1, size=6, batch=3)
    x0 = torch.randn(args.batch, args.C, args.size, args.size).contiguous(memory_format=torch.channels_last)
    w = torch.softmax(torch.randn(8), 0)

    def run(edit):
        x = x0.clone().requires_grad_()
        out = bench_op_layout.build(True, args, edit)(x, w)
        out.backward(torch.cos(out.detach()))
        return out.detach(), x.grad

    child = run(None)
    for name, edit in bench_op_layout.VARIANTS.items():
        got = run(edit)
        assert got[0].shape == child[0].shape
        same = torch.equal(got[0], child[0]) and torch.equal(got[1], child[1])
        assert (edit is None) == same, name
    bench_op_layout.main(["--C", "4", "--size", "6", "--batch", "3", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 1 + len(bench_op_layout.VARIANTS)
    assert rows[1].startswith("| parent |") and rows[1].split("|")[3].strip() == "1.00"


def test_op_layout_round_edits_the_child_supernet_it_times(capsys):
    """--round builds CP-NAS with the Child supernet edited; the cached module walks forget the
    removed BNs (so L_R, R(w) and BN freezing see the edited network); the table prints each variant."""
    import argparse

    import bench_op_layout
    from dcpnas.kernels import BatchNorm2d
    from dcpnas.utils.modules import modules_of_type

    seen = {}

    def edit(net):
        seen["before"] = len(modules_of_type(net, BatchNorm2d))
        bench_op_layout.VARIANTS["no mid BN + PReLU"](net)
        seen["net"] = net

    tiny = argparse.Namespace(C=4, layers=3, batch=4, size=8, channels=3, overrides=[])
    pairs, batch = _common.build_round("cpnas", tiny, torch.device("cpu"), edit)
    after = len(modules_of_type(seen["net"], BatchNorm2d))
    assert 0 < after < seen["before"]
    for steps in pairs.values():
        _common.run_pair(steps, batch)               # the edited pairs run
    bench_op_layout.main(["--round", "child", "no mid BN", "--C", "4", "--layers", "3", "--batch", "4",
                          "--size", "8", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows] == ["Child supernet", "child", "no mid BN"]
