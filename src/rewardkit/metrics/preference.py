"""Evaluation metrics for reward models, over plain Python lists or numpy arrays.

`preference_metrics` is the one entry point used by train-time eval and `rewardkit eval` (both through
`comparison_metrics`, which reads scored pairs); it returns a JSON-able dict (shape documented on the function).
RewardBench scores are in `rewardkit.metrics.rewardbench`. Metrics of the other task families (process rewards,
best-of-n, rating heads, uncertainty) are in `rewardkit.metrics.labels`.

Every accuracy is strict (chosen reward > rejected reward, as upstream `scripts/run_rm.py`
counts it); ties are reported separately and get half credit only in `accuracy_half_ties`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rewardkit.metrics.rewardbench import REWARDBENCH_SUBSETS, rewardbench_scores

DEFAULT_ECE_BINS = 10


TEMPERATURE_SEARCH_BOUNDS = (1e-2, 1e2)  # T outside this range means the margins carry no usable scale


GOLDEN_SECTION_ITERATIONS = 80  # shrinks the log-T bracket by 0.618**80, far below float precision


def preference_metrics(
    rewards_chosen: Sequence[float] | np.ndarray,
    rewards_rejected: Sequence[float] | np.ndarray,
    *,
    subsets: Sequence[str | None] | None = None,
    chosen_lengths: Sequence[int] | np.ndarray | None = None,
    rejected_lengths: Sequence[int] | np.ndarray | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy, ties, CIs, length baselines, calibration and margins for scored preference pairs.

    Returns (all values plain floats/ints/lists/None, so `json.dumps` works)::

        {"overall": {"accuracy", "accuracy_half_ties", "ci95": [lo, hi] | None, "n", "ties"},
         "subsets": {name: same keys},            # pairs whose subset is None count only in overall
         "length_baseline": {"accuracy", "chosen_longer_rate"} | None,   # None without lengths
         "length_controlled": {"chosen_shorter_accuracy", "chosen_longer_accuracy",
                               "n_chosen_shorter", "n_chosen_longer"} | None,
         "calibration": {"ece", "ece_after_temperature", "temperature", "brier"},
         "margin": {"mean", "median", "p10", "p90"},
         "rewardbench": {"sections": {name: score}, "score"}}  # only with RewardBench v1 subsets

    `ci95` is a percentile bootstrap of strict accuracy (`bootstrap` resamples, numpy Generator
    seeded with `seed`); `bootstrap=0` gives None. Calibration treats sigmoid(margin) as
    P(chosen preferred): `ece` is the standard top-label ECE, confidence sigmoid(|margin|) in the
    side the model picks against whether that side is the chosen one, over 10 equal-mass bins
    (`reliability_bins`); `brier` is the mean of (1 - sigmoid(margin))^2; `temperature` is the
    T minimising the NLL of sigmoid(margin / T) (`fit_temperature`).
    """
    margins = _margins(rewards_chosen, rewards_rejected)
    rng = np.random.default_rng(seed)
    metrics = {
        "overall": accuracy_summary(margins, bootstrap=bootstrap, rng=rng),
        "subsets": _subset_summaries(margins, subsets, bootstrap=bootstrap, rng=rng),
        "length_baseline": None,
        "length_controlled": None,
        "calibration": calibration_summary(margins),
        "margin": _margin_summary(margins),
    }
    if chosen_lengths is not None and rejected_lengths is not None:
        chosen_lengths = np.asarray(chosen_lengths, dtype=float)
        rejected_lengths = np.asarray(rejected_lengths, dtype=float)
        if chosen_lengths.shape != margins.shape or rejected_lengths.shape != margins.shape:
            shapes = f"{chosen_lengths.shape} and {rejected_lengths.shape}"
            raise ValueError(f"lengths of shape {shapes} for {margins.size} pairs")
        length_difference = chosen_lengths - rejected_lengths  # (n,)
        metrics["length_baseline"] = _length_baseline(length_difference)
        metrics["length_controlled"] = _length_controlled(margins, length_difference)
    rewardbench_names = [name for name in metrics["subsets"] if name in REWARDBENCH_SUBSETS]
    if rewardbench_names:
        metrics["rewardbench"] = rewardbench_scores(
            {name: metrics["subsets"][name]["accuracy"] for name in rewardbench_names},
            {name: metrics["subsets"][name]["n"] for name in rewardbench_names},
        )
    return metrics


def comparison_metrics(comparisons: Sequence[Mapping[str, Any]], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """`preference_metrics` of scored pairs, each a mapping with (at least) reward_chosen, reward_rejected, subset,
    chosen_length and rejected_length, the keys of `rewardkit eval`'s predictions."""
    return preference_metrics(
        [c["reward_chosen"] for c in comparisons],
        [c["reward_rejected"] for c in comparisons],
        subsets=[c["subset"] for c in comparisons],
        chosen_lengths=[c["chosen_length"] for c in comparisons],
        rejected_lengths=[c["rejected_length"] for c in comparisons],
        bootstrap=bootstrap,
        seed=seed,
    )


def _margins(rewards_chosen, rewards_rejected) -> np.ndarray:
    chosen = np.asarray(rewards_chosen, dtype=float)
    rejected = np.asarray(rewards_rejected, dtype=float)
    if chosen.ndim != 1 or chosen.shape != rejected.shape:
        raise ValueError(f"rewards must be two 1-D arrays of equal length, got {chosen.shape} and {rejected.shape}")
    if chosen.size == 0:
        raise ValueError("no preference pairs to evaluate")
    return chosen - rejected  # (n,)


def pair_credit(margins: np.ndarray) -> np.ndarray:
    """Per-pair credit: 1 if chosen scored higher, 0 if lower, 0.5 for an exact tie."""
    return np.where(margins > 0, 1.0, np.where(margins < 0, 0.0, 0.5))


def accuracy_summary(margins: np.ndarray, *, bootstrap: int, rng: np.random.Generator) -> dict:
    """`{"accuracy", "accuracy_half_ties", "ci95", "n", "ties"}` for one group of pairs."""
    correct = (margins > 0).astype(float)
    return {
        "accuracy": float(correct.mean()),
        "accuracy_half_ties": float(pair_credit(margins).mean()),
        "ci95": bootstrap_mean_ci(correct, bootstrap=bootstrap, rng=rng),
        "n": int(margins.size),
        "ties": int(np.count_nonzero(margins == 0)),
    }


def bootstrap_mean_ci(values: np.ndarray, *, bootstrap: int, rng: np.random.Generator) -> list[float] | None:
    """95% percentile-bootstrap interval of `values.mean()`; None when `bootstrap` is 0.

    Resampling n items with replacement only changes how often each distinct value is drawn,
    and those counts are Multinomial(n, value frequencies). Drawing the counts directly is the
    same bootstrap distribution at O(bootstrap x distinct values) cost, which matters for
    large n; the inputs here (0/1 or tie-split credit, paired differences) have few distinct values.
    """
    if bootstrap <= 0:
        return None
    distinct_values, counts = np.unique(values, return_counts=True)
    draws = rng.multinomial(values.size, counts / values.size, size=bootstrap)  # (bootstrap, distinct)
    resampled_means = draws @ distinct_values / values.size  # (bootstrap,)
    low, high = np.percentile(resampled_means, [2.5, 97.5])
    return [float(low), float(high)]


def _subset_summaries(margins, subsets, *, bootstrap, rng) -> dict[str, dict]:
    if subsets is None:
        return {}
    if len(subsets) != margins.size:
        raise ValueError(f"{len(subsets)} subset labels for {margins.size} pairs")
    labels = np.array(subsets, dtype=object)
    names = sorted({name for name in subsets if name is not None})
    return {name: accuracy_summary(margins[labels == name], bootstrap=bootstrap, rng=rng) for name in names}


def _length_baseline(length_difference: np.ndarray) -> dict:
    """Accuracy of always picking the longer response; equal lengths get half credit."""
    return {
        "accuracy": float(pair_credit(length_difference).mean()),
        "chosen_longer_rate": float(np.mean(length_difference > 0)),
    }


def _length_controlled(margins: np.ndarray, length_difference: np.ndarray) -> dict:
    """Strict accuracy split by whether the chosen response is shorter or longer."""
    chosen_shorter = length_difference < 0
    chosen_longer = length_difference > 0
    return {
        "chosen_shorter_accuracy": mean_or_none(margins[chosen_shorter] > 0),
        "chosen_longer_accuracy": mean_or_none(margins[chosen_longer] > 0),
        "n_chosen_shorter": int(chosen_shorter.sum()),
        "n_chosen_longer": int(chosen_longer.sum()),
    }


def mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if values.size else None


def _margin_summary(margins: np.ndarray) -> dict:
    p10, median, p90 = np.percentile(margins, [10, 50, 90])
    return {"mean": float(margins.mean()), "median": float(median), "p10": float(p10), "p90": float(p90)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def reliability_bins(margins: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> dict[str, np.ndarray]:
    """Equal-mass reliability bins of the model's confidence in the side it picks.

    Bradley-Terry reads P(chosen preferred) = sigmoid(margin). Following the standard
    top-label ECE (Guo et al., 2017), the model "predicts" the side with the higher reward, with
    confidence max(p, 1 - p) = sigmoid(|margin|), and is right when that side is the chosen
    one (a tie has confidence 0.5 and half credit). Pairs are sorted by confidence and split
    into `n_bins` groups of (nearly) equal size. Returns `confidence`, `accuracy` (bin means)
    and `count`, each of shape (bins,); fewer bins when there are fewer pairs.
    """
    confidence = sigmoid(np.abs(margins))
    credit = pair_credit(margins)
    order = np.argsort(confidence, kind="stable")
    groups = [group for group in np.array_split(order, n_bins) if group.size]
    return {
        "confidence": np.array([confidence[group].mean() for group in groups]),
        "accuracy": np.array([credit[group].mean() for group in groups]),
        "count": np.array([group.size for group in groups]),
    }


def expected_calibration_error(margins: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """ECE = sum over bins of (bin share) * |bin accuracy - bin confidence|; see `reliability_bins`."""
    bins = reliability_bins(margins, n_bins)
    weights = bins["count"] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"] - bins["confidence"])))


def brier_score(margins: np.ndarray) -> float:
    """Mean squared error of sigmoid(margin) against the label "chosen is preferred" (always 1)."""
    return float(np.mean((1.0 - sigmoid(margins)) ** 2))


def _preference_nll(margins: np.ndarray, temperature: float) -> float:
    """Mean of -log sigmoid(margin / T), the Bradley-Terry loss at temperature T."""
    return float(np.mean(np.logaddexp(0.0, -margins / temperature)))


def fit_temperature(margins: np.ndarray) -> float:
    """Temperature T > 0 minimising the NLL of sigmoid(margin / T), by golden-section on log T.

    The NLL is convex in 1/T, hence unimodal in log T, so golden-section search finds the
    minimum inside `TEMPERATURE_SEARCH_BOUNDS`; if every pair is right (or every pair wrong)
    the optimum lies at a bound. All-zero margins carry no scale and return 1.0.
    """
    if not np.any(margins):
        return 1.0
    inverse_golden_ratio = (np.sqrt(5.0) - 1.0) / 2.0
    low, high = np.log(TEMPERATURE_SEARCH_BOUNDS)
    for _ in range(GOLDEN_SECTION_ITERATIONS):
        left = high - inverse_golden_ratio * (high - low)
        right = low + inverse_golden_ratio * (high - low)
        if _preference_nll(margins, np.exp(left)) <= _preference_nll(margins, np.exp(right)):
            high = right
        else:
            low = left
    return float(np.exp((low + high) / 2.0))


def calibration_summary(margins: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> dict:
    """`{"ece", "ece_after_temperature", "temperature", "brier"}` for sigmoid(margin)."""
    temperature = fit_temperature(margins)
    return {
        "ece": expected_calibration_error(margins, n_bins),
        "ece_after_temperature": expected_calibration_error(margins / temperature, n_bins),
        "temperature": temperature,
        "brier": brier_score(margins),
    }


def paired_bootstrap_difference(
    correct_a: Sequence[float] | np.ndarray,
    correct_b: Sequence[float] | np.ndarray,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy of model B minus model A on the same pairs, with a paired 95% bootstrap CI.

    `correct_a[i]` and `correct_b[i]` are the two models' credit (0, 0.5 or 1) on pair i;
    resampling whole pairs keeps the pairing. Returns `{"difference", "ci95"}`.
    """
    a, b = paired_arrays(correct_a, correct_b)
    per_pair_difference = b - a
    rng = np.random.default_rng(seed)
    return {
        "difference": float(per_pair_difference.mean()),
        "ci95": bootstrap_mean_ci(per_pair_difference, bootstrap=bootstrap, rng=rng),
    }


def paired_arrays(a, b, dtype=float) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length, non-empty 1-D arrays, or a ValueError."""
    a, b = np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal-length, non-empty 1-D arrays, got {a.shape} and {b.shape}")
    return a, b
