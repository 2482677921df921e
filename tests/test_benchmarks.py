"""The op-breakdown benchmark counts what runs and prints its table (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_op_breakdown  # noqa: E402


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
