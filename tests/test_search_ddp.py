"""Data-parallel search with 2 gloo processes on CPU: each rank trains on its own shard, weight and
α gradients are averaged explicitly, so weights, α, β, BN statistics and ψ̃ stay identical on every
rank; only rank 0 writes. Also the real launcher: ``torchrun --nproc_per_node=2 -m dcpnas search``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dcpnas.utils.logging import read_jsonl

SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def overrides(npz):
    # 64 images -> 32 + 32 -> 16 per rank -> 2 steps of 8 per epoch and rank.
    return [f"data.dataset=npz:{npz}", "data.limit=64", "data.batch_size=8", "supernet.C=2",
            "schedule.rounds=1", "data.eval_batches=1", "tensorboard=false", "deterministic=true",
            # With η = η₁η₂ ≈ 7.5e-6 the default η_ψ moves ψ̃ by ~1e-12 per step, below float32
            # resolution; a large η_ψ makes ψ̃ move, so that its synchronisation is tested.
            "decoupled.psi_lr=1e9"]


def _worker(rank: int, world: int, port: int, out: str, npz: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from dcpnas.search.run.api import resolve_search_config
    from dcpnas.search.run.loop import SearchLoop
    from dcpnas.utils.distributed import cleanup, init_distributed

    env = init_distributed("cpu")
    try:
        cfg = resolve_search_config(preset="quick", overrides=overrides(npz))
        loop = SearchLoop(cfg, out, env, quiet=True)
        result = loop.run()
        m = loop.method
        train = m.ctx.data.train
        train.set_epoch(0)
        _, first_labels = next(iter(train))
        torch.save({"parent": m.parent.net.state_dict(), "child": m.child.net.state_dict(),
                    "psi": [p.clone() for L in (m.parent, m.child) for p in L.decoupled.psi],
                    "first_labels": first_labels, "history": result.history,
                    "genotype": result.genotype.to_darts()}, Path(out) / f"rank{rank}.pt")
    finally:
        cleanup()


def test_two_ranks_keep_identical_parameters(tmp_path, tiny_npz):
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(tiny_npz)), nprocs=2, join=True)
    r0 = torch.load(out / "rank0.pt", weights_only=False)
    r1 = torch.load(out / "rank1.pt", weights_only=False)
    # The ranks trained on different shards (test_ranks_get_disjoint_shards) ...
    assert r0["history"][0]["steps"] == 2
    # ... yet every weight, β, α and BN statistic is identical, and so is ψ̃.
    for net in ("parent", "child"):
        assert r0[net].keys() == r1[net].keys()
        for k in r0[net]:
            assert torch.equal(r0[net][k], r1[net][k]), (net, k)
    assert any("beta" in k for k in r0["child"])
    for a, b in zip(r0["psi"], r1["psi"]):
        assert torch.equal(a, b)
    assert any(not torch.allclose(p, torch.full_like(p, 1e-3)) for p in r0["psi"])  # ψ̃ did learn
    # Logged losses are the ranks' mean: the same on both.
    assert [h.get("G") for h in r0["history"]] == [h.get("G") for h in r1["history"]]
    assert r0["genotype"] == r1["genotype"]
    # Only rank 0 wrote the run's files.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["genotype_darts"] == r0["genotype"]
    assert len([r for r in read_jsonl(out / "log.jsonl") if r["event"] == "epoch"]) == 2


def test_ranks_get_disjoint_shards(tiny_npz):
    """What each rank trains on: the same global order, split by rank (no sample on both)."""
    from dcpnas.search.run.api import resolve_search_config
    from dcpnas.search.run.inputs import build_search_data
    from dcpnas.utils.distributed import DistEnv

    cfg = resolve_search_config(preset="quick", overrides=overrides(tiny_npz))
    seen = []
    for rank in range(2):
        data = build_search_data(cfg, DistEnv(rank=rank, world_size=2, is_main=rank == 0))
        data.train.set_epoch(0)
        seen.append(torch.cat([x.flatten(1) for x, _ in data.train]))
    assert seen[0].shape == seen[1].shape == (16, 64)
    common = (seen[0][:, None, :] == seen[1][None, :, :]).all(-1)
    assert not common.any()


def test_torchrun_launches_the_cli(tmp_path, tiny_npz):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "dcpnas", "search",
           "--preset", "quick", "--out", str(out)]
    for s in overrides(tiny_npz):
        cmd += ["--set", s]
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert proc.stdout.count("search finished") == 1  # rank 0 prints, rank 1 stays quiet
