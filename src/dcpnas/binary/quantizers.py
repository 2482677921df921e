"""Sign binarisers with straight-through estimators.

The forward value is the exact sign (sign(0) = +1); the backward is a surrogate's derivative. Each
binariser is an ``autograd.Function`` whose backward and ``jvp`` are written in plain, differentiable
torch ops, so double backward (the exact curvature mode), forward-mode AD (the Gauss-Newton mode)
and ``torch.func`` transforms all see the surrogate. They also take fewer elementwise kernels per
pass than the ``surrogate + (sign − surrogate).detach()`` form (benchmarks/README.md,
"bench_train_step.py").
"""

from __future__ import annotations

import torch

__all__ = ["approx_sign", "approx_sign_derivative", "clipped_identity_derivative", "hard_sign", "weight_sign"]


def hard_sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with sign(0) = +1, so every output is exactly ±1 (a 1-bit value).

    copysign(1, x + 0): adding +0 turns −0 into +0, so this is ``where(x >= 0, 1, −1)`` for every
    number (tests/test_binary.py), in two float kernels; on CPU a bool comparison and ``where``
    cost several times as much (benchmarks/README.md, "bench_kernels.py").
    A NaN keeps its sign bit (``where`` gives −1): either way a ±1 that hides it.
    """
    return torch.copysign(_one(x), x + 0.0)


_ONES: dict = {}


def _one(x: torch.Tensor) -> torch.Tensor:
    """A 0-dim 1 in x's dtype and device, made once: a supernet pair calls the binarisers thousands
    of times, and a fresh ``new_ones`` each time shows in its cost."""
    key = (x.dtype, x.device)
    one = _ONES.get(key)
    if one is None:
        one = _ONES[key] = torch.ones((), dtype=x.dtype, device=x.device)
    return one


def approx_sign_derivative(x: torch.Tensor) -> torch.Tensor:
    """Derivative of the Bi-Real ApproxSign surrogate 2x − x|x| (|x| < 1, ±1 outside): (2 − 2|x|)₊."""
    return (2.0 - 2.0 * x.abs()).clamp_min(0.0)


def clipped_identity_derivative(w: torch.Tensor) -> torch.Tensor:
    """Derivative of the clipped identity, 1_{|ŵ|≤1}, boundary included as in Eq. 4.35; constant in ŵ,
    so the second derivative is 0."""
    return (w.abs() <= 1.0).to(w.dtype)


def _binariser(name: str, derivative):
    """(traceable, eager) ``autograd.Function``s: sign forward, backward (and, in the eager one,
    jvp) multiplying by ``derivative(x)``. ``torch.compile`` cannot trace a Function that defines
    a ``jvp``, and a compiled region has no forward-mode AD, so it gets the first. Built with
    ``type`` so that profiles and graphs name them (autograd nodes read ``<name>Backward``)."""

    def forward(x):
        return hard_sign(x)

    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * derivative(x)

    def jvp(ctx, tangent):
        (x,) = ctx.saved_tensors
        return tangent * derivative(x)

    traceable = type(f"{name}Traceable", (torch.autograd.Function,), dict(
        generate_vmap_rule=True, forward=staticmethod(forward),
        setup_context=staticmethod(setup_context), backward=staticmethod(backward)))
    eager = type(name, (traceable,), dict(jvp=staticmethod(jvp)))
    return traceable, eager


_APPROX_SIGN = _binariser("ApproxSign", approx_sign_derivative)
_WEIGHT_SIGN = _binariser("WeightSign", clipped_identity_derivative)


def weight_sign(w: torch.Tensor) -> torch.Tensor:
    """Weight binariser b_ŵ = sign(ŵ) with the clipped-identity STE ∂b/∂ŵ = 1_{|ŵ|≤1} (Eq. 4.35)."""
    return _WEIGHT_SIGN[not torch.compiler.is_compiling()].apply(w)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Activation binariser: sign(x) forward, Bi-Real ApproxSign gradient backward.

    The surrogate 2x − x|x| on |x| < 1 (±1 outside) has derivative 2 − 2|x| inside, 0 outside.
    """
    return _APPROX_SIGN[not torch.compiler.is_compiling()].apply(x)
