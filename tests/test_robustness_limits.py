"""Outputs that would destroy inputs or device nodes, finished runs, reads under a memory limit, SIGTERM,
ASCII-only terminals, sizes that would allocate without bound, values that must be validated before
they reach the code, and inputs that must not be quietly misread: one test per case.

In-process runs (``dcpnas.cli.main.main``) on the tiny 8×8 npz of conftest, with the helpers of
test_robustness; the few cases that need a process of their own (a signal, a memory limit, an
encoding) run ``python -m dcpnas``.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dcpnas.cli.main import main
from dcpnas.utils.logging import read_jsonl
from dcpnas.utils.rundir import MARKER
# the finished search, training and packed model every robustness test starts from
from test_robustness import packed, search_run, train_run  # noqa: F401  (fixtures)
from test_robustness import fails, rewrite_packed, search_args, snapshot, train_args

SRC = Path(__file__).resolve().parents[1] / "src"
G = "('sep_conv_3x3', 0)"


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", **extra)


# -- 1. an output never replaces an input or a non-regular file -----------------------------------
def test_export_refuses_an_output_that_is_its_input_or_its_other_output(capsys, train_run, tmp_path):
    model = train_run / "model.pt"
    before = snapshot(train_run)
    fails(capsys, ["export", "-c", model, "--out", model], "--out is the input --checkpoint")
    link = tmp_path / "alias.pt"
    link.symlink_to(model)
    fails(capsys, ["export", "-c", link, "--out", model], "--out is the input --checkpoint")
    fails(capsys, ["export", "-c", model, "--out", tmp_path / "m.dcpnas", "--onnx", tmp_path / "m.dcpnas"],
          "--onnx and --out name the same file")
    assert snapshot(train_run) == before and not (tmp_path / "m.dcpnas").exists()
    g = tmp_path / "g.json"
    assert main(["genotype", "convert", "DARTS_V2", "--to", "json", "--out", str(g)]) == 0
    text = g.read_text()
    fails(capsys, ["genotype", "convert", g, "--to", "darts", "--out", g], "is the input")
    assert g.read_text() == text


def test_an_atomic_write_never_replaces_a_device_or_a_fifo(capsys, train_run, tmp_path):
    """Run as root, ``--out /dev/full`` replaced the device node with a regular file; a FIFO shows the
    same rename without needing root."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fails(capsys, ["export", "-c", train_run / "model.pt", "--out", fifo], str(fifo), "a FIFO, not a regular file")
    fails(capsys, ["genotype", "convert", "DARTS_V2", "--to", "json", "--out", fifo], "a FIFO")
    assert fifo.is_fifo()
    from dcpnas.errors import WriteError
    from dcpnas.utils.io import atomic_write_text

    with pytest.raises(WriteError, match="a FIFO"):
        atomic_write_text(fifo, "x")
    assert fifo.is_fifo()
    device = tmp_path / "full"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))     # as /dev/full, but ours to lose
    except OSError:
        device = Path("/dev/full")                                   # not root: it cannot be replaced
    fails(capsys, ["export", "-c", train_run / "model.pt", "--out", device], str(device), "a device")
    assert device.is_char_device()


# -- 2. a finished run is never rewritten -----------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".dcpnas.lock"))
    return dst


def test_a_finished_run_without_its_checkpoint_is_not_overwritten(capsys, tiny_npz, search_run, train_run,
                                                                   tmp_path):
    trained = _copy(train_run, tmp_path / "train")
    (trained / "checkpoint.pt").unlink()
    before = snapshot(trained)
    fails(capsys, train_args(tiny_npz, search_run / "genotype.json", trained, "seed=7"),
          "holds a finished train run", "never rewritten")
    assert snapshot(trained) == before
    searched = _copy(search_run, tmp_path / "search")
    (searched / "ckpt" / "last.pt").unlink()
    (searched / "summary.json").unlink()        # the marker alone knows it finished
    before = snapshot(searched)
    fails(capsys, search_args(tiny_npz, searched, "seed=7"), "holds a finished search run")
    assert snapshot(searched) == before


def test_resume_of_a_finished_run_says_so_and_writes_nothing(capsys, tiny_npz, search_run, train_run, tmp_path):
    for run, argv in ((search_run, ["search", "--out", str(search_run), "--resume", "--quiet"]),
                      (train_run, train_args(tiny_npz, search_run / "genotype.json", train_run) + ["--resume"])):
        before = snapshot(run)
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 0
        out, err = capsys.readouterr()
        assert "finished" in out and "nothing to resume" in out and "Traceback" not in err
        assert snapshot(run) == before


def test_demo_refuses_another_runs_directory(capsys, train_run):
    before = snapshot(train_run)
    fails(capsys, ["demo", "--out", train_run, "--device", "cpu"], "holds a train run", "demo")
    assert snapshot(train_run) == before


# -- 3. reads within bounds without reserving the bound ---------------------------------------------
def test_a_packed_model_loads_under_an_address_space_limit(packed, tiny_npz):
    """``ulimit -v 10000000`` (about 9.5 GiB, a container's limit): reading a 22 KB file must not ask
    for the 8 GiB cap. The limit is set in the child only."""
    limit = 10_000_000 * 1024

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    r = subprocess.run([sys.executable, "-m", "dcpnas", "eval", "-c", str(packed), "--device", "cpu"],
                       env=_env(), preexec_fn=cap, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "top-1" in r.stdout and "MemoryError" not in r.stderr


# -- 4. SIGTERM is SIGINT ------------------------------------------------------------------------------
def _wait_for(cond, proc, timeout=300.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if proc.poll() is not None:
            return cond()
        time.sleep(0.2)
    return False


def test_sigterm_checkpoints_says_so_and_the_resume_logs_each_epoch_once(tmp_path, tiny_npz):
    out = tmp_path / "run"
    argv = search_args(tiny_npz, out, "schedule.rounds=2")
    # Slowed down right after an epoch's record is logged, before its checkpoint: the signal arrives
    # where the log is one epoch ahead of the checkpoint.
    slow = ("import sys, time; from dcpnas.search.run import loop; real = loop.SearchLoop._save\n"
            "def _save(self, n, *a):\n    real(self, n, *a)\n    if n == 1: time.sleep(60)\n"
            "loop.SearchLoop._save = _save\nfrom dcpnas.cli.main import main; sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", slow, *map(str, argv)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        ckpt = out / "ckpt" / "last.pt"
        assert _wait_for(ckpt.exists, proc), "no checkpoint"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 143 and lines == ["dcpnas: interrupted (SIGTERM)"], (code, err)
    # the kill left the log one epoch record ahead of the checkpoint (what a SIGKILL between the two does)
    with open(out / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": "epoch", "epoch": 2}) + "\n")
    assert main(["search", "--out", str(out), "--resume", "--quiet"]) == 0
    epochs = [r["epoch"] for r in read_jsonl(out / "log.jsonl") if r.get("event") == "epoch"]
    total = json.loads((out / "summary.json").read_text())["epochs"]
    assert total >= 2 and epochs == list(range(1, total + 1))


def test_a_damaged_log_is_named_on_resume_and_a_torn_line_dropped(capsys, tiny_npz, tmp_path):
    out = tmp_path / "run"
    assert main(search_args(tiny_npz, out, "schedule.rounds=2", "stop_after_epochs=1")) == 0
    log = out / "log.jsonl"
    good = log.read_bytes()
    log.write_bytes(good + os.urandom(64).replace(b"\n", b"") + b"\n" + b'{"event": "ep')
    before = snapshot(out)
    bad_line = good.count(b"\n") + 1
    fails(capsys, ["search", "--out", out, "--resume", "--quiet"], str(log), f"line {bad_line}", "not a JSON record")
    assert snapshot(out) == before
    log.write_bytes(good + b'{"event": "ep')          # torn by a crash: dropped, with a note
    assert main(["search", "--out", str(out), "--resume", "--set", "stop_after_epochs=0"]) == 0
    assert "removed" in capsys.readouterr().out
    total = json.loads((out / "summary.json").read_text())["epochs"]
    assert [r["epoch"] for r in read_jsonl(log) if r.get("event") == "epoch"] == list(range(1, total + 1))


# -- 5. output that survives any locale -----------------------------------------------------------------
def test_an_ascii_only_stdout_gets_ascii_spellings(tiny_npz, tmp_path, monkeypatch):
    for argv in (["study", "--list"], search_args(tiny_npz, tmp_path / "run")):
        argv = [a for a in argv if a != "--quiet"]
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="ascii", errors="strict", line_buffering=True)
        err = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
        monkeypatch.setattr(sys, "stdout", stream)
        monkeypatch.setattr(sys, "stderr", err)
        code = main([str(a) for a in argv])
        stream.flush()
        monkeypatch.undo()
        assert code == 0, argv
        text = raw.getvalue().decode("ascii")
        assert text.strip()
    assert "H(alpha)" in text


def test_ascii_locale_in_a_real_process():
    r = subprocess.run([sys.executable, "-m", "dcpnas", "study", "--list"], env=_env(PYTHONIOENCODING="ascii"),
                       capture_output=True, timeout=120)
    assert r.returncode == 0 and b"Traceback" not in r.stderr and b"alpha" in r.stdout


# -- 6. sizes that allocate without bound --------------------------------------------------------------
@pytest.mark.parametrize("setting, needles", [
    ("supernet.C=100000", ("supernet.C must be at most 4096", "100000")),
    ("supernet.C=4096 supernet.layers=64", ("supernet.C=4096", "needs about", "DCPNAS_MEMORY_LIMIT")),
    ("supernet.layers=100000", ("supernet.layers must be at most 256", "100000")),
    ("objective.fisher_microbatches=1000000", ("fisher_microbatches", "data.batch_size")),
])
def test_search_sizes_are_checked_before_allocation(capsys, tiny_npz, tmp_path, setting, needles):
    fails(capsys, search_args(tiny_npz, tmp_path / "run", *setting.split()), *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, needles", [
    ("model.C=100000", ("model.C must be at most 4096", "100000")),
    ("model.C=4096 model.layers=256", ("model.C=4096", "needs about")),
    ("data.crop_padding=100000", ("data.crop_padding=100000", "8x8")),
])
def test_training_sizes_are_checked_before_allocation(capsys, tiny_npz, search_run, tmp_path, setting, needles):
    fails(capsys, train_args(tiny_npz, search_run / "genotype.json", tmp_path / "run", *setting.split(),
                             "data.augment=true"), *needles)
    assert not (tmp_path / "run").exists()


def test_the_memory_limit_can_be_stated_and_lifted(capsys, tiny_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("DCPNAS_MEMORY_LIMIT", "1M")
    fails(capsys, search_args(tiny_npz, tmp_path / "run"), "DCPNAS_MEMORY_LIMIT", "1 MiB")
    monkeypatch.setenv("DCPNAS_MEMORY_LIMIT", "lots")
    fails(capsys, search_args(tiny_npz, tmp_path / "run"), "DCPNAS_MEMORY_LIMIT='lots' is not a size")
    monkeypatch.setenv("DCPNAS_MEMORY_LIMIT", "1M")
    assert main(["--no-memory-limit", *search_args(tiny_npz, tmp_path / "run")]) == 0


def test_a_small_model_file_whose_spec_is_huge_is_refused_before_building(capsys, packed, train_run, tmp_path):
    crafted = rewrite_packed(packed, tmp_path / "big.dcpnas", lambda h: h["spec"].update(C=4096, layers=256))
    fails(capsys, ["eval", "-c", crafted], str(crafted), "C=4096, layers=256", "needs about")
    payload = torch.load(train_run / "model.pt", weights_only=True)
    payload["spec"].update(C=4096, layers=256)
    big = tmp_path / "big.pt"
    torch.save(payload, big)
    fails(capsys, ["eval", "-c", big], str(big), "needs about")
    fails(capsys, ["export", "-c", big, "--out", tmp_path / "x.dcpnas"], str(big), "needs about")
    assert not (tmp_path / "x.dcpnas").exists()


def _npy_header_bomb(path: Path, shape) -> Path:
    """A valid npz whose x_train header claims ``shape`` over a few bytes of data."""
    import zipfile

    x, y = np.zeros((4, 8, 8), np.uint8), np.arange(4) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["x_train.npy"] = buf.getvalue() + b"\0" * 256
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return path


def test_an_npz_header_that_claims_huge_images_is_refused(capsys, tmp_path):
    bomb = _npy_header_bomb(tmp_path / "bomb.npz", (1, 200000, 200000))
    assert bomb.stat().st_size < 8192
    fails(capsys, ["profile", "--dataset", f"npz:{bomb}", "--size", "XS"], str(bomb), "x_train", "claims shape")
    fails(capsys, ["search", "--preset", "quick", "--out", tmp_path / "run", "--set", f"data.dataset=npz:{bomb}"],
          "claims shape")
    assert not (tmp_path / "run").exists()


# -- 7. values that validation let through -----------------------------------------------------------
@pytest.mark.parametrize("seed", ["1e30", "-1", "100000000000000000000000", "9223372036854775808"])
def test_seeds_outside_the_generators_range(capsys, tiny_npz, search_run, tmp_path, seed):
    fails(capsys, search_args(tiny_npz, tmp_path / "s", f"seed={seed}"), "seed must be in 0..2**63-1")
    fails(capsys, train_args(tiny_npz, search_run / "genotype.json", tmp_path / "t", f"seed={seed}"),
          "seed must be in 0..2**63-1")
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


def test_a_seed_in_a_config_file_and_study_seeds(capsys, tiny_npz, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"seed": 12345678901234567890123}')
    fails(capsys, ["search", "--config", cfg, "--out", tmp_path / "s"], "seed must be in 0..2**63-1")
    fails(capsys, ["study", "smoke", "--out", tmp_path / "st", "--first-seed", "-3"], "--first-seed")
    fails(capsys, ["study", "smoke", "--out", tmp_path / "st", "--first-seed", str(2 ** 63 - 1), "--seeds", "2"],
          "--first-seed + --seeds - 1")
    assert not (tmp_path / "s").exists() and not (tmp_path / "st").exists()


def test_a_concat_list_naming_a_cell_input_is_refused(capsys, tmp_path):
    text = f"Genotype(normal=[{', '.join([G] * 8)}], normal_concat=[0], reduce=[{', '.join([G] * 8)}], reduce_concat=[2])"
    fails(capsys, ["genotype", "show", text], "normal_concat [0]", "2..5")
    g = tmp_path / "g.txt"
    g.write_text(text)
    fails(capsys, ["profile", "-g", g, "--size", "XS"], "normal_concat [0]")


def test_an_opset_outside_the_exporters_range_writes_nothing(capsys, train_run, tmp_path):
    line = fails(capsys, ["export", "-c", train_run / "model.pt", "--out", tmp_path / "m.dcpnas", "--onnx",
                          tmp_path / "m.onnx", "--opset", "99999"], "--opset 99999")
    assert len(line) < 200
    assert list(tmp_path.iterdir()) == []


# -- 8. quietly wrong ------------------------------------------------------------------------------------
def test_nested_genes_of_the_wrong_count_per_node_are_refused(capsys):
    nodes = [[G, G, G], [G], [G, G], [G, G]]
    text = (f"Genotype(normal=[{', '.join('[' + ', '.join(n) + ']' for n in nodes)}], normal_concat=[2, 3, 4, 5], "
            f"reduce=[{', '.join([G] * 8)}], reduce_concat=[2, 3, 4, 5])")
    fails(capsys, ["genotype", "show", text], "node 2 lists 3 genes", "exactly 2")


def test_resolution_one_and_a_single_class_are_refused(capsys, tiny_npz, tmp_path):
    fails(capsys, search_args(tiny_npz, tmp_path / "r", "data.resolution=1"), "resolution", "at least 4")
    x = np.zeros((16, 8, 8), np.uint8)
    one = tmp_path / "one.npz"
    np.savez(one, x_train=x, y_train=np.full(16, 3), x_test=x, y_test=np.full(16, 3))
    fails(capsys, search_args(one, tmp_path / "r"), "every 'y_train' label is 3")
    fails(capsys, train_args(one, "DARTS_V2", tmp_path / "r"), "every 'y_train' label is 3")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("entry, needles", [
    ({"label": "x", "method": "nosuch"}, ("study entry 'x'", "'nosuch'")),
    ({"label": "x", "overrides": ["objective.nosuch=1"]}, ("study entry 'x'", "nosuch")),
    ({"label": "x", "overrides": ["supernet.C=3"]}, ("study entry 'x'", "supernet")),
])
def test_study_set_files_are_checked_before_the_study_writes(capsys, tmp_path, entry, needles):
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"name": "mine", "entries": [{"label": "dcpnas"}, entry]}))
    fails(capsys, ["study", path, "--out", tmp_path / "st", "--seeds", "1"], *needles)
    assert not (tmp_path / "st").exists()


def test_format_versions_are_checked(capsys, train_run, tmp_path):
    g = tmp_path / "g.json"
    g.write_text(json.dumps({"format": "dcpnas-genotype/9", "normal": [["sep_conv_3x3", 0]] * 8,
                             "reduce": [["sep_conv_3x3", 0]] * 8}))
    fails(capsys, ["genotype", "show", g], "dcpnas-genotype/9", "dcpnas-genotype/1")
    payload = torch.load(train_run / "model.pt", weights_only=True)
    payload["format"] = "dcpnas-model/9"
    m = tmp_path / "m.pt"
    torch.save(payload, m)
    fails(capsys, ["eval", "-c", m], "dcpnas-model/9")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"config": {"seed": 1}, "meta": {"format": "dcpnas-config/9"}}))
    fails(capsys, ["search", "--config", cfg, "--out", tmp_path / "s"], "dcpnas-config/9")
    assert (json.loads((train_run / MARKER).read_text()))["format"] == "dcpnas-run/1"
