"""Data-parallel training: two gloo processes under torchrun keep identical weights through both steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dcpnas.train import load_model
from dcpnas.utils.logging import read_jsonl

SRC = str(Path(__file__).resolve().parents[1] / "src")

WORKER = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    from dcpnas.config import resolve_config
    from dcpnas.train import TrainConfig, train
    from dcpnas.utils.distributed import cleanup

    out = sys.argv[1]
    cfg = resolve_config(TrainConfig, "train", overrides=[
        "model.genotype=DDPNAS_MCN_2", "model.C=4", "model.layers=3", "model.drop_path=0.2",
        "data.dataset=embedded", "data.train_limit=64", "data.test_limit=30", "data.batch_size=16",
        "data.augment=true", "data.cutout=6", "epochs=1", "step1_epochs=1", "optim.lr=0.01",
        "optim.lr_batch=16", "optim.grad_clip=5", "device=cpu", "threads=1", "check_every=2"])
    result = train(cfg, out)
    rank = dist.get_rank()
    torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, f"{out}/rank{rank}.pt")
    cleanup()
""")


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_weights(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(worker), str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]                      # parameters and BN statistics
    saved, spec, _ = load_model(out / "model.pt")
    assert all(torch.equal(saved.state_dict()[k], a[k]) for k in a)
    assert spec.binary_weights
    # training really happened, in both steps, on 64 / (2 × 8) = 4 steps per epoch
    records = list(read_jsonl(out / "log.jsonl"))
    assert [(r["stage"], r["step"]) for r in records] == [(1, 4), (2, 8)]
    assert json.loads((out / "config.json").read_text())["meta"]["world_size"] == 2
    assert records[-1]["test_top1"] >= 0 and (out / "summary.json").exists()
