"""Direct BNAS, the 1-bit DARTS baseline of Table 4.3: the Child supernet alone, ŵ, β on
search-train and α̂ on search-val with the label cross-entropy of Eq. 4.25 (no Parent, no G, no D,
no L_R: "less effective due to the search process being not exhaustive", book p.107)."""

from __future__ import annotations

from .single import SingleSupernetSearch


@SingleSupernetSearch.register("bnas")
class Bnas(SingleSupernetSearch):
    name = "bnas"
    kind = "child"
