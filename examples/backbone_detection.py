"""A found 1-bit network as a detection backbone, on synthetic data.

The derived network of a genotype (a search's ``genotype.json``, or a named one such as the authors'
DCP-NAS-L cell ``DDPNAS_MCN_2``) returns its multi-scale feature maps with ``features_only=True``
(timm's convention). A small centre-point head (CenterNet-style: a top-down sum of the scales, then a
heat map of object centres and the box size at each place) is trained on images holding one bright
square each, so nothing needs to be downloaded.

    python examples/backbone_detection.py                          # DDPNAS_MCN_2, 1-bit
    python examples/backbone_detection.py --genotype runs/q/genotype.json --steps 100
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from dcpnas.space import load_genotype
from dcpnas.space.network import build_network


def synthetic_squares(n: int, size: int, stride: int, generator: torch.Generator):
    """Images (n, 1, size, size) with one bright square each on noise; targets on the stride-``stride``
    grid: a one-hot centre map (n, 1, g, g) and the square's side / size at every place (n, 1, g, g)."""
    g = size // stride
    images = 0.1 * torch.randn(n, 1, size, size, generator=generator)
    centres = torch.zeros(n, 1, g, g)
    sides = torch.zeros(n, 1, g, g)
    for i in range(n):
        side = int(torch.randint(size // 6, size // 3, (1,), generator=generator))
        x, y = (int(v) for v in torch.randint(0, size - side, (2,), generator=generator))
        images[i, 0, y:y + side, x:x + side] += 1.0
        centres[i, 0, (y + side // 2) // stride, (x + side // 2) // stride] = 1.0
        sides[i] = side / size
    return images, centres, sides


class CentreHead(nn.Module):
    """Lateral 1×1 convs to ``width`` channels, coarse-to-fine upsample-and-add, then a 3×3 conv
    predicting the centre logit and the box side at the finest stride it is given."""

    def __init__(self, channels: list[int], width: int = 32):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.out = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 2, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        top = self.lateral[-1](features[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            top = lateral(f) + F.interpolate(top, size=f.shape[-2:], mode="nearest")
        return self.out(top)


class Detector(nn.Module):
    def __init__(self, genotype, *, binary: bool = True, C: int = 8, layers: int = 5):
        super().__init__()
        # The two coarser scales (strides 2 and 4 on a 32×32 input in the CIFAR layout).
        self.backbone = build_network(load_genotype(genotype), "XS", binary=binary, in_channels=1,
                                      C=C, layers=layers, features_only=True, out_indices=(1, 2))
        self.head = CentreHead(self.backbone.feature_info.channels())
        self.stride = self.backbone.feature_info.reduction()[0]

    def forward(self, x):
        return self.head(self.backbone(x))


def loss_fn(pred: torch.Tensor, centres: torch.Tensor, sides: torch.Tensor) -> torch.Tensor:
    """Centre-map BCE (positives up-weighted: one centre among g² places) + side L1 at the centre."""
    g2 = centres[0].numel()
    heat = F.binary_cross_entropy_with_logits(pred[:, :1], centres, pos_weight=torch.tensor(float(g2)))
    side = (F.l1_loss(pred[:, 1:], sides, reduction="none") * centres).sum() / centres.sum()
    return heat + side


def main(genotype="DDPNAS_MCN_2", *, steps: int = 40, batch: int = 16, size: int = 32, binary: bool = True,
         C: int = 8, layers: int = 5, lr: float = 3e-3, seed: int = 0, quiet: bool = False):
    """Train the detector on one fixed synthetic batch; returns (first loss, last loss)."""
    torch.manual_seed(seed)
    model = Detector(genotype, binary=binary, C=C, layers=layers)
    images, centres, sides = synthetic_squares(batch, size, model.stride, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        loss = loss_fn(model(images), centres, sides)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if not quiet and (step % 10 == 0 or step == steps - 1):
            print(f"step {step + 1:3d}/{steps}  loss {loss.item():.4f}")
    if not quiet:
        info = model.backbone.feature_info
        print(f"backbone: {'1-bit' if binary else 'real-valued'} {genotype}, features "
              f"{info.channels()} channels at strides {info.reduction()}")
    return losses[0], losses[-1]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--genotype", default="DDPNAS_MCN_2", help="a genotype name or file")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--real", action="store_true", help="a real-valued backbone instead of 1-bit")
    args = p.parse_args()
    torch.set_num_threads(1)
    main(args.genotype, steps=args.steps, binary=not args.real)
