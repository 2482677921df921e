"""Sign binarisers with straight-through estimators.

Every binariser is written with the detach trick, ``surrogate + (sign - surrogate).detach()``: the
forward value is the exact sign, the gradient is the surrogate's. Because this is plain autograd (no
custom ``autograd.Function``), double backward and ``torch.func`` transforms work through it, which
the exact curvature mode of the search needs.
"""

from __future__ import annotations

import torch


def hard_sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with sign(0) = +1, so every output is exactly ±1 (a 1-bit value)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def weight_sign(w: torch.Tensor) -> torch.Tensor:
    """Weight binariser b_ŵ = sign(ŵ) with the clipped-identity STE ∂b/∂ŵ = 1_{|ŵ|≤1} (Eq. 4.35)."""
    # The clipped identity, written with where: clamp's gradient is 0 at exactly |ŵ| = 1 in recent
    # torch versions, while Eq. 4.35 includes the boundary.
    surrogate = torch.where(w.abs() <= 1.0, w, hard_sign(w))
    return surrogate + (hard_sign(w) - surrogate).detach()


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Activation binariser: sign(x) forward, Bi-Real ApproxSign gradient backward.

    The surrogate 2x − x|x| on |x| < 1 (±1 outside) has derivative 2 − 2|x| inside, 0 outside.
    """
    surrogate = torch.where(x.abs() < 1, 2 * x - x * x.abs(), hard_sign(x))
    return surrogate + (hard_sign(x) - surrogate).detach()
