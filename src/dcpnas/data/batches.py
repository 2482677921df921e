"""Device-resident batching: uint8 images live on the compute device; batches are gathered, augmented and
normalised there with batched tensor ops (no per-sample Python, no DataLoader workers)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator determined by (seed, epoch) alone, so a resumed run replays the same epoch."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class DeviceBatches:
    """Iterate ``(x_float, y)`` batches for one rank; ``len()`` is the number of batches per epoch.

    Call ``set_epoch(e)`` before each epoch (as with ``DistributedSampler``): the order and the augmentation
    of epoch ``e`` depend only on ``(seed, e)``. ``batch_size`` is per rank. All ranks get the same number of
    batches (``drop_last`` trims the epoch to a multiple of ``world_size * batch_size``; otherwise the order
    is padded by wrapping around, so every rank has ``ceil(N / world_size)`` samples).
    """

    def __init__(self, x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int, *, device: torch.device | str,
                 mean: Sequence[float], std: Sequence[float], shuffle: bool = True, augment: bool = False,
                 crop_padding: int = 4, hflip: bool = True, drop_last: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, channels_last: bool = False) -> None:
        if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
            raise DataError(f"DeviceBatches needs uint8 N×C×H×W images, got {x_uint8.dtype} {tuple(x_uint8.shape)}")
        if y.dim() != 1 or y.shape[0] != x_uint8.shape[0]:
            raise DataError(f"DeviceBatches: {tuple(y.shape)} labels for {x_uint8.shape[0]} images")
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or crop_padding < 0:
            raise DataError(f"DeviceBatches: bad batch_size={batch_size} rank={rank} world_size={world_size} "
                            f"crop_padding={crop_padding}")
        c = x_uint8.shape[1]
        if augment and crop_padding > max(x_uint8.shape[2:]):
            raise DataError(f"data.crop_padding={crop_padding} is larger than the {x_uint8.shape[2]}x{x_uint8.shape[3]} "
                            f"images (a random crop of a padded image needs at most the image's side)")
        if len(mean) != c or len(std) != c:
            raise DataError(f"DeviceBatches: mean/std need {c} entries, got {len(mean)}/{len(std)}")
        self.device = torch.device(device)
        self.x = x_uint8.to(self.device)
        self.y = y.to(self.device, torch.int64)
        self.num_samples = int(x_uint8.shape[0])
        self.batch_size, self.shuffle, self.augment = int(batch_size), shuffle, augment
        self.crop_padding, self.hflip, self.drop_last = int(crop_padding), hflip, drop_last
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.channels_last = channels_last
        self.epoch = 0
        # Normalise as one fused multiply-add: (x/255 - mean)/std = x*scale + shift.
        std_t = torch.tensor(std, dtype=torch.float32)
        mean_t = torch.tensor(mean, dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std_t)).view(1, c, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, c, 1, 1).to(self.device)
        if drop_last:
            self.per_rank = (self.num_samples // world_size) // batch_size * batch_size
            if self.per_rank == 0:
                raise DataError(f"DeviceBatches: {self.num_samples} samples over {world_size} rank(s) cannot fill "
                                f"one batch of {batch_size}; lower the batch size or set drop_last=False")
        else:
            self.per_rank = -(-self.num_samples // world_size)

    def __len__(self) -> int:
        return -(-self.per_rank // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed, "num_samples": self.num_samples}

    def load_state_dict(self, state: dict) -> None:
        if int(state["num_samples"]) != self.num_samples:
            raise DataError(f"batch state was saved for {state['num_samples']} samples, this set has "
                            f"{self.num_samples}; resume with the same data")
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])

    def _epoch_plan(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """This rank's sample order and per-position augmentation draws for the current epoch.

        Everything is drawn on the CPU for the whole (global) epoch, then sharded: the result depends only on
        (seed, epoch, rank, world_size), not on the device, and costs one small transfer per epoch.
        """
        n, total = self.num_samples, self.per_rank * self.world_size
        g = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        if total > n:  # pad by wrapping around (DistributedSampler's rule) so ranks stay in lockstep
            order = order.repeat(-(-total // n))
        order = order[:total]
        dy = dx = flip = None
        if self.augment:
            p = self.crop_padding
            dy = torch.randint(0, 2 * p + 1, (total,), generator=g)
            dx = torch.randint(0, 2 * p + 1, (total,), generator=g)
            flip = (torch.rand(total, generator=g) < 0.5) if self.hflip else torch.zeros(total, dtype=torch.bool)
        shard = slice(self.rank, total, self.world_size)
        move = (lambda t: None if t is None else t[shard].to(self.device))
        return move(order), move(dy), move(dx), move(flip)

    def _augment(self, xb: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Random crop from the zero-padded image + horizontal flip, as one gather on uint8 pixels."""
        b, c, h, w = xb.shape
        p = self.crop_padding
        padded = F.pad(xb, (p, p, p, p)) if p else xb
        ar_h = torch.arange(h, device=xb.device)
        ar_w = torch.arange(w, device=xb.device)
        rows = dy[:, None] + ar_h                                                   # B×H
        # A flipped crop reads the same window right-to-left: the flip folds into the column index.
        cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)      # B×W
        # Flat index into each padded H'×W' plane; one gather (shared by all channels) beats 4-D indexing.
        flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
        return padded.reshape(b, c, -1).gather(2, flat).view(b, c, h, w)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, dy, dx, flip = self._epoch_plan()
        for start in range(0, self.per_rank, self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = self.x[idx]
            if self.augment:
                sl = slice(start, start + self.batch_size)
                xb = self._augment(xb, dy[sl], dx[sl], flip[sl])
            xb = xb.float().mul_(self._scale).add_(self._shift)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]
