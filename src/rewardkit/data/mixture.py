"""Source mixtures: the share of each source in training, and a seeded resample of the records to those shares.

    shares = mixture_shares({"hh": 1957, "pandalm": 711, "dpo": 255}, temperature=2.0)  # {"hh": 0.51, ...}
    mixed = resample_to_shares(pairs, lambda p: p.subset, shares, total=len(pairs), seed=0)

A resample, not a reweighting: the recipe's loss is a weighted mean within each batch, and batches are grouped by
length, so a batch that holds one source alone would undo its weights; a resampled training set has the shares
whatever the batching. The total stays fixed, so a mixture trains the same number of steps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from rewardkit.errors import ConfigError

Item = TypeVar("Item")


def mixture_shares(counts: dict[str, int], *, weights: dict[str, float] | None = None,
                   temperature: float | None = None) -> dict[str, float]:
    """Each source's target share: `weights` normalized over the sources present (each must be named, and only
    they), or temperature sampling, share proportional to count^(1/T) (T = 1: the counts' own proportions; large T:
    uniform)."""
    if (weights is None) == (temperature is None):
        raise ConfigError("a mixture needs exactly one of weights and temperature")
    if temperature is not None:
        powered = {source: n ** (1 / temperature) for source, n in counts.items()}
        return {source: value / sum(powered.values()) for source, value in powered.items()}
    missing, unknown = sorted(set(counts) - set(weights)), sorted(set(weights) - set(counts))
    if missing or unknown:
        raise ConfigError(f"data.mixture.weights must name exactly the trained subsets {sorted(counts)}"
                          + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    total = sum(weights[source] for source in counts)
    if total <= 0:
        raise ConfigError("data.mixture.weights: the weights of the trained subsets sum to 0")
    return {source: weights[source] / total for source in counts}


def target_counts(shares: dict[str, float], total: int) -> dict[str, int]:
    """`total` split by `shares` into whole numbers that sum to it (largest remainder; ties go to the first)."""
    exact = {source: share * total for source, share in shares.items()}
    counts = {source: math.floor(value) for source, value in exact.items()}
    by_remainder = sorted(exact, key=lambda source: counts[source] - exact[source])
    for source in by_remainder[: total - sum(counts.values())]:
        counts[source] += 1
    return counts


def resample_to_shares(items: Sequence[Item], source_of: Callable[[Item], str], shares: dict[str, float], *,
                       total: int, seed: int) -> list[Item]:
    """`total` items, each source's `target_counts` of them: a source cut below its size keeps a seeded sample
    without replacement; one raised above it keeps every item once per full multiple, plus a seeded sample of the
    rest. Sources in order of first appearance, items in their order."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(source_of(item), []).append(item)
    counts = target_counts({source: shares[source] for source in groups}, total)
    rng = random.Random(seed)
    mixed: list[Item] = []
    for source, group in groups.items():
        copies, extra = divmod(counts[source], len(group))
        picked = set(rng.sample(range(len(group)), extra))
        mixed += group * copies + [item for i, item in enumerate(group) if i in picked]
    return mixed
