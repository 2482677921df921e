"""Final training: the loss, optimiser and schedule, the two-step switch, teachers, checkpoints and
resume, NaN handling, logs and the train/eval CLI.

End-to-end runs use a tiny synthetic npz dataset (1×12×12 images, 4 classes, 48 train / 32 test)
and a tiny network (C 4, 3 cells), so each run takes seconds.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from dcpnas.binary import binary_convs
from dcpnas.config import resolve_config
from dcpnas.errors import ConfigError, DcpnasError, NonFiniteLossError
from dcpnas.train import TrainConfig, evaluate, load_model, plan_stages, train
from dcpnas.train import trainer as trainer_mod
from dcpnas.train.augment import cutout_
from dcpnas.train.checkpoint import load_state
from dcpnas.train.config import LossConfig, OptimConfig
from dcpnas.train.losses import TrainLoss
from dcpnas.train.optim import CosineSchedule, build_optimizer, param_groups
from dcpnas.train.spec import ModelSpec
from dcpnas.train.teacher import torchvision_teacher
from dcpnas.space.named import DDPNAS_MCN_2
from dcpnas.utils.logging import read_jsonl

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    """A learnable 4-class dataset: class k has a bright k-th quadrant (plus noise)."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 60, (n, 12, 12)).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = divmod(int(k), 2)
            x[i, r * 6:(r + 1) * 6, c * 6:(c + 1) * 6] += 150
        return x, y

    x_train, y_train = make(48)
    x_test, y_test = make(32)
    path = tmp_path_factory.mktemp("data") / "quadrants.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


def tiny(npz: str, *extra: str) -> TrainConfig:
    base = [f"data.dataset={npz}", "model.genotype=DDPNAS_MCN_2", "model.C=4", "model.layers=3",
            "data.batch_size=16", "data.augment=false", "epochs=1", "step1_epochs=1", "optim.lr=0.01",
            "optim.lr_batch=16", "device=cpu", "check_every=1"]
    return resolve_config(TrainConfig, "train", overrides=base + list(extra))


def tiny_spec(binary: bool = True) -> ModelSpec:
    return ModelSpec(genotype=DDPNAS_MCN_2.to_dict(), C=4, layers=3, layout="cifar", scope="official",
                     binary=binary, in_channels=1, num_classes=4, image_size=12, dataset="npz",
                     mean=(0.3,), std=(0.3,))


# -- loss, optimiser, schedule -------------------------------------------------------------------
@pytest.mark.parametrize("binary_weights", [False, True])
@pytest.mark.parametrize("with_teacher", [False, True])
def test_one_training_step_lowers_the_loss_on_a_fixed_batch(binary_weights, with_teacher):
    torch.manual_seed(0)
    model = tiny_spec().build().train()
    model.set_binary_weights(binary_weights)
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 4, (16,))
    teacher_logits = torch.randn(16, 4) * 3 if with_teacher else None
    loss_fn = TrainLoss(LossConfig(label_weight=0.5, reconstruction_weight=1e-4), has_teacher=with_teacher)
    opt = build_optimizer(model, OptimConfig(), lr=1e-3, weight_decay=1e-5)
    before, parts = loss_fn(model(x), y, teacher_logits, model)
    assert ("kd" in parts) == with_teacher and "ce" in parts
    assert ("rec" in parts) == binary_weights  # L_R only while binary weights are on
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = loss_fn(model(x), y, teacher_logits, model)
    assert after.item() < before.item()


def test_distillation_term_is_minus_G_the_kl_to_the_teacher():
    torch.manual_seed(1)
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    fn = TrainLoss(LossConfig(distill_weight=1.0, label_weight=0.0, temperature=2.0), has_teacher=True)
    loss, parts = fn(s, torch.zeros(8, dtype=torch.long), t, torch.nn.Linear(1, 1))
    p, log_q = torch.softmax(t / 2, 1), torch.log_softmax(s / 2, 1)
    kl = (p * (p.log() - log_q)).sum(1).mean()
    assert torch.allclose(loss, kl, atol=1e-6) and set(parts) == {"kd"}
    zero, _ = fn(t, torch.zeros(8, dtype=torch.long), t, torch.nn.Linear(1, 1))
    assert abs(zero.item()) < 1e-6
    with pytest.raises(ConfigError):
        TrainLoss(LossConfig(distill_weight=0.0, label_weight=0.0), has_teacher=True)


def test_weight_decay_only_on_multi_dimensional_weights():
    model = tiny_spec().build()
    decay, no_decay = param_groups(model, 1e-5)
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    betas = {id(c.beta) for c in binary_convs(model)}
    assert betas <= {id(p) for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_cosine_schedule_warmup_endpoints_and_state():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    s = CosineSchedule(opt, base_lr=0.1, min_lr=1e-3, total_steps=11, warmup_steps=1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)      # warm-up
    lrs = []
    for i in range(12):                                           # one past the end: stays at min_lr
        opt.step()
        s.step()
        lrs.append(opt.param_groups[0]["lr"])
        if i == 4:
            saved = s.state_dict()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[5] == pytest.approx(1e-3 + 0.5 * (0.1 - 1e-3) * (1 + math.cos(math.pi * 5 / 9)))
    opt2 = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    s2 = CosineSchedule(opt2, base_lr=0.1, min_lr=1e-3, total_steps=11, warmup_steps=1)
    s2.load_state_dict(saved)                                     # resume after step 5
    assert s2.lr == pytest.approx(lrs[4])
    opt2.step()
    s2.step()
    assert s2.lr == pytest.approx(lrs[5])


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(6, 2, 10, 10)
    cutout_(x, 4, torch.Generator().manual_seed(0))
    zero = (x == 0)
    assert torch.equal(zero[:, 0], zero[:, 1])                   # same square on every channel
    counts = zero[:, 0].flatten(1).sum(1)
    assert counts.max() == 16 and counts.min() >= 4              # 4×4, clipped at the borders
    for img in zero[:, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert img[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle
    y = torch.ones(6, 2, 10, 10)
    cutout_(y, 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


def test_stage_plans():
    cfg = TrainConfig(epochs=3, step1_epochs=2)
    s1, s2 = plan_stages(cfg)
    assert (s1.name, s1.binary_weights, s1.epochs, s1.weight_decay) == ("step1", False, 2, 1e-5)
    assert (s2.name, s2.binary_weights, s2.epochs, s2.weight_decay, s2.reset_beta) == ("step2", True, 3, 0.0, True)
    assert s1.lr_scale == s2.lr_scale == 1.0
    cfg.optim.lr_scale_step2 = 0.25
    assert plan_stages(cfg)[1].lr_scale == 0.25 and plan_stages(cfg)[0].lr_scale == 1.0
    cfg.two_step = False
    (one,) = plan_stages(cfg)
    assert one.binary_weights and one.epochs == 3
    cfg.model.binary = False
    (real,) = plan_stages(cfg)
    assert real.name == "real" and not real.binary_weights


def test_lr_scales_linearly_with_the_global_batch():
    cfg = resolve_config(TrainConfig, "train", preset="imagenet")
    assert cfg.scaled_lr == pytest.approx(1e-3)
    cfg = resolve_config(TrainConfig, "train", preset="imagenet", overrides=["data.batch_size=128"])
    assert cfg.scaled_lr == pytest.approx(2.5e-4)


# -- end-to-end runs -------------------------------------------------------------------------------
def test_step2_starts_from_step1_weights_with_beta_reset(npz, tmp_path, monkeypatch):
    seen = {}
    real_enter = trainer_mod.enter_stage

    def spy(model, stage, *, fresh):
        real_enter(model, stage, fresh=fresh)
        seen[stage.name] = {k: v.clone() for k, v in model.state_dict().items()}
        seen[stage.name + "_modes"] = {c.binary_weights for c in binary_convs(model)}
        seen[stage.name + "_beta_grad"] = {c.beta.requires_grad for c in binary_convs(model)}

    monkeypatch.setattr(trainer_mod, "enter_stage", spy)
    result = train(tiny(npz), tmp_path / "run")
    assert seen["step1_modes"] == {False} and seen["step1_beta_grad"] == {False}
    assert seen["step2_modes"] == {True} and seen["step2_beta_grad"] == {True}
    step1, _, payload = load_model(tmp_path / "run" / "step1.pt")
    assert not payload["spec"]["binary_weights"]
    start2 = seen["step2"]
    for k, v in step1.state_dict().items():
        if k.endswith(".beta"):
            w = start2[k[:-len("beta")] + "weight"]
            assert torch.allclose(start2[k], w.abs().mean(dim=(1, 2, 3))), k   # β ← mean|ŵ|
        else:
            assert torch.equal(start2[k], v), k                                   # ŵ, BN, ... unchanged
    # step 1 never trains β (it is unused), so its value is the initial one at the switch
    assert torch.equal(step1.state_dict()["cells.0.ops.0.op.0.op.1.beta"],
                       seen["step1"]["cells.0.ops.0.op.0.op.1.beta"])
    assert result.completed and result.spec.binary_weights


def _kill_after(monkeypatch, calls: int):
    """Make the loss raise KeyboardInterrupt at its ``calls``-th evaluation (a kill mid-epoch)."""
    count = {"n": 0}
    real_call = TrainLoss.__call__

    def call(self, *args, **kw):
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt
        return real_call(self, *args, **kw)

    monkeypatch.setattr(TrainLoss, "__call__", call)


def test_resume_after_stop_and_kill_matches_an_uninterrupted_run(npz, tmp_path, monkeypatch):
    cfg = tiny(npz, "step1_epochs=2", "epochs=2", "data.augment=true", "data.cutout=4",
               "model.drop_path=0.2", "optim.warmup_epochs=0.5")
    full = train(cfg, tmp_path / "full")
    # 1) a clean stop after one epoch (stop_after_epochs), 2) a kill in the middle of step 2
    cfg_stop = tiny(npz, "step1_epochs=2", "epochs=2", "data.augment=true", "data.cutout=4",
                    "model.drop_path=0.2", "optim.warmup_epochs=0.5", "stop_after_epochs=1")
    part = train(cfg_stop, tmp_path / "cut")
    assert not part.completed and load_state(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 1
    steps_per_epoch = 3
    _kill_after(monkeypatch, 2 * steps_per_epoch + 2)      # epochs 2 and 3 done, 2 steps into epoch 4
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", resume=True)
    killed = load_state(tmp_path / "cut" / "checkpoint.pt")
    assert (killed["stage"], killed["epoch"]) == (1, 1)    # step 2, one epoch done
    monkeypatch.undo()
    resumed = train(cfg, tmp_path / "cut", resume=True)
    assert resumed.completed
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = (load_state(p / "checkpoint.pt") for p in (tmp_path / "full", tmp_path / "cut"))
    assert sa["schedule"] == sb["schedule"] and sa["step"] == sb["step"] == 4 * steps_per_epoch
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert oa["param_groups"] == ob["param_groups"]
    assert all(torch.equal(oa["state"][i][k], ob["state"][i][k]) for i in oa["state"] for k in oa["state"][i])
    la, lb = (list(read_jsonl(p / "log.jsonl")) for p in (tmp_path / "full", tmp_path / "cut"))
    assert [r["global_epoch"] for r in lb] == [1, 2, 3, 4]      # no duplicated or missing epoch
    assert [r["lr"] for r in la] == [r["lr"] for r in lb]
    assert [r["test_top1"] for r in la] == [r["test_top1"] for r in lb]


def test_resume_checks_the_config_and_a_run_is_not_overwritten(npz, tmp_path):
    train(tiny(npz, "stop_after_epochs=1"), tmp_path / "run")
    with pytest.raises(DcpnasError, match="--resume"):
        train(tiny(npz), tmp_path / "run")
    with pytest.raises(ConfigError, match="optim.lr"):
        train(tiny(npz, "optim.lr=0.5"), tmp_path / "run", resume=True)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(npz, tmp_path, monkeypatch):
    real_call = TrainLoss.__call__
    count = {"n": 0}

    def nan_in_epoch_two(self, *args, **kw):
        count["n"] += 1
        loss, parts = real_call(self, *args, **kw)
        return (loss * float("nan") if count["n"] > 3 else loss), parts

    monkeypatch.setattr(TrainLoss, "__call__", nan_in_epoch_two)
    with pytest.raises(NonFiniteLossError, match="checkpoint.pt") as err:
        train(tiny(npz), tmp_path / "run")
    assert "\n" not in str(err.value)
    state = load_state(tmp_path / "run" / "checkpoint.pt")
    assert (state["stage"], state["epoch"]) == (0, 1)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_logs_summary_and_model_file(npz, tmp_path):
    out = tmp_path / "run"
    result = train(tiny(npz, "step1_epochs=2", "optim.lr_scale_step2=0.25"), out)
    records = list(read_jsonl(out / "log.jsonl"))
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 1), (1, 2), (2, 1)]
    # each step's cosine starts at its own peak: step 2 at a quarter of step 1's
    assert records[2]["lr"] == pytest.approx(0.25 * records[0]["lr"])
    for r in records:
        assert {"train_loss", "train_top1", "test_top1", "test_top5", "lr", "epoch_time"} <= set(r)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"]["top1"] == pytest.approx(records[-1]["test_top1"])
    assert [s["name"] for s in summary["steps"]] == ["step1", "step2"]
    assert summary["profile"]["bops"] > 0 and summary["profile"]["mbits"] > 0
    assert (out / summary["files"]["curves"]).stat().st_size > 0
    assert json.loads((out / "config.json").read_text())["config"]["model"]["genotype"] == "DDPNAS_MCN_2"
    # the model file rebuilds the trained network: same test accuracy
    model, spec, payload = load_model(out / "model.pt")
    assert spec.binary and spec.binary_weights and spec.num_classes == 4 and spec.image_size == 12
    from dcpnas.train.data import test_batches
    again = evaluate(model, test_batches(spec.dataset, None, spec, torch.device("cpu"), 7))
    assert again["top1"] == pytest.approx(result.metrics["top1"]) and again["n"] == 32


def _stem_width(model) -> int:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).out_channels


def test_stem_multiplier_is_trained_saved_and_rebuilt(npz, tmp_path):
    out = tmp_path / "run"
    train(tiny(npz, "model.stem_multiplier=2", "two_step=false"), out)
    model, spec, _ = load_model(out / "model.pt")
    assert spec.stem_multiplier == 2 and _stem_width(model) == 2 * 4
    # a spec written before the field existed rebuilds the DARTS stem (3·C)
    old = tiny_spec().to_dict()
    del old["stem_multiplier"]
    assert _stem_width(ModelSpec.from_dict(old).build()) == 3 * 4
    for bad in (0, 2.5, True):
        with pytest.raises(DcpnasError, match="stem_multiplier"):
            ModelSpec.from_dict({**old, "stem_multiplier": bad})
    with pytest.raises(ConfigError, match="stem_multiplier"):
        resolve_config(TrainConfig, "train", overrides=["model.stem_multiplier=0"])


def test_real_valued_run_learns_the_task(npz, tmp_path):
    result = train(tiny(npz, "model.binary=false", "epochs=6", "optim.lr=0.002", "data.batch_size=8",
                        "optim.lr_batch=8"), tmp_path / "real")
    assert not result.spec.binary
    assert result.metrics["top1"] > 50.0          # 4 classes: chance is 25%


def test_self_teacher_is_trained_once_cached_and_distilled(npz, tmp_path):
    cfg = tiny(npz, "teacher.kind=self", "teacher.epochs=2", "loss.label_weight=0.5", "stop_after_epochs=1")
    out = tmp_path / "run"
    part = train(cfg, out)
    teacher_model = out / "teacher" / "model.pt"
    assert not part.completed and teacher_model.exists()
    teacher_spec = load_model(teacher_model)[1]
    assert not teacher_spec.binary and teacher_spec.C == 4
    stamp = teacher_model.stat().st_mtime_ns
    train(cfg, out, resume=True)
    assert teacher_model.stat().st_mtime_ns == stamp                         # reused, not retrained
    assert len(list(read_jsonl(out / "teacher" / "log.jsonl"))) == 2
    records = list(read_jsonl(out / "log.jsonl"))
    assert all("train_kd" in r and "train_ce" in r for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher"]["kind"] == "self" and summary["teacher"]["test"]["top1"] > 0


def test_checkpoint_teacher_and_mismatched_teacher(npz, tmp_path):
    real = train(tiny(npz, "model.binary=false"), tmp_path / "real")
    path = real.out_dir / "model.pt"
    out = train(tiny(npz, "teacher.kind=checkpoint", f"teacher.checkpoint={path}", "two_step=false"),
                tmp_path / "student")
    assert all("train_kd" in r for r in read_jsonl(out.out_dir / "log.jsonl"))
    with pytest.raises(DcpnasError, match="checkpoint not found"):
        train(tiny(npz, "teacher.kind=checkpoint", f"teacher.checkpoint={tmp_path / 'nope.pt'}"),
              tmp_path / "s2")


def test_torchvision_teacher_offline_is_a_clear_error(tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    calls = []

    def offline(*args, **kw):
        calls.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(DcpnasError) as err:
        torchvision_teacher("resnet34", timeout=7.0)
    message = str(err.value)
    assert "resnet34" in message and "offline" in message and "teacher.kind=checkpoint" in message
    assert "\n" not in message
    assert calls == [7.0]                              # the download ran under the socket timeout
    assert socket.getdefaulttimeout() == before        # and the global default was restored
    with pytest.raises(ConfigError, match="teacher.arch"):
        torchvision_teacher("not_a_model")


def test_config_validation():
    with pytest.raises(ConfigError, match="torchvision"):
        resolve_config(TrainConfig, "train", overrides=["teacher.kind=torchvision"])
    with pytest.raises(ConfigError, match="teacher.checkpoint"):
        resolve_config(TrainConfig, "train", overrides=["teacher.kind=checkpoint"])
    with pytest.raises(ConfigError, match="unknown config key 'optim.learning_rate'"):
        resolve_config(TrainConfig, "train", overrides=["optim.learning_rate=1"])
    for name in ("quick", "fashion-mnist", "cifar10", "cifar10-L", "imagenet", "imagenet-S"):
        resolve_config(TrainConfig, "train", preset=name)
    imagenet = resolve_config(TrainConfig, "train", preset="imagenet")
    assert (imagenet.model.size, imagenet.epochs, imagenet.teacher.kind, imagenet.optim.weight_decay,
            imagenet.optim.weight_decay_step2, imagenet.loss.label_weight) == ("L", 256, "torchvision", 1e-5, 0.0, 0.0)


# -- CLI -------------------------------------------------------------------------------------------
def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "dcpnas", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.parametrize("args, culprit", [
    (["-g", "NO_SUCH_GENOTYPE"], "NO_SUCH_GENOTYPE"),
    (["-g", "DDPNAS_MCN_2", "--set", "optim.lrr=1"], "optim.lrr"),
    (["-g", "DDPNAS_MCN_2", "--preset", "nope"], "nope"),
    (["-g", "DDPNAS_MCN_2", "--set", "teacher.kind=nobody"], "teacher.kind"),
])
def test_cli_user_errors_are_one_line_exit_2(tmp_path, npz, args, culprit):
    r = cli("train", *args, "--set", f"data.dataset={npz}", "--out", str(tmp_path / "run"))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and "Traceback" not in r.stderr


def test_cli_train_then_eval(tmp_path, npz):
    out = tmp_path / "run"
    r = cli("train", "-g", "DDPNAS_MCN_2", "--device", "cpu", "--out", str(out), "--set", f"data.dataset={npz}",
            "model.C=4", "model.layers=3", "data.batch_size=16", "epochs=1", "step1_epochs=1")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    r = cli("eval", "--checkpoint", str(out / "model.pt"), "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["top1"] == pytest.approx(summary["final"]["top1"])
    assert result["n"] == 32 and result["profile"]["ops"] > 0
    r = cli("eval", "--checkpoint", str(out / "model.pt"), "--dataset", "embedded")
    assert r.returncode == 2 and "4 classes" in r.stderr
    r = cli("eval", "--checkpoint", str(tmp_path / "missing.pt"))
    assert r.returncode == 2 and "missing.pt" in r.stderr


def test_imagenet_folder_layout_trains_through_dataloaders(tmp_path):
    """The ImageNet path (ImageFolder + DataLoader, ImageNet layout) on a tiny fake folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for cls in ("n01", "n02"):
            folder = tmp_path / "imnet" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = resolve_config(TrainConfig, "train", preset="imagenet", overrides=[
        "model.genotype=DDPNAS_MCN_2", "model.C=4", "model.layers=3", f"data.data_dir={tmp_path / 'imnet'}",
        "data.image_size=32", "data.workers=0", "data.batch_size=8", "teacher.kind=none", "epochs=1",
        "step1_epochs=1", "device=cpu"])
    result = train(cfg, tmp_path / "run")
    records = list(read_jsonl(tmp_path / "run" / "log.jsonl"))
    assert [r["step"] for r in records] == [2, 4]              # 16 images / batch 8, drop_last
    assert records[-1]["test_top5"] == 100.0                   # 2 classes: top-k clipped to k = 2
    assert result.spec.layout == "imagenet" and result.spec.num_classes == 2 and result.spec.image_size == 32
    assert result.spec.mean == pytest.approx((0.485, 0.456, 0.406))


def test_curves_png(tmp_path):
    from matplotlib.image import imread

    from dcpnas.train.curves import plot_curves

    records = [{"global_epoch": e, "stage": 1 if e <= 2 else 2, "train_loss": 2.0 / e,
                "test_top1": 10.0 * e, "test_top5": 50.0 + e} for e in range(1, 5)]
    path = plot_curves(records, tmp_path / "curves", "t")
    assert path == tmp_path / "curves.png"
    img = imread(path)
    assert img.shape[:2] == (400, 1000)
    colours = {tuple(int(round(255 * c)) for c in px[:3]) for px in img.reshape(-1, img.shape[-1])}
    assert {(31, 119, 180), (255, 127, 14), (128, 128, 128)} <= colours  # loss/top-1, top-5, step-2 line


def test_step2_as_a_separate_job_from_step1_pt(npz, tmp_path, monkeypatch):
    train(tiny(npz), tmp_path / "two")
    step1 = tmp_path / "two" / "step1.pt"
    seen = {}
    real_enter = trainer_mod.enter_stage

    def spy(model, stage, *, fresh):
        real_enter(model, stage, fresh=fresh)
        seen.update({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(trainer_mod, "enter_stage", spy)
    train(tiny(npz, "two_step=false", f"model.init_from={step1}", "optim.weight_decay=0"), tmp_path / "s2")
    start = load_model(step1)[0].state_dict()
    for k, v in start.items():
        if k.endswith(".beta"):
            assert torch.allclose(seen[k], seen[k[:-4] + "weight"].abs().mean(dim=(1, 2, 3)))
        else:
            assert torch.equal(seen[k], v), k
    with pytest.raises(ConfigError, match="its C is 4"):
        train(tiny(npz, "model.C=6", f"model.init_from={step1}"), tmp_path / "bad")


# -- BatchNorm re-estimation ----------------------------------------------------------------------
def test_recalibrate_batchnorm_is_the_plain_average_of_batch_statistics():
    from dcpnas.train.recalibrate import recalibrate_batchnorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3, momentum=0.3))
    net.eval()
    batches = [(torch.randn(4, 2, 6, 6) * s + s, None) for s in (1.0, 2.0, 3.0)]
    assert recalibrate_batchnorm(net, iter(batches), 2, amp=False) == 2      # stops after 2
    with torch.no_grad():
        outs = [net[0](x) for x, _ in batches[:2]]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for o in outs]).mean(0)
    bn = net[1]
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.3 and not net.training and bn.num_batches_tracked.item() == 2


def test_training_recalibrates_batchnorm_before_binary_weight_evaluations(npz, tmp_path, monkeypatch):
    calls = []
    real = trainer_mod.recalibrate_batchnorm

    def spy(model, batches, num_batches, **kw):
        used = real(model, batches, num_batches, **kw)
        calls.append((used, {k: v.clone() for k, v in model.state_dict().items() if "running" in k}))
        return used

    monkeypatch.setattr(trainer_mod, "recalibrate_batchnorm", spy)
    train(tiny(npz, "step1_epochs=2", "epochs=2", "bn_recalibration=3"), tmp_path / "run")
    assert [used for used, _ in calls] == [3, 3]         # step 2's two evaluations, none in step 1
    model, _, _ = load_model(tmp_path / "run" / "model.pt")
    final = calls[-1][1]
    for k, v in model.state_dict().items():
        if "running" in k:
            assert torch.equal(v, final[k]), k             # the model file holds the re-estimated stats
    calls.clear()
    train(tiny(npz, "bn_recalibration=0"), tmp_path / "off")
    assert calls == []
