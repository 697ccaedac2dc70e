"""The order of training examples: seeded global batches, grouped by length, the same after a resume."""

from __future__ import annotations

import random
from collections.abc import Sequence


def pair_batches(lengths: Sequence[int], batch_size: int, seed: int, *, group_by_length: bool) -> list[list[int]]:
    """Full batches of indices in a seeded order; with grouping, similar lengths share a batch (less padding).

    Grouping shuffles, sorts within windows of 50 batches, cuts batches, then shuffles the batch order, so each
    batch is still a random draw of the data and the order is the same for the same seed.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 50
        windows = [sorted(order[s : s + window], key=lengths.__getitem__) for s in range(0, len(order), window)]
        order = [i for w in windows for i in w]
    batches = [order[s : s + batch_size] for s in range(0, len(order) - batch_size + 1, batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


class EpochBatches:
    """The global batches of each epoch, computed from the seed (so a resumed run sees the same order)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool) -> None:
        self.lengths = lengths
        self.batch_size, self.seed, self.group = batch_size, seed, group_by_length
        self.cached: tuple[int, list[list[int]]] | None = None

    def for_step(self, step: int, steps_per_epoch: int) -> list[int]:
        epoch, index = divmod(step, steps_per_epoch)
        if self.cached is None or self.cached[0] != epoch:
            batches = pair_batches(self.lengths, self.batch_size, self.seed + epoch, group_by_length=self.group)
            self.cached = (epoch, batches)
        return self.cached[1][index]
