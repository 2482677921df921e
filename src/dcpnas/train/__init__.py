"""Final training of a found network (two-step, distillation), evaluation, packed and ONNX export.

Typical use::

    from dcpnas.config import resolve_config
    from dcpnas.train import TrainConfig, train, load_model, export_packed, load_packed

    cfg = resolve_config(TrainConfig, "train", preset="quick", overrides=["model.genotype=DDPNAS_MCN_2"])
    result = train(cfg, "runs/quick")                  # writes model.pt, summary.json, log.jsonl, ...
    export_packed("runs/quick/model.pt", "runs/quick/model.dcpnas")
    model = load_packed("runs/quick/model.dcpnas")     # the same logits as result.model
"""

from . import presets as _presets  # noqa: F401  (registers the "train" presets)
from .config import DataConfig, LossConfig, ModelConfig, OptimConfig, TeacherConfig, TrainConfig
from .evaluate import evaluate
from .export import PackedReport, export_packed
from .modelfile import load_model, load_packed, read_packed
from .onnx_export import export_onnx, fold_for_inference
from .spec import ModelSpec
from .stages import Stage, plan_stages
from .trainer import TrainResult, train

__all__ = ["DataConfig", "LossConfig", "ModelConfig", "ModelSpec", "OptimConfig", "PackedReport", "Stage",
           "TeacherConfig", "TrainConfig", "TrainResult", "evaluate", "export_onnx", "export_packed",
           "fold_for_inference", "load_model", "load_packed", "plan_stages", "read_packed", "train"]
