"""``dcpnas search``: every method end to end through the CLI, the run directory it leaves, and its
one-line errors.

Runs use real Fashion-MNIST images (the embedded subset) average-pooled to 8×8 and saved as a
bring-your-own ``npz:`` dataset, with a 2-channel, 3-cell supernet: seconds per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from dcpnas.cli.main import main
from dcpnas.search.methods import METHODS
from dcpnas.space import PRIMITIVES, derive_genotype, load_genotype
from dcpnas.utils.logging import read_jsonl

SRC = Path(__file__).resolve().parents[1] / "src"


def tiny_args(npz, *extra):
    sets = [f"data.dataset=npz:{npz}", "data.limit=32", "data.batch_size=8", "supernet.C=2",
            "schedule.rounds=1", "data.eval_batches=1", "sample.steps=1", "sample.eval_batches=1",
            "random.samples=2", "random.eval_batches=1", "tensorboard=false",
            "log_every=1",  # a tiny run has fewer steps than the preset's log interval
            *extra]
    return [a for s in sets for a in ("--set", s)]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_writes_a_valid_genotype(method, tmp_path, tiny_npz, capsys):
    out = tmp_path / method
    code = main(["search", "--preset", "quick", "--method", method, "--out", str(out), "--quiet",
                 *tiny_args(tiny_npz)])
    assert code == 0, capsys.readouterr().err
    genotype = load_genotype(str(out / "genotype.json"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method
    assert summary["genotype"] == genotype.to_dict()
    assert summary["search_cost"]["hours"] > 0 and summary["wall_time_s"] > 0
    assert summary["final"] and all(0.0 <= v <= 1.0 for k, v in summary["final"].items() if k.endswith("acc"))
    assert "profile" in summary and summary["profile"]["params"] > 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["method"] == method and saved["meta"]["seed"] == 0
    assert saved["meta"]["torch_version"] and saved["meta"]["dcpnas_version"]
    records = list(read_jsonl(out / "log.jsonl"))
    epochs = [r for r in records if r["event"] == "epoch"]
    assert epochs and epochs[-1]["genotype"] == genotype.to_darts()
    assert len(epochs) == summary["epochs"]
    assert any(r["event"] == "step" for r in records)
    for cell in ("normal", "reduce"):
        ET.parse(out / f"cell_{cell}.svg")
    assert any((out / f"alphas.{ext}").exists() for ext in ("png", "svg"))
    assert (out / "ckpt" / "last.pt").exists()
    if method in ("dcpnas", "cpnas", "darts", "bnas"):
        last = [torch.tensor(a) for a in epochs[-1]["alphas"]]
        assert derive_genotype(*last) == genotype
    if method in ("dcpnas", "cpnas"):
        child = [r for r in epochs if r["phase"] == "child"][-1]
        assert {"G", "L_R", "teacher_acc", "child_acc", "rho", "G_share"} <= set(child)
        # λ = 0 (cpnas) computes no tangent, so there is no D to log (docs/METHOD.md, Decision L).
        assert ("D" in child) == (method == "dcpnas")
    if method == "darts":
        assert {r["phase"] for r in epochs} == {"parent"} and "parent_acc" in epochs[-1]
    if method == "bnas":
        assert {r["phase"] for r in epochs} == {"child"} and "child_CE" in epochs[-1]
    if method == "cpnas-sample":
        pruned = [r["pruned"] for r in epochs if "pruned" in r]
        assert len(epochs) == 35 and len(pruned) == 7
        # Every op but the survivor was dropped exactly once on every edge.
        for cell in range(2):
            for edge in range(14):
                dropped = [p[cell][edge] for p in pruned]
                assert len(set(dropped)) == 7
                assert len(set(PRIMITIVES) - set(dropped)) == 1
    if method == "random":
        assert [r["sample"] for r in epochs] == [1, 2]
        assert summary["final"]["child_acc"] == max(r["sample_acc"] for r in epochs)


def test_progress_and_summary_are_printed(tmp_path, tiny_npz, capsys):
    code = main(["search", "--preset", "quick", "--method", "darts", "--out", str(tmp_path / "run"),
                 *tiny_args(tiny_npz, "schedule.rounds=2")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "epoch 1/2 (parent 1)" in captured.out and "epoch 2/2 (parent 2)" in captured.out
    assert "search finished: method darts, 2 epochs" in captured.out
    assert "genotype: Genotype(normal=" in captured.out
    assert "search darts: 100% 4/4" in captured.err  # the plain (non-TTY) progress line


def one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_set_key_exits_2_with_one_line(tmp_path, capsys):
    line = one_line_error(capsys, ["search", "--out", str(tmp_path / "r"), "--set", "objective.lamb=1"])
    assert "unknown config key 'objective.lamb'" in line and "objective.lam" in line
    assert not (tmp_path / "r").exists()


def test_bad_values_and_presets_exit_2(tmp_path, capsys):
    assert "schedule" in one_line_error(capsys, ["search", "--out", str(tmp_path / "r"),
                                                 "--set", "schedule.rounds=0"])
    assert "unknown search preset 'quik'" in one_line_error(capsys, ["search", "--preset", "quik",
                                                                     "--out", str(tmp_path / "r")])
    assert "method" in one_line_error(capsys, ["search", "--method", "enas", "--out", str(tmp_path / "r")])


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    line = one_line_error(capsys, ["search", "--out", str(out), "--resume"])
    assert "nothing to resume" in line and str(out) in line
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "last.pt").write_bytes(b"")
    (out / "config.json").write_text("{}")
    line = one_line_error(capsys, ["search", "--preset", "quick", "--out", str(out)])
    assert "already holds a search run" in line and "--resume" in line


def test_cli_subprocess_resume_after_stop(tmp_path, tiny_npz):
    """The installed entry point (python -m dcpnas): stop after one epoch, then --resume."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = tmp_path / "run"
    base = [sys.executable, "-m", "dcpnas", "search", "--preset", "quick", "--out", str(out),
            *tiny_args(tiny_npz)]
    first = subprocess.run(base + ["--set", "stop_after_epochs=1"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr
    assert "stopped after epoch 1/2" in first.stdout and not (out / "genotype.json").exists()
    second = subprocess.run([sys.executable, "-m", "dcpnas", "search", "--out", str(out), "--resume",
                             "--set", "stop_after_epochs=0"], env=env, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stdout and "search finished" in second.stdout
    epochs = [r["epoch"] for r in read_jsonl(out / "log.jsonl") if r["event"] == "epoch"]
    assert epochs == [1, 2]
    load_genotype(str(out / "genotype.json"))
