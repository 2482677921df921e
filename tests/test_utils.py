"""Shared utilities: atomic I/O, JSON-lines logs, progress, devices / seeding / distributed helpers."""

from __future__ import annotations

import io
import json
import os
import random
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dcpnas.errors import DataError, DcpnasError
from dcpnas.utils import distributed as D
from dcpnas.utils.io import atomic_save, atomic_write_json, atomic_write_text, load_checkpoint, to_jsonable
from dcpnas.utils.logging import JsonlLogger, console, read_jsonl
from dcpnas.utils.progress import Progress, format_duration


# --------------------------------------------------------------------------------------------------
# io


def test_atomic_save_roundtrip_leaves_no_temp(tmp_path):
    obj = {"w": torch.arange(6.0).view(2, 3), "step": 3, "genotype": {"normal": [["sep_conv_3x3", 0]]}}
    path = atomic_save(obj, tmp_path / "ckpt" / "last.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], obj["w"]) and loaded["step"] == 3 and loaded["genotype"] == obj["genotype"]
    atomic_save({"step": 4}, path)  # overwrite in place
    assert load_checkpoint(path)["step"] == 4
    assert os.listdir(path.parent) == ["last.pt"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = tmp_path / "x.pt"
    atomic_save({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"bad": Unpicklable()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["x.pt"]


def test_atomic_write_text_and_json(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "hello\n")
    assert (tmp_path / "a.txt").read_text() == "hello\n"
    atomic_write_json(tmp_path / "a.json", {"t": torch.tensor(1.5), "n": np.int64(3), "a": np.arange(2), "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text()) == {"t": 1.5, "n": 3, "a": [0, 1], "p": str(tmp_path)}


def test_load_checkpoint_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    path = atomic_save({"w": torch.randn(100, 100)}, tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    assert "truncated or corrupt" in str(info.value) and "\n" not in str(info.value)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(DataError, match="not a file"):
        load_checkpoint(tmp_path)


class Custom:
    pass


def test_load_checkpoint_non_tensor_objects(tmp_path):
    path = atomic_save({"obj": Custom()}, tmp_path / "c.pt")
    with pytest.raises(DataError, match="holds Python objects that dcpnas never loads") as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value)   # torch's hint is the one thing not to do
    assert isinstance(load_checkpoint(path, weights_only=False)["obj"], Custom)


def test_to_jsonable():
    out = to_jsonable({"a": torch.tensor([1, 2]), "b": np.float32(0.5), "c": (1, np.bool_(True)), "d": torch.float32})
    assert out == {"a": [1, 2], "b": 0.5, "c": [1, True], "d": "torch.float32"}
    json.dumps(out)


# --------------------------------------------------------------------------------------------------
# logging


def test_jsonl_logger(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    with JsonlLogger(path) as log:
        log.log({"step": 1}, loss=torch.tensor(0.25), acc=np.float64(0.5))
        # Flushed per line: readable before close.
        assert json.loads(path.read_text().splitlines()[0]) == {"step": 1, "loss": 0.25, "acc": 0.5}
        log.log(step=2, alpha=torch.zeros(2))
    with JsonlLogger(path) as log:  # append, e.g. after a resume
        log.log(step=3)
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]


def test_read_jsonl_skips_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert list(read_jsonl(path)) == [{"a": 1}, {"a": 2}]


def test_rank_nonzero_writes_and_prints_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    with JsonlLogger(tmp_path / "m.jsonl") as log:
        log.log(step=1)
    assert not (tmp_path / "m.jsonl").exists()
    console("hidden")
    monkeypatch.setenv("RANK", "0")
    console("shown")
    assert capsys.readouterr().out == "shown\n"


# --------------------------------------------------------------------------------------------------
# progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_plain_lines_when_not_a_tty():
    out = io.StringIO()
    with Progress(4, "search", stream=out) as p:  # default interval: 30 s, so only the final line
        for _ in range(4):
            p.update()
            p.set_postfix(loss=torch.tensor(0.123456), lr=0.1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in out.getvalue()
    assert lines[0].startswith("search: 100% 4/4 [") and lines[0].endswith("loss=0.1235 lr=0.1")


def test_progress_interval_lines_and_iterable():
    out = io.StringIO()
    items = list(Progress(range(3), "eval", stream=out, interval=0))
    assert items == [0, 1, 2]
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("eval: 100% 3/3") and len(lines) >= 3


def test_progress_tty_redraws_one_line():
    out = FakeTTY()
    with Progress(10, "train", stream=out, interval=0) as p:
        for _ in range(10):
            p.update()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") >= 10
    assert "100%|" in text and "10/10" in text  # tqdm's bar


def test_progress_disabled_and_unknown_total():
    out = io.StringIO()
    for _ in Progress(iter(range(3)), "x", enabled=False, stream=out):
        pass
    assert out.getvalue() == ""
    with Progress(None, "stream", stream=out) as p:
        p.update(5)
    assert "stream: 5it [" in out.getvalue()


def test_format_duration():
    assert format_duration(75) == "01:15" and format_duration(3725) == "1:02:05" and format_duration(float("inf")) == "?"


# --------------------------------------------------------------------------------------------------
# devices, seeding, autocast


def test_select_device():
    assert D.select_device("cpu") == torch.device("cpu")
    assert D.select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DcpnasError, match="unknown device 'tpu'"):
        D.select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_select_cuda_without_cuda_is_a_user_error():
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(DcpnasError, match="CUDA is not available"):
            D.select_device(spec)


def test_init_distributed_single_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    env = D.init_distributed("cpu")
    assert env == D.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), is_main=True)
    assert not env.distributed and not D.is_distributed()
    t = torch.ones(3)
    D.all_reduce_mean_([t, None])  # no-ops in a single process
    D.broadcast_(t)
    D.barrier()
    D.cleanup()
    assert torch.equal(t, torch.ones(3))


def test_seed_everything_reproducible():
    def draw():
        return random.random(), float(np.random.rand()), torch.rand(2).tolist()

    D.seed_everything(123)
    first = draw()
    D.seed_everything(123)
    assert draw() == first


def test_seed_everything_deterministic_flags(monkeypatch):
    calls = []

    # Recorded rather than applied: the flag is global, and its first use imports torch._inductor (seconds).
    def fake_use_deterministic_algorithms(mode, *, warn_only=False):
        calls.append((mode, warn_only))

    monkeypatch.setattr(torch, "use_deterministic_algorithms", fake_use_deterministic_algorithms)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    D.seed_everything(0)
    assert calls == [] and torch.backends.cudnn.benchmark  # deterministic=False leaves the flags alone
    D.seed_everything(0, deterministic=True)
    assert calls == [(True, True)]
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a user's setting is kept


def test_autocast_context_is_a_noop_off_cuda():
    with D.autocast_context("cpu", enabled=True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
    if torch.cuda.is_available():
        with D.autocast_context(torch.device("cuda"), enabled=True):
            z = torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")
        assert z.dtype == torch.bfloat16


# --------------------------------------------------------------------------------------------------
# two real gloo processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_worker(rank: int, world_size: int, port: int) -> None:
    # What torchrun would set for each process.
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    env = D.init_distributed("cpu")
    try:
        assert (env.rank, env.world_size, env.local_rank, env.is_main) == (rank, world_size, rank, rank == 0)
        assert env.device == torch.device("cpu") and D.is_distributed()
        a = torch.full((2, 3), float(rank + 1))
        b = torch.tensor([10.0 * rank])
        c = torch.arange(4, dtype=torch.float64) * (rank + 1)
        D.all_reduce_mean_([a, None, b, c])
        torch.testing.assert_close(a, torch.full((2, 3), 1.5))
        torch.testing.assert_close(b, torch.tensor([5.0]))
        torch.testing.assert_close(c, torch.arange(4, dtype=torch.float64) * 1.5)

        p = torch.nn.Parameter(torch.full((3,), float(rank)))  # in place, also on leaf parameters
        q = torch.full((2, 2), float(rank + 7))
        D.broadcast_([p, q], src=0)
        torch.testing.assert_close(p.detach(), torch.zeros(3))
        torch.testing.assert_close(q, torch.full((2, 2), 7.0))

        # the one BN policy of search and training: statistics averaged, counters from rank 0
        bn = torch.nn.BatchNorm2d(2)
        bn.running_mean.fill_(float(rank))
        bn.running_var.fill_(float(2 * rank + 1))
        bn.num_batches_tracked.fill_(5 + rank)
        D.sync_batchnorm_stats(bn)
        torch.testing.assert_close(bn.running_mean, torch.full((2,), 0.5))
        torch.testing.assert_close(bn.running_var, torch.full((2,), 2.0))
        assert int(bn.num_batches_tracked) == 5
        D.barrier()
    finally:
        D.cleanup()


def test_two_gloo_processes():
    mp.spawn(_dist_worker, args=(2, _free_port()), nprocs=2, join=True)
