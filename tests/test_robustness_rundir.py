"""Run-directory ownership (``dcpnas.utils.rundir``): kinds, the OS lock and its holder's PID, stale temp
files, nesting for studies, and a search killed while it holds the lock, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcpnas.cli.main import main
from dcpnas.errors import RunDirError
from dcpnas.utils.io import atomic_write_text, remove_stale_temps
from dcpnas.utils.logging import read_jsonl
from dcpnas.utils.rundir import LOCK, MARKER, check_run_dir, claim_run_dir, run_kind

SRC = Path(__file__).resolve().parents[1] / "src"


def test_claim_writes_a_marker_and_refuses_other_kinds_and_holders(tmp_path):
    run = tmp_path / "run"
    with claim_run_dir(run, "search") as claimed:
        assert claimed.fresh and claimed.locked and run_kind(run) == "search"
        assert json.loads((run / MARKER).read_text())["kind"] == "search"
        holder = json.loads((run / LOCK).read_text())
        assert holder["pid"] == os.getpid()
        # a second claim (even from this process: flock is per open file) is refused, naming the holder
        with pytest.raises(RunDirError, match=f"in use by process {os.getpid()}"):
            with claim_run_dir(run, "search", resume=True):
                pass
    with claim_run_dir(run, "search", resume=True) as again:   # released on exit
        assert not again.fresh
    with pytest.raises(RunDirError, match="holds a search run; a train run needs its own directory"):
        check_run_dir(run, "train")
    with pytest.raises(RunDirError, match="nothing to resume"):
        check_run_dir(tmp_path / "none", "train", resume=True)


def test_a_study_claims_its_directory_and_each_sub_run_its_own(tmp_path):
    """The API the study command uses: kind 'study' for the parent, search/train for each trial."""
    study = tmp_path / "study"
    with claim_run_dir(study, "study") as parent:
        with claim_run_dir(parent.path / "trial-0", "search") as trial:
            atomic_write_text(trial.path / "result.txt", "ok")
        with claim_run_dir(parent.path / "trial-1", "train"):
            pass
    assert run_kind(study) == "study" and run_kind(study / "trial-0") == "search"
    with claim_run_dir(study, "study", resume=True):      # a study resumes with its trials in it
        pass
    with pytest.raises(RunDirError, match="holds a study run"):
        check_run_dir(study, "search")


def test_runs_written_before_markers_are_recognised(tmp_path):
    old = tmp_path / "old"
    (old / "ckpt").mkdir(parents=True)
    (old / "ckpt" / "last.pt").write_bytes(b"")
    assert run_kind(old) == "search"
    with pytest.raises(RunDirError, match="holds a search run"):
        check_run_dir(old, "train")
    with claim_run_dir(old, "search", resume=True) as run:
        assert not run.fresh and run_kind(old) == "search" and (old / MARKER).exists()


def test_stale_temp_files_of_killed_writers_are_removed_on_claim(tmp_path):
    run = tmp_path / "run"
    with claim_run_dir(run, "train"):
        pass
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = run / f".checkpoint.pt.{dead}.0123abcd.tmp"
    live = run / f".model.pt.{os.getpid()}.0123abcd.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    with claim_run_dir(run, "train", resume=True):
        pass
    assert not stale.exists() and live.exists()
    assert remove_stale_temps(run) == []


def _wait_for(predicate, timeout=120.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return predicate()
        time.sleep(0.05)
    return False


def test_a_second_writer_is_refused_then_a_kill_releases_the_lock_and_the_run_resumes(tmp_path, tiny_npz, capsys):
    """The issue's two-writers repro, and SIGKILL during the lock's lifetime followed by --resume."""
    out = tmp_path / "run"
    sets = [f"data.dataset=npz:{tiny_npz}", "supernet.C=2", "schedule.rounds=2", "data.batch_size=8",
            "data.eval_batches=1", "tensorboard=false", "schedule.steps_per_epoch=1", "data.limit=32"]
    argv = ["search", "--preset", "quick", "--method", "darts", "--quiet", "--out", str(out),
            *[a for s in sets for a in ("--set", s)]]
    # The first writer is slowed down between epochs so that it is sure to be alive while we look.
    slow = ("import sys, time; from dcpnas.search.run import loop; real = loop.SearchLoop._save\n"
            "def _save(self, *a):\n    real(self, *a); time.sleep(30)\n"
            "loop.SearchLoop._save = _save\nfrom dcpnas.cli.main import main; sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-c", slow, *argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        ckpt = out / "ckpt" / "last.pt"
        assert _wait_for(ckpt.exists, proc=first), first.stderr.read() if first.poll() is not None else "timeout"
        holder = json.loads((out / LOCK).read_text())
        assert holder["pid"] == first.pid
        capsys.readouterr()
        # a second search into the same directory (another seed): refused, the holder named
        assert main(argv + ["--set", "seed=1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"in use by process {first.pid}" in err[0], err
        assert main(argv + ["--resume"]) == 2          # resuming while it runs, too
        assert f"in use by process {first.pid}" in capsys.readouterr().err
        first.send_signal(signal.SIGKILL)              # killed while it holds the lock
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert main(["search", "--out", str(out), "--resume", "--quiet"]) == 0
    epochs = [r["epoch"] for r in read_jsonl(out / "log.jsonl") if r["event"] == "epoch"]
    total = json.loads((out / "summary.json").read_text())["epochs"]
    assert total >= 2 and epochs == list(range(1, total + 1)) and (out / "genotype.json").exists()
    assert not list(out.rglob("*.tmp"))


def test_a_training_into_a_held_directory_is_refused_naming_the_holder(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    hold = ("import sys, time\nfrom dcpnas.utils.rundir import claim_run_dir\n"
            "with claim_run_dir(sys.argv[1], 'train'):\n    print('held', flush=True)\n    time.sleep(120)\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        code = main(["train", "-g", "DARTS_V2", "--out", str(out), "--set", f"data.dataset=npz:{tiny_npz}",
                     "--set", "device=cpu"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"in use by process {holder.pid}" in err[0], err
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with claim_run_dir(out, "train"):   # the kernel released the killed holder's lock
        pass


def test_resuming_a_search_in_a_training_run_is_refused_by_kind(tmp_path):
    """The API checks the run's kind before reading its config.json as a search config."""
    from dcpnas.search import search

    run = tmp_path / "trained"
    with claim_run_dir(run, "train") as r:
        atomic_write_text(r.path / "config.json", '{"config": {"epochs": 2, "optim": {}}}')
    with pytest.raises(RunDirError, match="holds a train run"):
        search(out=run, resume=True, quiet=True)
