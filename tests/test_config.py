"""Typed configs: strict loading, coercion, validation hooks, overrides, files, presets, resolution."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from dcpnas.config import (
    apply_overrides,
    deep_merge,
    from_dict,
    get_preset,
    list_presets,
    load_config_file,
    parse_value,
    register_preset,
    resolve_config,
    save_config,
    to_dict,
    validate_config,
)
from dcpnas.errors import ConfigError, DcpnasError


# Example configs: the real ones live with the search / train modules.
@dataclass
class OptimConfig:
    lr: float = 0.025
    momentum: float = 0.9
    betas: tuple[float, ...] = (0.5, 0.999)
    schedule: Literal["cosine", "step", "none"] = "cosine"
    clip: Optional[float] = None

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


@dataclass
class DataConfig:
    dataset: str = "cifar10"
    root: Path = Path("data")
    batch_size: int = 64


@dataclass
class RunConfig:
    epochs: int = 50
    seed: int = 0
    amp: bool = False
    name: str = "run"
    tags: list[str] = field(default_factory=list)
    size: tuple[int, int] = (32, 32)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: Optional[DataConfig] = None

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")


@dataclass
class Required:
    width: int


# --------------------------------------------------------------------------------------------------
# from_dict / to_dict


def test_from_dict_defaults_and_nested():
    cfg = from_dict(RunConfig, {"epochs": 3, "optim": {"lr": 0.1}, "data": {"root": "/tmp/x"}})
    assert cfg.epochs == 3 and cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.9
    assert cfg.data.root == Path("/tmp/x") and isinstance(cfg.data, DataConfig)
    assert cfg == from_dict(RunConfig, to_dict(cfg))


def test_to_dict_is_json_ready():
    data = to_dict(RunConfig(tags=["a"]))
    json.dumps(data)
    assert data["optim"]["betas"] == [0.5, 0.999]
    assert data["data"]["root"] == "data"
    assert data["teacher"] is None


def test_coercion():
    cfg = from_dict(
        RunConfig,
        {"epochs": 1e2, "amp": "yes", "optim": {"lr": 1, "betas": [0.1, 0.2, 0.3]}, "size": [16, 8], "tags": ("x",)},
    )
    assert cfg.epochs == 100 and isinstance(cfg.epochs, int)
    assert cfg.amp is True
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.1, 0.2, 0.3)
    assert cfg.size == (16, 8)
    assert cfg.tags == ["x"]


def test_optional_nested_section():
    cfg = from_dict(RunConfig, {"teacher": {"dataset": "imagenet"}})
    assert cfg.teacher == DataConfig(dataset="imagenet")
    assert from_dict(RunConfig, {"teacher": None}).teacher is None


def test_unknown_key_names_dotted_key_and_close_match():
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, {"optim": {"lrr": 0.1}})
    msg = str(info.value)
    assert "'optim.lrr'" in msg and "'optim.lr'" in msg and "\n" not in msg


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'zzz'.*valid keys: amp, data"):
        from_dict(RunConfig, {"zzz": 1})


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"epochs": "many"}, "'epochs': expected int, got 'many'"),
        ({"epochs": 2.5}, "'epochs': expected int"),
        ({"epochs": True}, "'epochs': expected int, got True"),
        ({"amp": "maybe"}, "'amp': expected bool"),
        ({"name": 3}, "'name': expected str, got 3"),
        ({"optim": {"schedule": "linear"}}, "'optim.schedule': expected one of 'cosine', 'step', 'none', got 'linear'"),
        ({"optim": {"betas": [0.1, "x"]}}, "'optim.betas[1]': expected float"),
        ({"optim": {"clip": "big"}}, "'optim.clip': expected float or None"),
        ({"size": [1, 2, 3]}, "'size': expected 2 items"),
        ({"tags": "a,b"}, "'tags': expected list[str]"),
        ({"optim": 3}, "'optim': expected a table of OptimConfig settings"),
    ],
)
def test_bad_values_name_key_value_and_type(data, fragment):
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, data)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required config key 'width'"):
        from_dict(Required, {})
    assert from_dict(Required, {"width": 2}).width == 2


def test_validate_hook_runs_recursively_with_section_prefix():
    with pytest.raises(ConfigError, match=r"^optim: lr must be positive, got -1.0$"):
        from_dict(RunConfig, {"optim": {"lr": -1}})
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        from_dict(RunConfig, {"epochs": 0})
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        validate_config(RunConfig(epochs=0))


def test_config_error_is_a_dcpnas_error():
    assert issubclass(ConfigError, DcpnasError)


def test_path_prefix_for_a_section_loaded_alone():
    with pytest.raises(ConfigError, match="'search.optim.momentum'"):
        from_dict(OptimConfig, {"momentum": "high"}, path="search.optim")


# --------------------------------------------------------------------------------------------------
# overrides


def test_parse_value():
    assert parse_value("3") == 3
    assert parse_value("1e-3") == 0.001
    assert parse_value("true") is True
    assert parse_value("none") is None and parse_value("NULL") is None
    assert parse_value("[1,2]") == [1, 2]
    assert parse_value("[a, b]") == ["a", "b"]
    assert parse_value("cosine") == "cosine"
    assert parse_value('{"lr": 0.5}') == {"lr": 0.5}


def test_apply_overrides_returns_new_validated_config():
    base = RunConfig()
    cfg = apply_overrides(
        base,
        ["epochs=3", "optim.lr=1e-3", "optim.betas=[0.1,0.2]", "amp=true", "optim.clip=5", "tags=[a,b]", "size=[8,8]"],
    )
    assert base.epochs == 50 and base.optim.lr == 0.025  # the input is untouched
    assert cfg.epochs == 3 and cfg.optim.lr == 0.001 and cfg.optim.betas == (0.1, 0.2)
    assert cfg.amp is True and cfg.optim.clip == 5.0 and cfg.tags == ["a", "b"] and cfg.size == (8, 8)
    assert apply_overrides(cfg, ["optim.clip=none"]).optim.clip is None


def test_override_string_fields_keep_text():
    cfg = apply_overrides(RunConfig(), ["name=123", "data.dataset=none", "data.root=/data/imagenet"])
    assert cfg.name == "123" and cfg.data.dataset == "none" and cfg.data.root == Path("/data/imagenet")


def test_override_optional_section_and_dict_merge():
    cfg = apply_overrides(RunConfig(), ["teacher.batch_size=8"])
    assert cfg.teacher == DataConfig(batch_size=8)
    cfg = apply_overrides(RunConfig(optim=OptimConfig(momentum=0.5)), ['optim={"lr": 0.5}'])
    assert cfg.optim.lr == 0.5 and cfg.optim.momentum == 0.5


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("epochs", "bad override 'epochs' (expected KEY=VALUE"),
        ("=3", "bad override"),
        ("a..b=3", "bad override"),
        ("optim.lrr=1", "unknown config key 'optim.lrr' (did you mean 'optim.lr'?)"),
        ("epochs.x=1", "'epochs' is not a section (it holds int)"),
        ("epochs=abc", "'epochs': expected int, got 'abc'"),
        ("optim.schedule=linear", "expected one of 'cosine', 'step', 'none'"),
        ("optim.lr=-1", "optim: lr must be positive"),
    ],
)
def test_bad_overrides(item, fragment):
    with pytest.raises(ConfigError) as info:
        apply_overrides(RunConfig(), [item])
    assert fragment in str(info.value)


def test_deep_merge():
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "c": 4}) == {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}


# --------------------------------------------------------------------------------------------------
# files


def test_load_json_and_toml(tmp_path):
    (tmp_path / "c.json").write_text('{"epochs": 2, "optim": {"lr": 0.5}}')
    (tmp_path / "c.toml").write_text('epochs = 2\n[optim]\nlr = 0.5\nbetas = [0.1, 0.2]\n')
    assert load_config_file(tmp_path / "c.json") == {"epochs": 2, "optim": {"lr": 0.5}}
    assert load_config_file(tmp_path / "c.toml")["optim"]["betas"] == [0.1, 0.2]


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="unsupported config file format '.yaml'"):
        load_config_file(tmp_path / "c.yaml")
    (tmp_path / "bad.json").write_text('{\n  "epochs": 2,\n  oops\n}')
    with pytest.raises(ConfigError, match=r"bad.json:3:3: invalid JSON"):
        load_config_file(tmp_path / "bad.json")
    (tmp_path / "bad.toml").write_text("epochs = 2\nname = oops\n")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 2"):
        load_config_file(tmp_path / "bad.toml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="top level must be a table"):
        load_config_file(tmp_path / "list.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="deep.json: nested too deeply"):
        load_config_file(tmp_path / "deep.json")
    (tmp_path / "huge.json").write_text("{" + " " * (2 << 20) + "}")
    with pytest.raises(ConfigError, match="huge.json"):
        load_config_file(tmp_path / "huge.json")


def test_save_config_roundtrip_with_meta(tmp_path):
    cfg = RunConfig(epochs=7, tags=["x"])
    path = save_config(cfg, tmp_path / "run" / "config.json", extra={"seed": 3})
    saved = json.loads(path.read_text())
    assert saved["config"]["epochs"] == 7
    meta = saved["meta"]
    assert meta["seed"] == 3 and meta["dcpnas_version"] and meta["torch_version"] and "command" in meta
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temp file left
    # A saved run config can be read back as a config file.
    assert from_dict(RunConfig, load_config_file(path)) == cfg


# --------------------------------------------------------------------------------------------------
# presets and resolution

KIND = "test-run"
register_preset(KIND, "short", lambda: RunConfig(epochs=5, optim=OptimConfig(lr=0.1)))
register_preset(KIND, "long", lambda: RunConfig(epochs=500))


def test_presets():
    assert list_presets(KIND) == ["long", "short"]
    assert list_presets("no-such-kind") == []
    assert get_preset(KIND, "short").epochs == 5
    assert get_preset(KIND, "short") is not get_preset(KIND, "short")  # fresh each time
    with pytest.raises(ConfigError, match=r"unknown test-run preset 'shrt' \(did you mean 'short'\? available: long, short\)"):
        get_preset(KIND, "shrt")


def test_register_preset_duplicates_and_decorator():
    @register_preset("test-deco", "a")
    def _a():
        return RunConfig(epochs=2)

    assert get_preset("test-deco", "a").epochs == 2
    with pytest.raises(ValueError):
        register_preset("test-deco", "a", lambda: RunConfig())
    register_preset("test-deco", "a", lambda: RunConfig(epochs=9), replace=True)
    assert get_preset("test-deco", "a").epochs == 9


def test_resolve_config_layers(tmp_path):
    assert resolve_config(RunConfig, KIND) == RunConfig()
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("seed = 4\n[optim]\nmomentum = 0.5\n")
    cfg = resolve_config(RunConfig, KIND, preset="short", config_file=cfg_file, overrides=["epochs=6"])
    # preset (epochs 5, lr 0.1) < file (seed, momentum: partial section merged deep) < overrides (epochs)
    assert (cfg.epochs, cfg.seed, cfg.optim.lr, cfg.optim.momentum) == (6, 4, 0.1, 0.5)


def test_resolve_config_names_the_file_on_error(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text('{"optim": {"moment": 0.5}}')
    with pytest.raises(ConfigError, match=r"c.json: unknown config key 'optim.moment' \(did you mean 'optim.momentum'\?\)"):
        resolve_config(RunConfig, KIND, config_file=cfg_file)
    with pytest.raises(ConfigError, match="unknown test-run preset"):
        resolve_config(RunConfig, KIND, preset="nope")


def test_schema_module_exposes_the_whole_api():
    from dcpnas.config import schema

    assert schema.resolve_config is resolve_config and schema.register_preset is register_preset
    assert schema.load_config_file is load_config_file


def test_a_bad_choice_names_the_close_match():
    with pytest.raises(ConfigError, match=r"^config key 'optim.schedule': expected one of 'cosine', 'step', "
                                          r"'none', got 'cosin' \(did you mean 'cosine'\?\)$"):
        from_dict(RunConfig, {"optim": {"schedule": "cosin"}})
    with pytest.raises(ConfigError) as exc:
        apply_overrides(RunConfig(), ["optim.schedule=linear"])
    assert "did you mean" not in str(exc.value)  # nothing close: no guess


def test_train_choices_come_from_the_constants_that_define_them():
    import typing

    from dcpnas.space.macro import LAYOUTS
    from dcpnas.space.network import SIZES
    from dcpnas.space.primitives import SCOPES
    from dcpnas.train.config import TEACHER_KINDS, ModelConfig, TeacherConfig

    model, teacher = typing.get_type_hints(ModelConfig), typing.get_type_hints(TeacherConfig)
    assert typing.get_args(model["size"]) == tuple(SIZES)
    assert typing.get_args(model["scope"]) == SCOPES
    assert typing.get_args(model["layout"]) == ("auto",) + LAYOUTS
    assert typing.get_args(teacher["kind"]) == TEACHER_KINDS


def test_search_choices_come_from_the_constants_that_define_them():
    import typing

    from dcpnas.search import config as sc
    from dcpnas.search.maths.curvature import CURVATURE_MODES
    from dcpnas.search.maths.decoupled import PARAMETRIZATIONS, RANK_SCOPES
    from dcpnas.search.maths.discrepancy import DISTANCES, SCALES
    from dcpnas.search.maths.objective import TEACHER_BN

    objective, decoupled = typing.get_type_hints(sc.ObjectiveConfig), typing.get_type_hints(sc.DecoupledConfig)
    assert typing.get_args(objective["distance"]) == DISTANCES
    assert typing.get_args(objective["discrepancy_scale"]) == SCALES
    assert typing.get_args(objective["curvature"]) == CURVATURE_MODES
    assert typing.get_args(objective["teacher_bn"]) == TEACHER_BN
    assert typing.get_args(decoupled["rank_scope"]) == RANK_SCOPES
    assert typing.get_args(decoupled["parametrization"]) == PARAMETRIZATIONS


@pytest.mark.parametrize("override,message", [
    ("objective.curvature=ggm", "config key 'objective.curvature': expected one of 'exact', 'ggn', 'fisher', "
                                "got 'ggm' (did you mean 'ggn'?)"),
    ("method=dcpsnas", "config key 'method': expected one of 'dcpnas', 'cpnas', 'cpnas-sample', 'bnas', "
                       "'darts', 'random', got 'dcpsnas' (did you mean 'dcpnas' or 'cpnas'?)"),
    ("decoupled.tau=9", "decoupled: tau must be in 0..8 (the number of ops), got 9"),
    ("objective.fisher_sign=2", "config key 'objective.fisher_sign': expected one of -1.0, 1.0, got 2"),
])
def test_search_config_errors_are_one_line_with_close_matches(override, message):
    from dcpnas.search.run.api import resolve_search_config

    with pytest.raises(ConfigError) as exc:
        resolve_search_config(preset="quick", overrides=[override])
    assert str(exc.value) == message
