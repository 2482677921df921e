"""`dcpnas demo` end to end on tiny settings: search → train 1-bit and real → export → summary."""

from __future__ import annotations

import json
from pathlib import Path

from dcpnas.demo import run_demo
from dcpnas.train import load_packed


def test_demo_runs_every_stage_and_prints_the_summary(tmp_path, tiny_npz, capsys):
    search = [f"data.dataset=npz:{tiny_npz}", "data.limit=32", "data.batch_size=8", "supernet.C=2",
              "schedule.rounds=1", "data.eval_batches=1", "tensorboard=false"]
    train = [f"data.dataset=npz:{tiny_npz}", "model.C=2", "model.layers=3", "data.batch_size=16",
             "optim.lr_batch=16", "epochs=1", "step1_epochs=1", "check_every=1", "bn_recalibration=2"]
    summary = run_demo(tmp_path / "demo", search_overrides=search, train_overrides=train, device="cpu",
                       quiet=True)
    out = capsys.readouterr().out
    assert "DCP-NAS demo summary" in out and "1-bit" in out and "real-valued" in out
    assert json.loads((tmp_path / "demo" / "summary.json").read_text())["networks"].keys() == {"1-bit", "real-valued"}
    one, real = summary["networks"]["1-bit"], summary["networks"]["real-valued"]
    assert 0.0 <= one["top1"] <= 100.0 and 0.0 <= real["top1"] <= 100.0
    assert one["mbits"] < real["mbits"]                     # 1-bit weights cost 1 bit, not 32
    found = json.loads((tmp_path / "demo" / "search" / "genotype.json").read_text())
    assert found == summary["genotype"]
    packed = Path(summary["export"]["path"])
    assert packed.stat().st_size == summary["export"]["file_bytes"]
    assert summary["export"]["binary_ratio"] >= 25.0
    load_packed(packed)                                     # the written file loads back
    for kind in ("cells", "curves"):
        assert summary["plots"][kind] and all(Path(p).stat().st_size > 0 for p in summary["plots"][kind])
        assert all(p in out for p in summary["plots"][kind])


def test_demo_preset_sets_both_presets_and_each_can_be_overridden(monkeypatch, tmp_path):
    import dcpnas.demo
    from dcpnas.cli.main import main

    seen = []
    monkeypatch.setattr(dcpnas.demo, "run_demo", lambda out, **kw: seen.append(kw))
    base = ["demo", "--out", str(tmp_path / "d")]
    assert main(base) == 0
    assert main(base + ["--preset", "fashion-mnist"]) == 0
    assert main(base + ["--preset", "fashion-mnist", "--train-preset", "quick"]) == 0
    assert [(k["search_preset"], k["train_preset"]) for k in seen] == [
        ("quick", "quick"), ("fashion-mnist", "fashion-mnist"), ("fashion-mnist", "quick")]
