"""Reading what a finished search run left: its genotype and the α it was derived from.

Torch-free, for the readers of many runs (study summaries, replica consensus).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

__all__ = ["final_alphas", "read_summary"]


def read_summary(run_dir: str | Path) -> Optional[dict]:
    """The run's ``summary.json`` (written when it finished), or None."""
    try:
        data = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def final_alphas(run_dir: str | Path) -> Optional[list]:
    """α of the last epoch record in ``log.jsonl`` (the genotype was derived from it): nested lists
    [α_normal, α_reduce] (then β under edge normalisation), or None."""
    last = None
    try:
        with open(Path(run_dir) / "log.jsonl", encoding="utf-8") as f:
            for line in f:
                if '"event": "epoch"' in line or '"event":"epoch"' in line:
                    last = line
    except OSError:
        return None
    if last is None:
        return None
    try:
        return json.loads(last).get("alphas")
    except ValueError:
        return None
