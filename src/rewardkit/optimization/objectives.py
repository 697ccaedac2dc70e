"""Proxy objectives for best-of-n: each proxy alone, and over two or more proxies (ensemble members) their mean,
worst case (min, Coste et al. 2024) and mean - lambda * std for a sweep of lambda, all through the ensembles' one
combiner, `rewardkit.models.ensemble.combine_rewards`.

Members must be on one scale before they combine: models' rewards are z-scored with each model's normalization
statistics (as `RewardEnsemble` does); score columns read from a pool (`--proxy-field`) are z-scored with their own
mean and std over the pool (`standardize`), which leaves each column's ranking, and so its best-of-n, unchanged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from rewardkit.models.ensemble import combine_rewards

MEAN, WORST_CASE = "mean", "min"


def uncertainty_objective(std_weight: float) -> str:
    return f"mean-{std_weight:g}std"


def objectives(members: dict[str, list[float]], std_weights: Sequence[float]) -> dict[str, list[float]]:
    """name -> per-sample objective: every member alone, then (with two or more) mean, min and mean - l * std for
    each l in `std_weights`. NaN where a member has no score for the sample."""
    result = dict(members)
    if len(members) < 2:
        return result
    columns = list(members.values())
    result[MEAN] = combine_rewards(columns, "mean")[0]
    result[WORST_CASE] = combine_rewards(columns, "min")[0]
    for weight in std_weights:
        result[uncertainty_objective(weight)] = combine_rewards(columns, "mean-minus-std", weight)[0]
    return result


def standardize(values: Sequence[float]) -> list[float]:
    """z-scores over the finite values (NaN stays NaN); a constant column becomes all zeros."""
    finite = [v for v in values if math.isfinite(v)]
    mean = statistics.fmean(finite) if finite else 0.0
    std = statistics.pstdev(finite) if len(finite) > 1 else 0.0
    return [(v - mean) / std if std > 0 else (0.0 if math.isfinite(v) else math.nan) for v in values]
