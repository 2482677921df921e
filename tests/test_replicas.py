"""`dcpnas search --replicas K`: K searches as resumable subprocesses, their consensus genotype (which
loads wherever a genotype does), agreement.json and pictures; a kill resumes; bad input is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcpnas.space import distribution as dist
from dcpnas.space.genotype import from_dict, load_genotype
from dcpnas.utils.rundir import MARKER

pytestmark = pytest.mark.slow

TINY = ["supernet.C=2", "schedule.rounds=1", "schedule.steps_per_epoch=1", "data.limit=32",
        "data.batch_size=8", "data.eval_batches=1", "tensorboard=false"]


def _cmd(npz, out, *extra, k=3, jobs=2, sets=()):
    return [sys.executable, "-m", "dcpnas", "search", "--replicas", str(k), "--jobs", str(jobs),
            "--out", str(out), *extra, "--set", f"data.dataset=npz:{npz}", *TINY, *sets]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, **kw)  # a loaded machine


def _replica_genotypes(out: Path, k: int):
    return [from_dict(json.loads((out / "replicas" / f"r{r}" / "summary.json").read_text())["genotype"])
            for r in range(k)]


@pytest.fixture(scope="module")
def replicated(tmp_path_factory, tiny_npz):
    out = tmp_path_factory.mktemp("rep") / "X"
    r = _run(_cmd(tiny_npz, out))
    assert r.returncode == 0, r.stderr
    return out, r


def test_replicas_write_the_consensus_and_its_agreement(replicated):
    out, r = replicated
    line = [s for s in r.stdout.splitlines() if s.startswith("consensus:")]
    assert len(line) == 1 and line[0].endswith("choices made by >= 2 of 3 replicas"), r.stdout
    gs = _replica_genotypes(out, 3)
    seeds = [json.loads((out / "replicas" / f"r{i}" / "summary.json").read_text())["seed"] for i in range(3)]
    assert seeds == [0, 1, 2]
    consensus = load_genotype(str(out / "genotype.json"))
    assert consensus == dist.consensus(gs, [_alphas(out, i) for i in range(3)])[0]
    agr = json.loads((out / "agreement.json").read_text())
    assert agr["line"] == line[0] and agr["replicas"] == 3 and agr["mode"] == "seed"
    for cell in ("normal", "reduce"):
        assert agr["frequency"][cell] == dist.frequency(gs)[cell].tolist()
        assert (out / f"agreement_{cell}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"cell_{cell}.svg").exists()
    assert agr["agreement"]["majority_choices"] == sum(c["count"] >= 2 for c in agr["choices"])
    assert [row["genotype"] for row in agr["replica_results"]] == [g.to_darts() for g in gs]


def _alphas(out, r):
    from dcpnas.search.results import final_alphas

    return final_alphas(out / "replicas" / f"r{r}")


def test_the_consensus_loads_in_train_profile_and_draw(replicated, tiny_npz, tmp_path):
    out, _ = replicated
    g = str(out / "genotype.json")
    cli = [sys.executable, "-m", "dcpnas"]
    r = _run(cli + ["profile", "-g", g, "--size", "S", "--dataset", "fashion-mnist", "--json"])
    assert r.returncode == 0, r.stderr
    r = _run(cli + ["genotype", "draw", g, "-o", str(tmp_path / "c.svg"), "--engine", "python"])
    assert r.returncode == 0, r.stderr
    train = ["model.C=4", "model.layers=3", "data.batch_size=16", "data.train_limit=32",
             "data.augment=false", "epochs=1", "step1_epochs=1", "device=cpu"]
    r = _run(cli + ["train", "-g", g, "--out", str(tmp_path / "t"), "--set", f"data.dataset=npz:{tiny_npz}",
                    *train])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t" / "summary.json").exists()


def test_rerun_skips_finished_replicas_and_resumes_the_others(replicated, tiny_npz):
    out, _ = replicated
    rep = out / "replicas"
    stamp = (rep / "r0" / "summary.json").stat().st_mtime_ns
    (rep / "r1" / "summary.json").unlink()      # as if killed after its last checkpoint:
    marker = json.loads((rep / "r1" / MARKER).read_text())
    del marker["finished"]                      # ... so not yet marked finished either
    (rep / "r1" / MARKER).write_text(json.dumps(marker))
    import shutil
    shutil.rmtree(rep / "r2")                   # as if killed before its first checkpoint
    r = _run(_cmd(tiny_npz, out))
    assert r.returncode == 0, r.stderr
    assert "seed mode; 1 done)" in r.stdout
    assert (rep / "r0" / "summary.json").stat().st_mtime_ns == stamp
    commands = [s for s in (rep / "r1.log").read_text().splitlines() if s.startswith("$ ")]
    assert "--resume" not in commands[0] and "--resume" in commands[-1]
    assert (rep / "r2" / "summary.json").exists()
    # --resume with the directory alone continues from what it saved.
    r = _run([sys.executable, "-m", "dcpnas", "search", "--out", str(out), "--resume"])
    assert r.returncode == 0 and "seed mode; 3 done)" in r.stdout, r.stderr
    assert "consensus:" in r.stdout
    # --quiet keeps the agreement line alone.
    r = _run([sys.executable, "-m", "dcpnas", "search", "--out", str(out), "--resume", "--quiet"])
    agreement = json.loads((out / "agreement.json").read_text())["line"]
    assert r.returncode == 0 and r.stdout.splitlines() == [agreement], r.stdout + r.stderr


def test_a_killed_replica_set_resumes(tmp_path, tiny_npz):
    out = tmp_path / "K"
    cmd = _cmd(tiny_npz, out, k=2, jobs=2, sets=["schedule.rounds=2"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=os.setpgrp)   # its own process group
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list(out.glob("replicas/r*/ckpt/last.pt")):
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)     # the command and its replicas
        proc.wait()
    assert list(out.glob("replicas/r*/ckpt/last.pt"))
    assert not (out / "agreement.json").exists()
    r = _run(cmd)
    assert r.returncode == 0, r.stderr
    assert "consensus:" in r.stdout
    logs = "".join((out / "replicas" / f"r{i}.log").read_text() for i in range(2))
    assert "--resume" in logs
    # More replicas extend the set; fewer would rewrite its consensus without some of them: refused.
    r = _run(_cmd(tiny_npz, out, k=3, jobs=2, sets=["schedule.rounds=2"]))
    assert r.returncode == 0 and "seed mode; 2 done)" in r.stdout and "of 3 replicas" in r.stdout, r.stderr
    written = {name: (out / name).read_bytes() for name in ("genotype.json", "agreement.json", "replicas.json")}
    assert json.loads(written["agreement.json"])["replicas"] == 3
    r = _run(cmd)
    assert r.returncode == 2 and "holds a set of 3 replicas; --replicas 2 would drop r2" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert {name: (out / name).read_bytes() for name in written} == written


def test_perturb_mode_changes_alpha0_only():
    import torch

    from dcpnas.search import resolve_search_config
    from dcpnas.search.run.learner import build_supernet
    from dcpnas.search.replicas import MODES

    cfg = resolve_search_config(preset="quick", overrides=["seed=5"])
    assert MODES["seed"]().overrides(cfg, 2) == ["seed=7"]
    over = MODES["perturb"]().overrides(cfg, 2)
    assert over == ["supernet.alpha_perturbation=1e-09", "supernet.alpha_perturbation_seed=2"]
    nets = []
    for r in (0, 1):
        c = resolve_search_config(preset="quick", overrides=["seed=5", "supernet.C=2",
                                                             *MODES["perturb"]().overrides(cfg, r)])
        torch.manual_seed(0)
        nets.append(build_supernet("parent", c, 1, 10, torch.device("cpu")))
    a0, a1 = (n.arch_parameters()[0].detach() for n in nets)
    assert 0 < (a0 - a1).abs().max() < 1e-8


@pytest.mark.parametrize("args, match", [
    (["--replicas", "1"], "--replicas must be in 2..100"),
    (["--replicas", "2", "--jobs", "0"], "--jobs must be in 1..64"),
    (["--jobs", "2"], "go with --replicas"),
    (["--replica-mode", "perturb"], "go with --replicas"),
    (["--replicas", "2", "--set", "objective.lam=oops"], "objective.lam"),
])
def test_bad_replica_options_are_one_line(tmp_path, args, match):
    r = _run([sys.executable, "-m", "dcpnas", "search", "--out", str(tmp_path / "o"), *args])
    assert r.returncode == 2
    assert r.stderr.startswith("dcpnas: error:") and match in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_replica_directory_refuses_other_runs(replicated, tiny_npz, tmp_path):
    out, _ = replicated
    cli = [sys.executable, "-m", "dcpnas"]
    r = _run(_cmd(tiny_npz, out, sets=["objective.lam=1"]))          # another configuration
    assert r.returncode == 2 and "objective.lam" in r.stderr and "Traceback" not in r.stderr
    r = _run(_cmd(tiny_npz, out, "--replica-mode", "perturb"))
    assert r.returncode == 2 and "mode 'seed'" in r.stderr
    r = _run(cli + ["search", "--out", str(out), "--set", f"data.dataset=npz:{tiny_npz}", *TINY])
    assert r.returncode == 2 and "holds a replicas run" in r.stderr
    r = _run(cli + ["search", "--out", str(tmp_path / "none"), "--resume", "--replicas", "2"])
    assert r.returncode == 2 and "nothing to resume" in r.stderr
