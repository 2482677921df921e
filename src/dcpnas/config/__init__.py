"""Typed, validated dataclass configs: strict loading, ``--set`` overrides, files, presets.

Later modules define their own config dataclasses and register presets::

    @dataclass
    class SearchConfig:
        epochs: int = 50
        lr: float = 0.025

        def validate(self):
            if self.lr <= 0:
                raise ConfigError(f"lr must be positive, got {self.lr}")

    register_preset("search", "cifar10", lambda: SearchConfig(epochs=50))
    cfg = resolve_config(SearchConfig, "search", preset="cifar10", config_file=None, overrides=["lr=0.1"])
"""

from .files import load_config_file, save_config
from .presets import get_preset, list_presets, register_preset, resolve_config
from .schema import apply_overrides, deep_merge, flatten, from_dict, parse_override, parse_value, to_dict, validate_config

__all__ = [
    "from_dict",
    "to_dict",
    "validate_config",
    "apply_overrides",
    "parse_override",
    "parse_value",
    "deep_merge",
    "flatten",
    "load_config_file",
    "save_config",
    "register_preset",
    "get_preset",
    "list_presets",
    "resolve_config",
]
