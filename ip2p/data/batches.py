"""Batches addressed by ``(epoch, index)`` keys: which samples a process
trains on in which order, and how items become a batch."""

from typing import List

import torch


def collate(items: List[dict]) -> dict:
    errors = [item["error"] for item in items if "error" in item]
    if errors:
        return {"errors": errors}
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class EpochBatchSampler:
    """This process's batches of ``(epoch, index)`` keys.

    The epoch's permutation is drawn from ``(seed, epoch)``, identical on every
    process; process ``rank`` takes every ``world``-th sample. The permutation
    is padded cyclically so every process gets the same number of full batches
    (a 1-sample data set still trains on 4 processes). ``set_position`` starts
    an epoch part-way, for resuming without re-reading skipped samples.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int, world: int, seed: int):
        self.num_samples, self.batch_size, self.rank, self.world, self.seed = num_samples, batch_size, rank, world, seed
        self.epoch, self.start_batch = 0, 0

    def batches_per_epoch(self) -> int:
        global_batch = self.batch_size * self.world
        return -(-self.num_samples // global_batch)

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self):
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)).tolist()
        needed = self.batches_per_epoch() * self.batch_size * self.world
        order = (order * (needed // len(order) + 1))[:needed]
        mine = order[self.rank::self.world]
        for batch in range(self.start_batch, self.batches_per_epoch()):
            yield [(self.epoch, i) for i in mine[batch * self.batch_size:(batch + 1) * self.batch_size]]
