"""Batch augmentations applied on the compute device after normalisation (Cutout)."""

from __future__ import annotations

import torch

__all__ = ["cutout_"]


def cutout_(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017, as in DARTS): zero one ``length``×``length`` square per image.

    The square's centre is uniform over the image and the square is clipped at the borders. The
    centres are drawn from ``generator`` (a CPU generator, so a resumed run draws the same squares).
    Zero is the dataset mean after normalisation. Works in place and returns ``x``.
    """
    if length <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b, 1), generator=generator).to(x.device)
    half = length // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= cy - half) & (rows < cy + half)           # B×H
    in_cols = (cols >= cx - half) & (cols < cx + half)           # B×W
    square = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill_(square, 0.0)
