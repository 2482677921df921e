"""An adversarial sweep as tests: every bad input is one line ``dcpnas: error: …``, exit 2,
no traceback, and leaves every run directory as it was; run directories are owned; a checkpoint is
finite before it is saved; every write failure names the path, the reason and what was kept.

The bad files are written by the tests. Runs are in-process (``dcpnas.cli.main.main``) on the tiny
8×8 npz of conftest; two module fixtures provide a finished search run and a finished training run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dcpnas.cli.main import main
from dcpnas.utils.rundir import LOCK, MARKER

SEARCH_TINY = ["supernet.C=2", "schedule.rounds=1", "schedule.steps_per_epoch=1", "data.limit=32",
               "data.batch_size=8", "data.eval_batches=1", "tensorboard=false"]
TRAIN_TINY = ["model.C=4", "model.layers=3", "data.batch_size=16", "data.train_limit=32", "data.augment=false",
              "epochs=1", "step1_epochs=1", "device=cpu"]


def sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def search_args(npz, out, *extra) -> list[str]:
    return ["search", "--preset", "quick", "--quiet", "--out", str(out),
            *sets(f"data.dataset=npz:{npz}", *SEARCH_TINY, *extra)]


def train_args(npz, genotype, out, *extra) -> list[str]:
    return ["train", "-g", str(genotype), "--out", str(out), *sets(f"data.dataset=npz:{npz}", *TRAIN_TINY, *extra)]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes' hash (the lock file's holder note aside)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK}


def fails(capsys, argv, *needles, timeout: int = 120) -> str:
    """Run ``dcpnas argv`` in-process: it must exit 2 with one line naming every needle. An alarm turns
    a hang (a FIFO, /dev/zero) into a failure instead of a stuck suite."""
    capsys.readouterr()

    def hang(*_):
        raise TimeoutError(f"dcpnas {' '.join(map(str, argv))} did not return")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(timeout)
    try:
        code = main([str(a) for a in argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("dcpnas")]   # progress lines aside
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("dcpnas: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def search_run(tiny_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "search"
    assert main(search_args(tiny_npz, out)) == 0
    return out


@pytest.fixture(scope="module")
def train_run(tiny_npz, search_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "train"
    assert main(train_args(tiny_npz, search_run / "genotype.json", out)) == 0
    return out


@pytest.fixture(scope="module")
def packed(train_run, tmp_path_factory):
    from dcpnas.train.export import export_packed

    path = tmp_path_factory.mktemp("packed") / "m.dcpnas"
    export_packed(train_run / "model.pt", path)
    return path


# -- 1. run directories are owned ------------------------------------------------------------------
def test_runs_of_another_kind_or_no_run_are_refused_and_left_unchanged(capsys, tiny_npz, search_run, train_run,
                                                                      tmp_path):
    before = {d: snapshot(d) for d in (search_run, train_run)}
    genotype = search_run / "genotype.json"
    # the repro: a training into the search's directory, a search into the training's
    fails(capsys, train_args(tiny_npz, genotype, search_run), str(search_run), "holds a search run")
    fails(capsys, search_args(tiny_npz, train_run), str(train_run), "holds a train run")
    fails(capsys, search_args(tiny_npz, train_run, "stop_after_epochs=1") + ["--resume"], "holds a train run")
    fails(capsys, train_args(tiny_npz, genotype, search_run) + ["--resume"], "holds a search run")
    # a finished search run is not overwritten by a search either
    fails(capsys, search_args(tiny_npz, search_run), "holds a finished search run", "never rewritten")
    assert {d: snapshot(d) for d in (search_run, train_run)} == before
    # a directory with other things in it is nobody's run directory
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    fails(capsys, search_args(tiny_npz, other), "holds no dcpnas run", "holiday.jpg")
    fails(capsys, train_args(tiny_npz, genotype, other), "holds no dcpnas run")
    assert snapshot(other) == {"holiday.jpg": hashlib.sha256(b"\xff\xd8").hexdigest()}
    # a damaged marker
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MARKER).write_text("{not json")
    fails(capsys, search_args(tiny_npz, broken), MARKER, "not a dcpnas run marker")


def test_nothing_is_written_before_the_inputs_are_validated(capsys, tiny_npz, search_run, train_run, tmp_path):
    genotype = search_run / "genotype.json"
    fresh = tmp_path / "fresh"
    fails(capsys, train_args(tiny_npz, genotype, fresh, "data.dataset=npz:/no/such.npz"), "/no/such.npz")
    fails(capsys, search_args(tiny_npz, fresh, "data.dataset=npz:/no/such.npz"), "/no/such.npz")
    fails(capsys, train_args(tiny_npz, genotype, fresh, "optim.lr=nan"), "optim.lr", "finite")
    fails(capsys, search_args(tiny_npz, fresh, "optim.w.lr=nan"), "optim.w.lr", "finite")
    fails(capsys, search_args(tiny_npz, fresh, "optim.alpha.lr=inf"), "optim.alpha.lr", "finite")
    assert not fresh.exists()
    # a training that fails on a bad dataset leaves its run (config.json included) as it was
    run = _copy_run(train_run, tmp_path / "unfinished")
    before = snapshot(run)
    fails(capsys, train_args(tiny_npz, genotype, run, "data.dataset=npz:/no/such.npz") + ["--resume"],
          "/no/such.npz")
    fails(capsys, train_args(tiny_npz, genotype, run, "epochs=3") + ["--resume"], "epochs")
    assert snapshot(run) == before


def test_resume_needs_a_run_and_paths_must_be_directories(capsys, tiny_npz, search_run, tmp_path):
    genotype = search_run / "genotype.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(capsys, train_args(tiny_npz, genotype, empty) + ["--resume"], "nothing to resume", str(empty))
    fails(capsys, train_args(tiny_npz, genotype, tmp_path / "missing") + ["--resume"], "nothing to resume")
    fails(capsys, search_args(tiny_npz, empty) + ["--resume"], "nothing to resume")
    assert list(empty.iterdir()) == []
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    fails(capsys, search_args(tiny_npz, a_file), str(a_file), "not a directory")
    fails(capsys, train_args(tiny_npz, genotype, a_file), str(a_file), "not a directory")
    fails(capsys, search_args(tiny_npz, ""), "empty string")
    fails(capsys, train_args(tiny_npz, genotype, ""), "empty string")
    fails(capsys, search_args(tiny_npz, a_file / "run"), "is not a directory")
    fails(capsys, train_args(tiny_npz, genotype, "/proc/no-such-pid/run"), "/proc/no-such-pid/run")
    fails(capsys, search_args(tiny_npz, "/proc/no-such-pid/run"), "/proc/no-such-pid/run")
    assert a_file.read_text() == "x"


# -- 2. a checkpoint is finite before it is saved ----------------------------------------------------
def test_a_huge_learning_rate_stops_before_saving_a_non_finite_state(capsys, tiny_npz, tmp_path):
    # The divergence guard (a cross-entropy above utils.finite.DIVERGED) stops it at its first step,
    # before any state could go non-finite; the injected-inf test below covers the state check.
    out = tmp_path / "run"
    fails(capsys, search_args(tiny_npz, out, "method=darts", "schedule.steps_per_epoch=2", "optim.w.lr=1e12"),
          "diverged", "lower the learning rate", "no epoch finished")
    assert not (out / "ckpt" / "last.pt").exists()


def test_search_state_check_names_the_previous_checkpoint(capsys, tiny_npz, tmp_path, monkeypatch):
    """Every tensor of the state is checked, not only the losses: a BatchNorm running_var of inf is
    not saved as 'last good'."""
    from dcpnas.search.run import loop
    from dcpnas.search.run.checkpoint import load_search_checkpoint
    from dcpnas.utils.finite import first_non_finite

    real = loop.sync_batchnorm_stats
    calls = {"n": 0}

    def sync_then_overflow(*nets):  # epoch 2: the losses are fine, a BN statistic is not
        real(*nets)
        calls["n"] += 1
        if calls["n"] == 2:
            next(b for n, b in nets[0].named_buffers() if n.endswith("running_var")).fill_(float("inf"))

    monkeypatch.setattr(loop, "sync_batchnorm_stats", sync_then_overflow)
    out = tmp_path / "run"
    ckpt = out / "ckpt" / "last.pt"
    fails(capsys, search_args(tiny_npz, out), "running_var holds NaN/Inf", f"the last good checkpoint is {ckpt}")
    state = load_search_checkpoint(ckpt)
    assert state["epochs_done"] == 1 and first_non_finite(state["method_state"]) is None


def test_train_state_check_names_the_previous_checkpoint(capsys, tiny_npz, search_run, tmp_path, monkeypatch):
    from dcpnas.train import trainer
    from dcpnas.train.checkpoint import load_state
    from dcpnas.utils.finite import first_non_finite

    real = trainer.sync_batchnorm_stats
    calls = {"n": 0}

    def sync_then_overflow(model):
        real(model)
        calls["n"] += 1
        if calls["n"] == 2:
            next(b for n, b in model.named_buffers() if n.endswith("running_var")).fill_(float("inf"))

    monkeypatch.setattr(trainer, "sync_batchnorm_stats", sync_then_overflow)
    out = tmp_path / "run"
    ckpt = out / "checkpoint.pt"
    # (no BN re-estimation: it would recompute the poisoned statistic before the check)
    fails(capsys, train_args(tiny_npz, search_run / "genotype.json", out, "bn_recalibration=0"),
          "running_var holds NaN/Inf", f"the last good checkpoint is {ckpt}")
    state = load_state(ckpt)
    assert (state["stage"], state["epoch"]) == (0, 1) and first_non_finite(state["state_dict"]) is None


# -- 3. write failures are one line: path, reason, what was kept ------------------------------------
def _failing_save(monkeypatch, exc, on_call: int):
    real = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == on_call:
            f.write(b"half a checkpoint")
            raise exc
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)


def test_disk_full_during_a_checkpoint_keeps_the_last_one(capsys, tiny_npz, tmp_path, monkeypatch):
    out = tmp_path / "run"
    ckpt = out / "ckpt" / "last.pt"
    _failing_save(monkeypatch, OSError(errno.ENOSPC, "No space left on device"), on_call=2)
    fails(capsys, search_args(tiny_npz, out), f"cannot write {ckpt}", "no space left on device",
          f"the last good checkpoint is {ckpt}")
    assert torch.load(ckpt, weights_only=True)["epochs_done"] == 1
    assert not [p for p in out.rglob("*.tmp")]


def test_torch_zip_writer_failure_is_one_line(capsys, tiny_npz, search_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _failing_save(monkeypatch, RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 576 vs 470"),
                  on_call=1)
    fails(capsys, train_args(tiny_npz, search_run / "genotype.json", out), f"cannot write {out / 'checkpoint.pt'}",
          "unexpected pos", "no epoch had finished")


def test_permission_denied_on_a_result_file(capsys, tiny_npz, tmp_path, monkeypatch):
    real_open = os.open

    def deny(path, flags, *a, **k):
        if ".summary.json." in os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", deny)
    out = tmp_path / "run"
    fails(capsys, search_args(tiny_npz, out), f"cannot write {out / 'summary.json'}", "permission denied",
          f"the last good checkpoint is {out / 'ckpt' / 'last.pt'}; --resume writes the results again")
    monkeypatch.undo()
    assert main(["search", "--out", str(out), "--resume", "--quiet"]) == 0    # and so it does
    assert json.loads((out / "summary.json").read_text())["epochs"] >= 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory(capsys, tiny_npz, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        fails(capsys, search_args(tiny_npz, out), str(out), "permission denied")
    finally:
        out.chmod(0o700)


# -- 4. reads are bounded -------------------------------------------------------------------------
G8 = ("[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1), "
      "('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 1)]")


def genotype_text(concat: str) -> str:
    return f"Genotype(normal={G8}, normal_concat={concat}, reduce={G8}, reduce_concat=[2, 3])"


@pytest.mark.parametrize("concat, culprit", [
    ("range(0, 1000000000)", "1000000000 elements"),
    ("range(2, 6, 0)", "step must not be zero"),
    ("range('a')", "range() takes 1 to 3 integers"),
    ("'2345'", "normal_concat must be a list"),
    ("[True, False]", "normal_concat must be a list"),
    ("[2.0, 3.0]", "normal_concat must be a list"),
])
def test_genotype_text_is_parsed_within_bounds(capsys, tmp_path, concat, culprit):
    fails(capsys, ["genotype", "show", genotype_text(concat)], culprit)
    path = tmp_path / "g.txt"
    path.write_text(genotype_text(concat))
    fails(capsys, ["genotype", "show", path], culprit, str(path))


def test_devices_fifos_and_huge_files_are_refused(capsys, tmp_path):
    fails(capsys, ["genotype", "show", "/dev/zero"], "/dev/zero", "not a regular file", timeout=30)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fails(capsys, ["genotype", "show", fifo], "FIFO", timeout=30)
    fails(capsys, ["eval", "--checkpoint", fifo], "FIFO", timeout=30)
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(8 << 20)                       # sparse: 8 MiB of zeros, no disk used
    fails(capsys, ["genotype", "show", huge], "at most 4 MiB")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    fails(capsys, ["genotype", "show", deep], "nested too deeply")


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_labels_and_empty_splits_are_bounded(capsys, tiny_npz, search_run, tmp_path):
    x, y = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 2, 1_000_000_000])
    genotype = search_run / "genotype.json"
    for name, arrays, culprit in [
        ("labels.npz", dict(x_train=x, y_train=y, x_test=x, y_test=y), "label 1000000000"),
        ("noimages.npz", dict(x_train=x[:0], y_train=y[:0], x_test=x, y_test=y[:4] % 3), "holds no images"),
        ("notest.npz", dict(x_train=x, y_train=y % 3, x_test=x[:0], y_test=y[:0]), "holds no images"),
    ]:
        path = _npz(tmp_path / name, **arrays)
        fails(capsys, train_args(tiny_npz, genotype, tmp_path / "run", f"data.dataset=npz:{path}"), name, culprit)
        fails(capsys, search_args(tiny_npz, tmp_path / "run", f"data.dataset=npz:{path}"), name, culprit)
    assert not (tmp_path / "run").exists()


# -- 5. output paths -------------------------------------------------------------------------------
def test_output_paths_of_export_and_genotype(capsys, train_run, tmp_path):
    model = train_run / "model.pt"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    fails(capsys, ["export", "-c", model, "--out", tmp_path], str(tmp_path), "it is a directory")
    fails(capsys, ["export", "-c", model, "--out", "/proc/no-such-pid/m.dcpnas"], "/proc/no-such-pid/m.dcpnas")
    fails(capsys, ["export", "-c", model, "--out", a_file / "m.dcpnas"], "is not a directory")
    fails(capsys, ["export", "-c", model, "--out", tmp_path / "m.dcpnas", "--onnx", tmp_path], "it is a directory")
    fails(capsys, ["export", "-c", model, "--out", tmp_path / "m.dcpnas", "--onnx", a_file / "m.onnx"],
          "is not a directory")
    assert not (tmp_path / "m.dcpnas").exists()      # checked before anything was written
    fails(capsys, ["export", "-c", model, "--out", tmp_path / "m.dcpnas", "--onnx", tmp_path / "m.onnx",
                   "--opset", "1"], "ONNX export", "opset 1")
    assert not (tmp_path / "m.onnx").exists()
    fails(capsys, ["genotype", "convert", "DARTS_V2", "--to", "json", "--out", tmp_path], "it is a directory")
    fails(capsys, ["genotype", "convert", "DARTS_V2", "--to", "json", "--out", "/proc/no-such-pid/g.json"],
          "/proc/no-such-pid/g.json")
    fails(capsys, ["genotype", "draw", "DARTS_V2", "--out", a_file / "g.svg"], "is not a directory")
    fails(capsys, ["genotype", "convert", "DARTS_V2", "--to", "json", "--out", ""], "no file name")
    assert a_file.read_text() == "x"


# -- 6. crafted but loadable files ----------------------------------------------------------------
@pytest.mark.parametrize("field, value, culprit", [
    ("spec.mean", 5, "'mean'"),
    ("spec.C", "four", "'C'"),
    ("spec.layout", ["cifar"], "'layout'"),
    ("spec.binary", "yes", "'binary'"),
    ("state_dict", [1, 2], "'state_dict'"),
    ("metrics", "great", "'metrics'"),
])
def test_crafted_model_files(capsys, train_run, tmp_path, field, value, culprit):
    payload = torch.load(train_run / "model.pt", weights_only=True)
    *parents, key = field.split(".")
    target = payload
    for p in parents:
        target = target[p]
    target[key] = value
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    for argv in (["eval", "-c", path], ["export", "-c", path, "--out", tmp_path / "m.dcpnas"]):
        fails(capsys, argv, str(path), culprit)


def _copy_run(src: Path, dst: Path) -> Path:
    """A copy of the finished run ``src`` as it was before its last step: no summary, not marked
    finished (a finished run is never resumed)."""
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(LOCK, "summary.json"))
    marker = json.loads((dst / MARKER).read_text())
    marker.pop("finished", None)
    (dst / MARKER).write_text(json.dumps(marker))
    return dst


@pytest.mark.parametrize("mutate, culprit", [
    (lambda s: s.update(epochs_done="two"), "'epochs_done'"),
    (lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)), "does not fit this run"),
    (lambda s: s["method_state"].update(shapes=s["method_state"]["shapes"] * 1000), "tensors are damaged"),
])
def test_crafted_search_checkpoints_on_resume(capsys, tiny_npz, search_run, tmp_path, mutate, culprit):
    run = _copy_run(search_run, tmp_path / "run")
    ckpt = run / "ckpt" / "last.pt"
    state = torch.load(ckpt, weights_only=True)
    mutate(state)
    torch.save(state, ckpt)
    fails(capsys, ["search", "--out", run, "--resume", "--quiet"], str(ckpt), culprit)


def test_crafted_training_checkpoint_on_resume(capsys, tiny_npz, search_run, train_run, tmp_path):
    run = _copy_run(train_run, tmp_path / "run")
    ckpt = run / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    state["state_dict"] = {k + ".x": v for k, v in state["state_dict"].items()}
    torch.save(state, ckpt)
    fails(capsys, train_args(tiny_npz, search_run / "genotype.json", run) + ["--resume"], str(ckpt),
          "does not fit this run")


def rewrite_packed(src: Path, dst: Path, mutate) -> Path:
    """``src`` with its header changed by ``mutate(header)``: the data section and its checksum stay
    valid, so only the header's own checks can refuse it."""
    raw = src.read_bytes()
    (hlen,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(zlib.decompress(raw[16:16 + hlen]))
    data = raw[header["data_offset"]:header["data_offset"] + header["data_size"]]
    mutate(header)
    offset = 0
    while True:
        header["data_offset"] = offset
        h = zlib.compress(json.dumps(header).encode())
        if 16 + len(h) <= offset:
            break
        offset = 16 + len(h) + (-(16 + len(h))) % 64
    prefix = b"DCPNASPK" + struct.pack("<Q", len(h)) + h
    dst.write_bytes(prefix + b"\0" * (offset - len(prefix)) + data)
    return dst


def _first(h, **changes):
    h["tensors"][0].update(changes)


@pytest.mark.parametrize("mutate, culprit", [
    (lambda h: _first(h, dtype="complex128"), "unknown dtype"),
    (lambda h: h["tensors"][0].pop("offset"), "offset"),
    (lambda h: _first(h, shape=[3, 3, 3, 3, 3]), "needs"),
    (lambda h: _first(h, shape=[1 << 20, 1 << 20, 64]), "needs"),          # 256 GB of float32
    (lambda h: _first(h, encoding="rot13"), "unknown encoding"),
    (lambda h: _first(h, offset=1 << 40), "outside the data section"),
    (lambda h: h["spec"].update(image_size="big"), "'image_size'"),
    (lambda h: h.update(tensors="all of them"), "tensor list"),
])
def test_crafted_packed_files(capsys, packed, tmp_path, mutate, culprit):
    path = rewrite_packed(packed, tmp_path / "crafted.dcpnas", mutate)
    fails(capsys, ["eval", "-c", path], str(path), culprit)


# -- 8. the minor ones -----------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_a_malicious_pickle_is_named_as_such(capsys, tmp_path):
    import pickle

    for name, write in (("evil.pkl", lambda p: p.write_bytes(pickle.dumps(_Evil()))),
                        ("evil.pt", lambda p: torch.save({"x": _Evil()}, p))):
        path = tmp_path / name
        write(path)
        line = fails(capsys, ["eval", "-c", path], str(path), "holds Python objects that dcpnas never loads")
        assert "weights_only" not in line and "corrupt" not in line


def test_eval_checks_the_images_and_that_there_are_some(capsys, train_run, tmp_path):
    fails(capsys, ["eval", "-c", train_run / "model.pt", "--dataset", "embedded", "--device", "cpu"],
          "1x28x28", "1x8x8")
    x, y = np.zeros((4, 8, 8), np.uint8), np.arange(4) % 10
    empty = _npz(tmp_path / "notest.npz", x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    fails(capsys, ["eval", "-c", train_run / "model.pt", "--dataset", f"npz:{empty}", "--device", "cpu"],
          "notest.npz", "holds no images")


def test_packed_models_are_named_where_a_model_file_is_needed(capsys, tiny_npz, search_run, packed, tmp_path):
    genotype = search_run / "genotype.json"
    fails(capsys, train_args(tiny_npz, genotype, tmp_path / "a", f"model.init_from={packed}"),
          "packed .dcpnas model", "model.init_from", "model.pt")
    fails(capsys, train_args(tiny_npz, genotype, tmp_path / "b", "teacher.kind=checkpoint",
                             f"teacher.checkpoint={packed}"), "packed .dcpnas model", "teacher.checkpoint")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
