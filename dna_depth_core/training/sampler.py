"""A distributed, resumable sampler: the data order depends only on (seed, epoch).

Every process gets a disjoint shard of one shuffled permutation per epoch (like
:class:`torch.utils.data.DistributedSampler`), and a run resumed in the middle of an
epoch can skip the samples it has already seen without loading them.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableShardSampler(Sampler[int]):
    """Dataset indices for one process, reproducible per epoch and resumable mid-epoch.

    Training (``shuffle=True``): the permutation is drawn from ``seed + epoch``, trimmed to
    a multiple of ``world_size * batch_size`` so every process runs the same number of full
    batches, and rank ``r`` takes every ``world_size``-th index from ``r``.
    Validation (``shuffle=False``): dataset order, nothing dropped; shards may differ by
    one sample.

    Args:
        dataset_size: number of samples.
        batch_size: samples per batch and process (for trimming).
        rank: this process's index.
        world_size: number of processes.
        shuffle: shuffle and trim (training) or keep order and everything (validation).
        seed: base seed of the permutations.
    """

    def __init__(
        self, dataset_size: int, batch_size: int, rank: int = 0, world_size: int = 1, shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's permutation and skip its first ``start_batch`` batches (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    @property
    def batches_per_epoch(self) -> int:
        """Full batches each process runs in a training epoch."""
        return self.dataset_size // (self.world_size * self.batch_size)

    def _indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.dataset_size, self.world_size))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        permutation = torch.randperm(self.dataset_size, generator=generator)
        used = self.batches_per_epoch * self.world_size * self.batch_size
        return permutation[:used][self.rank :: self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        if self.shuffle:
            shard = self.batches_per_epoch * self.batch_size
        else:
            shard = len(range(self.rank, self.dataset_size, self.world_size))
        return max(0, shard - self.start_batch * self.batch_size)
