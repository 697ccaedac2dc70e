"""Metrics of the other task families against hand-derived values (worked out in comments)."""

import json
import math

import pytest

from rewardkit.metrics.labels import (
    best_of_n_metrics,
    first_error_index,
    pairwise_accuracy_within_groups,
    processbench_metrics,
    regression_metrics,
    uncertainty_accuracy,
)

# --- process rewards -------------------------------------------------------------------------


def test_first_error_index_is_the_first_step_strictly_below_the_threshold():
    assert first_error_index([0.9, 0.6, 0.4, 0.2], 0.5) == 2
    assert first_error_index([0.9, 0.5], 0.5) == -1  # 0.5 is not below 0.5
    assert first_error_index([], 0.5) == -1


def test_processbench_needs_the_exact_step_and_takes_the_harmonic_mean():
    # erroneous solutions (true 2, 3, 1): 2 right; 4 for 3 is too late; -1 for 1 misses it -> 1/3.
    # correct solutions (true -1, -1): both predicted -1 -> 1. F1 = 2 * (1/3) * 1 / (1/3 + 1) = 0.5.
    metrics = processbench_metrics([2, 4, -1, -1, -1], [2, 3, 1, -1, -1])
    assert metrics == pytest.approx(
        {"error_accuracy": 1 / 3, "correct_accuracy": 1.0, "f1": 0.5, "n_error": 3, "n_correct": 2}
    )
    assert json.loads(json.dumps(metrics)) == metrics


def test_processbench_edge_cases():
    # no correct solutions: that accuracy, and so F1, is undefined; both accuracies 0 -> F1 0.
    assert processbench_metrics([0], [1]) == {
        "error_accuracy": 0.0, "correct_accuracy": None, "f1": None, "n_error": 1, "n_correct": 0,
    }  # fmt: skip
    assert processbench_metrics([0, 2], [1, -1])["f1"] == 0.0
    with pytest.raises(ValueError):
        processbench_metrics([0, 1], [0])


# --- best-of-n ---------------------------------------------------------------------------

BEST_OF_N_GROUPS = [
    # top score right; majority "5" wrong. best 1, random 1/3, majority 0, oracle 1
    [(0.9, True, "4"), (0.1, False, "5"), (0.2, False, "5")],
    # 2-way tie at the top (one right) -> 1/2; answers "a" and "b" tie 1-1 -> right among a, b = 1/2;
    # random 1/3, oracle 1
    [(0.7, True, "a"), (0.7, False, "b"), (0.1, False, None)],
    # no answers: majority credit 0; everything 0
    [(0.3, False, None), (0.2, False, None)],
    # top score is the None-answer candidate (wrong) -> 0; None has 3 "votes" but never wins, "y" (2) does -> 1;
    # random 2/6, oracle 1
    [(0.5, False, "x"), (0.4, True, "y"), (0.3, True, "y"),
     (0.6, False, None), (0.1, False, None), (0.2, False, None)],
]


def test_best_of_n_credit_ties_and_none_answers():
    metrics = best_of_n_metrics(BEST_OF_N_GROUPS, bootstrap=0)
    # best (1 + 1/2 + 0 + 0) / 4 = 0.375; random (1/3 + 1/3 + 0 + 1/3) / 4 = 0.25;
    # majority (0 + 1/2 + 0 + 1) / 4 = 0.375; oracle 3/4; per-group best - majority = 1, 0, 0, -1 -> 0
    assert metrics == {
        "n": 4,
        "best_of_n": {"accuracy": 0.375, "ci95": None},
        "random_pick": pytest.approx(0.25),
        "majority_vote": 0.375,
        "oracle": 0.75,
        "best_of_n_minus_majority_vote": {"difference": 0.0, "ci95": None},
    }


def test_best_of_n_majority_vote_is_none_without_any_answers():
    metrics = best_of_n_metrics([[(1.0, True, None), (0.0, False, None)]], bootstrap=10)
    assert metrics["majority_vote"] is None and metrics["best_of_n_minus_majority_vote"] is None
    assert metrics["best_of_n"]["accuracy"] == 1.0


def test_best_of_n_bootstrap_intervals_are_seeded_json_and_paired():
    # 30 groups where the reward picks the right one and the vote is wrong, 10 where both are right:
    # best 1.0 (CI exactly [1, 1]); best - majority = 30/40 = 0.75, its CI above 0.
    reward_wins = [(1.0, True, "a"), (0.0, False, "b"), (0.5, False, "b")]
    both_right = [(1.0, True, "a"), (0.0, True, "a"), (0.5, False, "b")]
    groups = [reward_wins] * 30 + [both_right] * 10
    metrics = best_of_n_metrics(groups, bootstrap=2000, seed=4)
    assert metrics["best_of_n"] == {"accuracy": 1.0, "ci95": [1.0, 1.0]}
    difference = metrics["best_of_n_minus_majority_vote"]
    assert difference["difference"] == 0.75 and 0 < difference["ci95"][0] < 0.75 < difference["ci95"][1]
    assert best_of_n_metrics(groups, bootstrap=2000, seed=4) == metrics
    assert json.loads(json.dumps(metrics)) == metrics


def test_best_of_n_rejects_empty_input():
    with pytest.raises(ValueError):
        best_of_n_metrics([])
    with pytest.raises(ValueError):
        best_of_n_metrics([[(1.0, True, "a")], []])


# --- rating heads ------------------------------------------------------------------------


def test_regression_metrics_known_values():
    # errors [0, -1, 1, 1]: mse = 3/4, mae = 3/4.
    # pearson: dp = [-1.75, -0.75, 0.25, 2.25], dt = [-1.5, 0.5, -0.5, 1.5];
    #   sum dp dt = 5.5, sum dp^2 = 8.75, sum dt^2 = 5 -> 5.5 / sqrt(43.75) = 0.831522
    # spearman: ranks [1, 2, 3, 4] vs [1, 3, 2, 4]: 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8
    metrics = regression_metrics([1.0, 2.0, 3.0, 5.0], [1.0, 3.0, 2.0, 4.0])
    assert metrics == pytest.approx({"n": 4, "mse": 0.75, "mae": 0.75, "pearson": 0.831522, "spearman": 0.8})
    assert json.loads(json.dumps(metrics)) == metrics


def test_spearman_gives_tied_values_their_mean_rank():
    # predictions [1, 1, 2] rank as [1.5, 1.5, 3]; targets [1, 2, 3] as [1, 2, 3].
    # deviations [-0.5, -0.5, 1] and [-1, 0, 1]: 1.5 / sqrt(1.5 * 2) = sqrt(3) / 2
    assert regression_metrics([1.0, 1.0, 2.0], [1.0, 2.0, 3.0])["spearman"] == pytest.approx(math.sqrt(3) / 2)


def test_correlations_of_a_constant_side_are_none():
    metrics = regression_metrics([0.1, 0.1, 0.1], [1.0, 2.0, 4.0])
    assert metrics["pearson"] is None and metrics["spearman"] is None
    assert metrics["mse"] == pytest.approx((0.81 + 3.61 + 15.21) / 3)
    assert regression_metrics([1.0], [2.0])["pearson"] is None  # one item is constant too


def test_pairwise_accuracy_only_compares_items_of_one_group_with_different_targets():
    # group p: targets 3 > 2 > 1, predictions 0.9, 0.1, 0.5: (0,1) right, (0,2) right, (1,2) wrong.
    # group q: targets 5, 4, 4: (3,4) prediction tie, (3,5) right, (4,5) equal targets -> skipped.
    # 5 pairs: strict 3/5, half ties 3.5/5.  Cross-group pairs such as (1, 3) never count.
    metrics = pairwise_accuracy_within_groups(
        [0.9, 0.1, 0.5, 0.3, 0.3, 0.0], [3, 2, 1, 5, 4, 4], ["p", "p", "p", "q", "q", "q"]
    )
    assert metrics == pytest.approx({"accuracy": 0.6, "accuracy_half_ties": 0.7, "n_pairs": 5, "ties": 1})


def test_pairwise_accuracy_without_comparable_pairs_is_none():
    metrics = pairwise_accuracy_within_groups([1.0, 2.0, 3.0], [1.0, 1.0, 2.0], [0, 0, 1])
    assert metrics == {"accuracy": None, "accuracy_half_ties": None, "n_pairs": 0, "ties": 0}
    with pytest.raises(ValueError):
        pairwise_accuracy_within_groups([1.0, 2.0], [1.0, 2.0], [0])


# --- uncertainty -------------------------------------------------------------------------


def test_uncertainty_bins_go_from_most_to_least_certain():
    # sorted by uncertainty 0.1 .. 0.8, correctness is 1, 1 | 1, 0 | 1, 0 | 0, 0 in four bins of two
    uncertainty = [0.8, 0.1, 0.5, 0.3, 0.2, 0.7, 0.4, 0.6]
    correct = [False, True, True, True, True, False, False, False]
    metrics = uncertainty_accuracy(correct, uncertainty)
    assert [b["accuracy"] for b in metrics["bins"]] == [1.0, 0.5, 0.5, 0.0]
    assert [b["n"] for b in metrics["bins"]] == [2, 2, 2, 2]
    assert [b["edges"] for b in metrics["bins"]] == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]
    assert metrics["most_certain"] == 1.0 and metrics["least_certain"] == 0.0
    assert metrics["n"] == 8 and metrics["accuracy"] == 0.5
    assert json.loads(json.dumps(metrics)) == metrics


def test_tied_uncertainties_share_a_bin():
    # four items at 0 (mean rank 2.5 -> bin floor(2 * 2 / 6) = 0), 1 and 2 (ranks 5, 6 -> bin 1)
    metrics = uncertainty_accuracy([1, 1, 1, 0, 0, 1], [0.0, 0.0, 0.0, 0.0, 1.0, 2.0], bins=2)
    assert metrics["bins"] == [
        {"accuracy": 0.75, "n": 4, "edges": [0.0, 0.0]},
        {"accuracy": 0.5, "n": 2, "edges": [1.0, 2.0]},
    ]
    # all tied: one bin, empty ones dropped
    constant = uncertainty_accuracy([1, 0, 0], [0.2, 0.2, 0.2])
    assert len(constant["bins"]) == 1 and constant["most_certain"] == constant["least_certain"] == pytest.approx(1 / 3)


def test_uncertainty_bins_of_uneven_size_and_bad_input():
    # 5 items, 2 bins: (rank - 1/2) * 2 / 5 = 0.2, 0.6 | 1.0, 1.4, 1.8 -> sizes 2, 3
    metrics = uncertainty_accuracy([1, 1, 0, 1, 0], [1, 2, 3, 4, 5], bins=2)
    assert [b["n"] for b in metrics["bins"]] == [2, 3]
    assert metrics["least_certain"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        uncertainty_accuracy([1, 0], [0.1, 0.2], bins=0)
    with pytest.raises(ValueError):
        uncertainty_accuracy([1, 0], [0.1])
