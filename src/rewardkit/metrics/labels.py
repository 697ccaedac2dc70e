"""Metrics of the task families beyond pairwise accuracy, as JSON-able dicts over plain lists.

Process rewards (`processbench_metrics`, `first_error_index`), best-of-n reranking (`best_of_n_metrics`), rating
heads (`regression_metrics`, `pairwise_accuracy_within_groups`) and ensemble uncertainty (`uncertainty_accuracy`).
Accuracies are strict, with ties reported beside them, as in `rewardkit.metrics.preference`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from rewardkit.metrics.preference import (
    bootstrap_mean_ci,
    mean_or_none,
    pair_credit,
    paired_arrays,
    paired_bootstrap_difference,
)

NO_ERROR = -1  # first-error index of a solution in which every step is right


def first_error_index(step_scores: Sequence[float], threshold: float) -> int:
    """Index of the first step whose score is below `threshold` (the PRM calls it wrong), else -1."""
    return next((index for index, score in enumerate(step_scores) if score < threshold), NO_ERROR)


def processbench_metrics(predicted_first_error: Sequence[int], true_first_error: Sequence[int]) -> dict:
    """ProcessBench scores (Zheng et al., 2024) from first-error step indices, -1 meaning "no error".

    On erroneous solutions (true index != -1) a prediction is right only if it names that exact step
    (too early, too late and -1 are all wrong); on correct solutions (true == -1) only -1 is right.
    F1 is the harmonic mean of the two accuracies, 2 a_err a_corr / (a_err + a_corr), and 0 when both
    are 0. Upstream: QwenLM/ProcessBench code/run_eval_prm_*.py (printed there x100). An accuracy over
    no solutions is None, and so is F1 then. Returns
    `{"error_accuracy", "correct_accuracy", "f1", "n_error", "n_correct"}`.
    """
    predicted, true = paired_arrays(predicted_first_error, true_first_error, dtype=int)
    match = predicted == true  # (n,)
    has_error = true != NO_ERROR  # (n,)
    error_accuracy = mean_or_none(match[has_error])
    correct_accuracy = mean_or_none(match[~has_error])
    f1 = None
    if error_accuracy is not None and correct_accuracy is not None:
        total = error_accuracy + correct_accuracy
        f1 = 2 * error_accuracy * correct_accuracy / total if total else 0.0
    return {
        "error_accuracy": error_accuracy,
        "correct_accuracy": correct_accuracy,
        "f1": f1,
        "n_error": int(has_error.sum()),
        "n_correct": int((~has_error).sum()),
    }


Candidate = tuple[float, bool, str | None]  # (reward score, is correct, extracted final answer or None)


def best_of_n_metrics(groups: Sequence[Sequence[Candidate]], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """How well rewards pick a correct candidate among n per prompt, against simple baselines.

    Each group holds one prompt's candidates as (score, correct, answer). Per group, credit is:
    best-of-n, the share of correct candidates among those with the top score (a k-way tie at the top
    is a uniform pick among the k); random pick, the share of correct candidates (its expectation);
    majority vote (self-consistency), the share of correct candidates among those giving a most common
    non-None answer (answers tied for most common each get an equal share: they have equal counts), 0
    when the group has no answer at all; oracle, 1 if any candidate is correct. Returns::

        {"n": groups, "best_of_n": {"accuracy", "ci95"}, "random_pick", "majority_vote", "oracle",
         "best_of_n_minus_majority_vote": {"difference", "ci95"}}

    `majority_vote` and the difference are None when no group has an answer. CIs are percentile
    bootstraps over groups (`bootstrap` resamples seeded with `seed`; 0 gives None), the difference
    paired by group (`paired_bootstrap_difference`).
    """
    if not groups or not all(groups):
        raise ValueError("best-of-n needs at least one group, each with at least one candidate")
    best_of_n = np.array([_best_of_n_credit(group) for group in groups])  # (groups,)
    votes = [_majority_vote_credit(group) for group in groups]
    has_answers = any(credit is not None for credit in votes)
    majority_vote = np.array([0.0 if credit is None else credit for credit in votes])  # (groups,)
    return {
        "n": len(groups),
        "best_of_n": {
            "accuracy": float(best_of_n.mean()),
            "ci95": bootstrap_mean_ci(best_of_n, bootstrap=bootstrap, rng=np.random.default_rng(seed)),
        },
        "random_pick": float(np.mean([np.mean([correct for _, correct, _ in group]) for group in groups])),
        "majority_vote": float(majority_vote.mean()) if has_answers else None,
        "oracle": float(np.mean([any(correct for _, correct, _ in group) for group in groups])),
        "best_of_n_minus_majority_vote": (
            paired_bootstrap_difference(majority_vote, best_of_n, bootstrap=bootstrap, seed=seed)
            if has_answers
            else None
        ),
    }


def _best_of_n_credit(group: Sequence[Candidate]) -> float:
    top = max(score for score, _, _ in group)
    return float(np.mean([correct for score, correct, _ in group if score == top]))


def _majority_vote_credit(group: Sequence[Candidate]) -> float | None:
    counts = Counter(answer for _, _, answer in group if answer is not None)
    if not counts:
        return None
    top = max(counts.values())
    winners = {answer for answer, count in counts.items() if count == top}
    return float(np.mean([correct for _, correct, answer in group if answer in winners]))


def regression_metrics(predictions: Sequence[float], targets: Sequence[float]) -> dict:
    """`{"n", "mse", "mae", "pearson", "spearman"}` of predicted ratings against targets.

    Spearman is the Pearson correlation of average ranks (tied values share the mean of their ranks).
    A correlation is None when either side is constant (its variance, the denominator, is 0).
    """
    predictions, targets = paired_arrays(predictions, targets)
    errors = predictions - targets  # (n,)
    return {
        "n": int(errors.size),
        "mse": float(np.mean(errors**2)),
        "mae": float(np.mean(np.abs(errors))),
        "pearson": _pearson(predictions, targets),
        "spearman": _pearson(_average_ranks(predictions), _average_ranks(targets)),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """sum(dx dy) / sqrt(sum(dx^2) sum(dy^2)) with d = deviation from the mean; None for a constant side."""
    if np.all(x == x[0]) or np.all(y == y[0]):
        return None
    dx, dy = x - x.mean(), y - y.mean()
    return float(dx @ dy / np.sqrt((dx @ dx) * (dy @ dy)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank: a run of c equal values ending at rank e gets e - (c - 1) / 2."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_ranks = np.cumsum(counts)  # (distinct,)
    return (last_ranks - (counts - 1) / 2)[inverse]


def pairwise_accuracy_within_groups(
    predictions: Sequence[float], targets: Sequence[float], groups: Sequence[Hashable]
) -> dict:
    """How often predictions order two items of the same group (e.g. responses to one prompt) as targets do.

    Over pairs in one group whose targets differ: `accuracy` counts the pairs whose predictions differ in
    the same direction, `accuracy_half_ties` adds half credit for equal predictions (`pair_credit`),
    `ties` counts those. Returns `{"accuracy", "accuracy_half_ties", "n_pairs", "ties"}`, accuracies None
    without such pairs.
    """
    predictions, targets = paired_arrays(predictions, targets)
    if len(groups) != predictions.size:
        raise ValueError(f"{len(groups)} group labels for {predictions.size} items")
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    margins = np.concatenate(
        [np.empty(0), *(_ordered_margins(predictions[index], targets[index]) for index in members.values())]
    )  # (pairs,)
    return {
        "accuracy": mean_or_none(margins > 0),
        "accuracy_half_ties": mean_or_none(pair_credit(margins)),
        "n_pairs": int(margins.size),
        "ties": int(np.count_nonzero(margins == 0)),
    }


def _ordered_margins(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Prediction gap, higher-target item minus lower, for each pair i < j whose targets differ."""
    i, j = np.triu_indices(predictions.size, k=1)
    target_gap = targets[i] - targets[j]
    differ = target_gap != 0
    return (predictions[i] - predictions[j])[differ] * np.sign(target_gap[differ])


def uncertainty_accuracy(correct: Sequence[bool], uncertainty: Sequence[float], *, bins: int = 4) -> dict:
    """Accuracy in equal-mass uncertainty bins, most certain first; informative uncertainty falls off.

    For an ensemble's spread (or any uncertainty score): items are ranked by uncertainty and item
    with average rank r (ties share one, so tied items share a bin) goes to bin floor((r - 1/2) bins / n),
    i.e. `bins` quantile bins of near-equal size; bins left empty by ties are dropped. Returns::

        {"n", "accuracy",
         "bins": [{"accuracy", "n", "edges": [lowest, highest uncertainty in the bin]}, ...],
         "most_certain": accuracy of the first bin, "least_certain": accuracy of the last}
    """
    correct, uncertainty = paired_arrays(correct, uncertainty)
    if bins < 1:
        raise ValueError(f"need at least one bin, got {bins}")
    bin_index = np.floor((_average_ranks(uncertainty) - 0.5) * bins / uncertainty.size)  # (n,) in [0, bins)
    summaries = [
        {
            "accuracy": float(correct[in_bin].mean()),
            "n": int(in_bin.sum()),
            "edges": [float(uncertainty[in_bin].min()), float(uncertainty[in_bin].max())],
        }
        for in_bin in (bin_index == b for b in range(bins))
        if in_bin.any()
    ]
    return {
        "n": int(correct.size),
        "accuracy": float(correct.mean()),
        "bins": summaries,
        "most_certain": summaries[0]["accuracy"],
        "least_certain": summaries[-1]["accuracy"],
    }


AGGREGATES = {
    "min": min,
    "product": lambda p: float(math.prod(p)),
    "last": lambda p: p[-1],
    "mean": lambda p: sum(p) / len(p),
}
