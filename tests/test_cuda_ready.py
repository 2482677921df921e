"""What a CUDA run depends on, checked on the CPU: the backend flags, the CPU-only kernels staying off
other devices, pinned memory for the ImageNet loader, the decoupled step's index tensors, and the GPU
check script at tiny size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dcpnas
from dcpnas.utils import distributed as D

ROOT = Path(__file__).resolve().parents[1]


def test_cudnn_benchmarks_its_algorithms_on_cuda_unless_deterministic(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    D.tune_backends(torch.device("cpu"))
    assert not torch.backends.cudnn.benchmark
    D.tune_backends("cuda:0", deterministic=True)
    assert not torch.backends.cudnn.benchmark
    D.tune_backends("cuda:0")
    assert torch.backends.cudnn.benchmark


def test_the_search_loop_tunes_the_backends_for_its_device(monkeypatch, tmp_path):
    from dcpnas.search.run import loop

    class Stop(Exception):
        pass

    def stop(cfg, env):
        raise Stop

    seen = []
    monkeypatch.setattr(loop, "tune_backends", lambda device, det: seen.append((device.type, det)))
    monkeypatch.setattr(loop, "build_search_data", stop)
    from dcpnas.search import resolve_search_config

    cfg = resolve_search_config(preset="quick", overrides=["deterministic=true"])
    with pytest.raises(Stop):
        loop.SearchLoop(cfg, tmp_path / "run", D.DistEnv()).run()
    assert seen == [("cpu", True)]



def test_training_tunes_the_backends_for_its_device(monkeypatch, tmp_path):
    from dcpnas.train import trainer
    from dcpnas.config import resolve_config
    from dcpnas.train.config import TrainConfig

    class Stop(Exception):
        pass

    seen = []

    def stop(*args):
        raise Stop

    monkeypatch.setattr(trainer, "tune_backends", lambda dev, det: seen.append((torch.device(dev).type, det)))
    monkeypatch.setattr(trainer, "plan_stages", stop)  # the model is built: no need to train it
    cfg = resolve_config(TrainConfig, "train", overrides=["deterministic=true", "model.genotype=DARTS_V2",
                                                          "device=cpu"])
    with pytest.raises(Stop):
        trainer.train(cfg, tmp_path / "run")
    assert seen == [("cpu", True)]


@pytest.mark.parametrize("kernel", ["batchnorm", "depthwise"])
def test_cpu_kernels_stay_off_other_devices(kernel):
    """The fast paths are CPU code: a tensor on another device (meta stands in for CUDA here)
    takes torch's own kernels."""
    from dcpnas.kernels import batchnorm, depthwise

    for device, expected in (("cpu", True), ("meta", False)):
        x = torch.empty(2, 4, 6, 6, device=device).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        if kernel == "batchnorm":
            assert batchnorm._channels_last_with_graph(x) is expected
        else:
            w = torch.empty(4, 1, 3, 3, device=device, requires_grad=True)
            assert depthwise._fast_path(x, w, (1, 1), (2, 2), (2, 2), 4) is expected


def test_imagenet_loader_pins_memory_when_cuda_is_there(monkeypatch):
    from dcpnas.data import imagenet

    ds = torch.utils.data.TensorDataset(torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long))
    kw = dict(batch_size=2, workers=0, train=True, distributed=False, rank=0, world_size=1, seed=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not imagenet._loader(ds, **kw).pin_memory
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert imagenet._loader(ds, **kw).pin_memory


def test_loader_batches_copy_without_blocking(monkeypatch):
    """Batches from a (pinned) loader go to the device with non_blocking copies."""
    from dcpnas.search.run.inputs import LoaderBatches

    calls = []
    real = torch.Tensor.to

    def spy(t, *a, **k):
        calls.append(k.get("non_blocking", False))
        return real(t, *a, **k)

    loader = [(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))]
    monkeypatch.setattr(torch.Tensor, "to", spy)
    list(LoaderBatches(loader, torch.device("cpu")))
    assert calls == [True, True]


def test_decoupled_mask_copies_its_indices_to_the_device_once(monkeypatch):
    from dcpnas.search.maths.decoupled import DecoupledOptimization

    dec = DecoupledOptimization(psi_lr=0.1, include_parameter_free=True)
    R = torch.rand(14, 8)
    first = dec.mask(R)
    made = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
    assert torch.equal(dec.mask(R), first)
    assert made == []


def test_gpu_check_runs_tiny_on_cpu(tmp_path):
    """benchmarks/gpu_check.py at tiny size on the CPU: every variant times, the CLI runs (alone and
    under torchrun) succeed, and it prints its table. It imports the installed package."""
    env = dict(os.environ, PYTHONPATH=str(Path(dcpnas.__file__).resolve().parents[1]),
               GPU_CHECK_KEEP=str(tmp_path))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--tiny"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| part | variant | mode | ms (median) | peak MiB | status |")
    parts = {(r.split("|")[1].strip(), r.split("|")[2].strip()) for r in rows[1:]}
    for variant in ("darts", "cpnas", "dcpnas ggn", "dcpnas exact"):
        assert ("round", variant) in parts and ("Parent pair", variant) in parts
    assert ("Child pair", "dcpnas exact") in parts
    assert sum("(CLI)" in r and "| ok |" in r for r in rows) == 4
    assert sum("torchrun 1 proc" in r for r in rows) == 2
    assert "sys.path" not in (ROOT / "benchmarks" / "gpu_check.py").read_text()
