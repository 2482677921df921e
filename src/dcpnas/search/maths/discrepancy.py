"""The discrepancy D(α̂) between the Child's and the Parent's architecture gradients (Eq. 4.31).

D compares g_C = ∂G/∂α̂ with the Parent's tangent g_P = ∂f̃ᴾ/∂α (Eq. 4.29); ∇_α̂ D = H_G·∂D/∂g_C
(Eq. 4.33), so a distance is two things: its value and its closed-form ∂D/∂g_C, which the
curvature product (``curvature.py``) turns into ∇_α̂ D. Distances are small objects built once
from the config (``make_distance``), as larq builds its quantizers:

* ``fro``    ‖g_C − g_P‖²_F (the default, Table 4.4's F-norm);
* ``l1``     Σ|g_C − g_P|;
* ``cosine`` 1 − ⟨g_C, g_P⟩/(‖g_C‖‖g_P‖).

``scale="tangent"`` divides D by the tangent's own size, held constant for the step (‖g_P‖² for
fro, ‖g_P‖₁ for l1; cosine is scale-free already), so that λ means the same at every supernet
size and data scale (docs/METHOD.md, Decision L). ``scale="none"`` is the book's raw D.

Gradient lists are shaped like the architecture parameters, [α_normal, α_reduce]; every reduction
runs over all of them together.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...utils.registry import Registry

TensorList = Sequence[torch.Tensor]

SCALES = ("tangent", "none")


def _dot(a: TensorList, b: TensorList) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


class Distance:
    """D(g_C, g_P) and ∂D/∂g_C; ``scale`` as in the module docstring."""

    name = "?"
    eps = 1e-12

    def __init__(self, scale: str = "none"):
        if scale not in SCALES:
            raise ValueError(f"unknown discrepancy scale {scale!r}; expected one of {SCALES}")
        self.scale = scale

    # -- what subclasses define: the raw distance, its gradient, the tangent's size --------------
    def raw(self, g_C: TensorList, g_P: TensorList) -> torch.Tensor:
        raise NotImplementedError

    def raw_direction(self, g_C: TensorList, g_P: TensorList) -> list[torch.Tensor]:
        raise NotImplementedError

    def tangent_size(self, g_P: TensorList) -> torch.Tensor:
        return torch.ones((), dtype=g_P[0].dtype, device=g_P[0].device)

    # -- the interface ---------------------------------------------------------------------------
    def normaliser(self, g_P: TensorList) -> torch.Tensor:
        """The constant D is divided by (1 for scale=none)."""
        if self.scale == "none":
            return torch.ones((), dtype=g_P[0].dtype, device=g_P[0].device)
        return self.tangent_size([t.detach() for t in g_P]).clamp_min(self.eps)

    def value(self, g_C: TensorList, g_P: TensorList) -> torch.Tensor:
        """D(g_C, g_P); differentiable in g_C (the tests build ∇_α̂ D from it)."""
        if len(g_C) != len(g_P):
            raise ValueError(f"g_C has {len(g_C)} tensors, g_P has {len(g_P)}")
        return self.raw(g_C, g_P) / self.normaliser(g_P)

    def direction(self, g_C: TensorList, g_P: TensorList) -> list[torch.Tensor]:
        """∂D/∂g_C in closed form."""
        s = self.normaliser(g_P)
        return [d / s for d in self.raw_direction(g_C, g_P)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale!r})"


DISTANCE_TYPES: Registry[type[Distance]] = Registry("discrepancy distance")
register_distance = DISTANCE_TYPES.register


@register_distance("fro")
class Frobenius(Distance):
    def raw(self, g_C, g_P):
        return sum((c - p).pow(2).sum() for c, p in zip(g_C, g_P))

    def raw_direction(self, g_C, g_P):
        return [2.0 * (c - p) for c, p in zip(g_C, g_P)]

    def tangent_size(self, g_P):
        return _dot(g_P, g_P)


@register_distance("l1")
class L1(Distance):
    def raw(self, g_C, g_P):
        return sum((c - p).abs().sum() for c, p in zip(g_C, g_P))

    def raw_direction(self, g_C, g_P):
        return [torch.sign(c - p) for c, p in zip(g_C, g_P)]  # 0 where equal, as autograd's |·|

    def tangent_size(self, g_P):
        return sum(p.abs().sum() for p in g_P)


@register_distance("cosine")
class Cosine(Distance):
    """1 − cos; where ‖g_C‖‖g_P‖ < eps the clamped denominator is a constant."""

    def _parts(self, g_C, g_P):
        dot = _dot(g_C, g_P)
        n_C, n_P = _dot(g_C, g_C).sqrt(), _dot(g_P, g_P).sqrt()
        return dot, n_C, n_P, (n_C * n_P).clamp_min(self.eps)

    def raw(self, g_C, g_P):
        dot, _, _, denom = self._parts(g_C, g_P)
        return 1.0 - dot / denom

    def raw_direction(self, g_C, g_P):
        # ∂(1 − c)/∂g_C = −g_P/(‖g_C‖‖g_P‖) + c·g_C/‖g_C‖²
        dot, n_C, n_P, denom = self._parts(g_C, g_P)
        cos = dot / denom
        scale = torch.where(n_C * n_P > self.eps, cos / n_C.pow(2).clamp_min(self.eps),
                            torch.zeros_like(cos))
        return [-p / denom + scale * c for c, p in zip(g_C, g_P)]


DISTANCES = DISTANCE_TYPES.names()


def make_distance(name: str | Distance, scale: str = "none") -> Distance:
    """The distance ``name`` (a ``Distance`` passes through unchanged)."""
    if isinstance(name, Distance):
        return name
    return DISTANCE_TYPES[name](scale)


def discrepancy(g_C: TensorList, g_P: TensorList, distance: str | Distance = "fro", *,
                scale: str = "none") -> torch.Tensor:
    """D(g_C, g_P) by name (functional form of ``make_distance(distance, scale).value``)."""
    return make_distance(distance, scale).value(g_C, g_P)


def discrepancy_direction(g_C: TensorList, g_P: TensorList, distance: str | Distance = "fro", *,
                          scale: str = "none") -> list[torch.Tensor]:
    """∂D/∂g_C by name (functional form of ``make_distance(distance, scale).direction``)."""
    return make_distance(distance, scale).direction(g_C, g_P)
