"""Samplers that shard users across DDP ranks themselves: a seeded per-epoch shuffle for training, and
every user exactly once for evaluation (Lightning's DistributedSampler would pad with duplicates)."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on ``seed`` and the epoch (set by Lightning).

    With ``world_size`` > 1 each rank takes every ``world_size``-th index of the same permutation,
    padded by wrapping so every rank runs the same number of batches (DDP needs that). ``tag_epoch``
    yields ``epoch * n + index``, so a dataset (and its worker processes) knows the epoch of each draw.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1, tag_epoch: bool = False):
        self.n, self.seed, self.epoch, self.rank, self.world_size = n, seed, 0, rank, world_size
        self.tag_epoch = tag_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        order += order[: len(self) * self.world_size - self.n]  # pad to a multiple of world_size
        offset = self.epoch * self.n if self.tag_epoch else 0
        return iter(i + offset for i in order[self.rank::self.world_size])

    def __len__(self) -> int:
        return -(-self.n // self.world_size)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of ``range(n)``: every user on exactly one rank, no padding."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
