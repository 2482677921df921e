"""Reading config files (.json / .toml) and saving a run's resolved config with its provenance."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..utils.bounded import read_text
from .schema import to_dict

__all__ = ["load_config_file", "save_config", "SAVED_FORMAT"]

#: Marker written by :func:`save_config`; :func:`load_config_file` unwraps such files, so a run's saved
#: ``config.json`` can be passed back as ``--config`` to repeat it.
SAVED_FORMAT = "dcpnas-config/1"
#: A config file, even a run's saved config.json, is a few KiB; anything far larger is not one.
FILE_LIMIT = 1 << 20


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.json`` or ``.toml`` config file into a (possibly partial) dict.

    A file written by :func:`save_config` yields its ``config`` part. Missing files, unknown formats and
    syntax errors raise a one-line :class:`ConfigError` (with the line number when the parser gives one).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(f"unsupported config file format {suffix or '(none)'!r} for {path} (use .json or .toml)")
    text = read_text(path, what="config file", limit=FILE_LIMIT, error=ConfigError)
    try:
        if suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        else:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                # Python 3.11 puts "(at line N, column M)" in the message itself.
                raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object of settings, got {type(data).__name__}")
    meta = data.get("meta")
    if isinstance(meta, dict) and meta.get("format") == SAVED_FORMAT and isinstance(data.get("config"), dict):
        return data["config"]
    if isinstance(meta, dict) and str(meta.get("format", "")).startswith("dcpnas-config/"):
        raise ConfigError(f"{path}: format {str(meta['format'])[:60]!r} is not one this dcpnas reads "
                          f"({SAVED_FORMAT}; written by a newer dcpnas?)")
    return data


def _version(dist: str) -> str | None:
    # importlib.metadata reads the installed version without importing (torch takes seconds to import).
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        module = sys.modules.get(dist)
        return getattr(module, "__version__", None)


def save_config(cfg: Any, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``cfg`` atomically as JSON ``{"config": ..., "meta": ...}``.

    ``meta`` records the dcpnas / torch / Python versions, the command line and the time, updated by
    ``extra`` (seed, world size, ...). The file can be read back by :func:`load_config_file`.
    """
    from .. import __version__
    from ..utils.io import atomic_write_json

    meta: dict[str, Any] = {
        "format": SAVED_FORMAT,
        "config_class": type(cfg).__name__,
        "dcpnas_version": __version__,
        "torch_version": _version("torch"),
        "python_version": platform.python_version(),
        "command": shlex.join(sys.argv),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(extra or {})
    return atomic_write_json(path, {"config": to_dict(cfg), "meta": meta})
