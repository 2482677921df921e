"""DARTS (first order), the real-valued NAS baseline of Table 4.3: the Parent supernet alone,
w on search-train and α on search-val, both with label cross-entropy (Eq. 4.21)."""

from __future__ import annotations

from .single import SingleSupernetSearch


@SingleSupernetSearch.register("darts")
class Darts(SingleSupernetSearch):
    name = "darts"
    kind = "parent"
