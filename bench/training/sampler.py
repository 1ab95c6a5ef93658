"""A sampler whose order is a function of (seed, epoch, rank, world size) only, and
which can start in the middle of an epoch.

This is what makes resumption exact: after an interruption at iteration k of epoch e,
the run reloads the checkpoint taken at that point and continues with the same indices
an uninterrupted run would have drawn from position k on. (torch's DistributedSampler
has the same per-epoch order but cannot start mid-epoch.)
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Shuffled (or sequential) indices of one epoch, sharded over ranks.

    Each epoch's permutation comes from ``torch.Generator().manual_seed(seed + epoch)``
    (different epochs, different orders; identical across runs). The permutation is
    padded by wrapping around to a multiple of ``world_size`` and rank ``r`` takes
    positions r, r + W, ... as DistributedSampler does; with ``drop_last`` the shard is
    cut to whole batches elsewhere (the DataLoader's ``drop_last``). ``pad=False`` (for
    evaluation) shards without padding: every index exactly once over all ranks, so a
    metric that accumulates (a confusion matrix) never counts a sample twice.
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1, pad: bool = True):
        if num_samples <= 0:
            raise ValueError("EpochSampler needs at least one sample")
        self.num_samples, self.shuffle, self.seed = int(num_samples), bool(shuffle), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.pad = bool(pad)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select epoch ``epoch``'s order; skip this rank's first ``start`` indices."""
        self.epoch, self.start = int(epoch), int(start)

    @property
    def shard_size(self) -> int:
        if not self.pad:
            return len(range(self.rank, self.num_samples, self.world_size))
        return math.ceil(self.num_samples / self.world_size)

    def order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        if not self.pad:
            return order[self.rank::self.world_size]
        total = self.shard_size * self.world_size
        order += order[: total - len(order)] if total > len(order) else []
        while len(order) < total:                 # tiny datasets: wrap more than once
            order += order[: total - len(order)]
        return order[self.rank:total:self.world_size]

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return max(self.shard_size - self.start, 0)
