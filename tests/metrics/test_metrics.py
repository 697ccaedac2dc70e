"""Metrics against hand-derived values. Each expected number is worked out in a comment."""

import json
import math

import numpy as np
import pytest

from rewardkit.data.records import BestOfGroup
from rewardkit.errors import DataError
from rewardkit.metrics.preference import (
    bootstrap_mean_ci,
    comparison_metrics,
    expected_calibration_error,
    fit_temperature,
    paired_bootstrap_difference,
    preference_metrics,
    sigmoid,
)
from rewardkit.metrics.rewardbench import (
    rewardbench2_accuracy,
    rewardbench2_summary,
    rewardbench2_ties_score,
    rewardbench_scores,
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_ties_are_counted_and_get_half_credit_only_in_half_ties_accuracy():
    # margins = chosen - rejected = [1, 0, -1, 0]: one right, one wrong, two ties.
    # strict accuracy = 1/4; half-ties accuracy = (1 + 0.5 + 0 + 0.5) / 4 = 0.5.
    metrics = preference_metrics([2, 1, 0, 3], [1, 1, 1, 3], bootstrap=0)
    assert metrics["overall"] == {"accuracy": 0.25, "accuracy_half_ties": 0.5, "ci95": None, "n": 4, "ties": 2}


def test_output_has_the_documented_shape_and_is_json_serialisable():
    metrics = preference_metrics([1.0, 2.0], [0.0, 3.0], chosen_lengths=[3, 4], rejected_lengths=[5, 1], bootstrap=10)
    assert set(metrics) == {"overall", "subsets", "length_baseline", "length_controlled", "calibration", "margin"}
    assert set(metrics["calibration"]) == {"ece", "ece_after_temperature", "temperature", "brier"}
    assert set(metrics["margin"]) == {"mean", "median", "p10", "p90"}
    assert json.loads(json.dumps(metrics)) == metrics


def test_pairs_without_a_subset_count_only_in_overall():
    # margins [1, -1, 1, 1]; subset a = pairs 0,1 (1 of 2 right), b = pair 3; pair 2 has no subset.
    metrics = preference_metrics([1, 0, 1, 1], [0, 1, 0, 0], subsets=["a", "a", None, "b"], bootstrap=0)
    assert metrics["overall"]["accuracy"] == 0.75 and metrics["overall"]["n"] == 4
    assert set(metrics["subsets"]) == {"a", "b"}
    assert metrics["subsets"]["a"]["accuracy"] == 0.5 and metrics["subsets"]["a"]["n"] == 2
    assert metrics["subsets"]["b"]["accuracy"] == 1.0 and metrics["subsets"]["b"]["n"] == 1
    assert "rewardbench" not in metrics


def test_bootstrap_ci_contains_the_estimate_narrows_with_n_and_matches_the_normal_width():
    def ci(n):
        correct = n * 7 // 10  # accuracy 0.7
        margins = np.r_[np.ones(correct), -np.ones(n - correct)]
        overall = preference_metrics(margins, np.zeros(n), bootstrap=2000, seed=3)["overall"]
        low, high = overall["ci95"]
        assert low <= overall["accuracy"] <= high
        return high - low

    small, large = ci(50), ci(5000)
    assert large < small / 5  # width ~ 1/sqrt(n): sqrt(5000/50) = 10
    # normal approximation: 2 * 1.96 * sqrt(0.7 * 0.3 / 5000) = 0.0254
    assert large == pytest.approx(0.0254, rel=0.1)


def test_multinomial_bootstrap_matches_classic_index_resampling():
    # Classic bootstrap: resample the 0/1 vector's indices with replacement, take percentiles.
    values = (np.arange(200) < 130).astype(float)  # accuracy 0.65
    rng = np.random.default_rng(1)
    classic_means = values[rng.integers(0, values.size, size=(4000, values.size))].mean(axis=1)
    classic = np.percentile(classic_means, [2.5, 97.5])
    ours = bootstrap_mean_ci(values, bootstrap=4000, rng=np.random.default_rng(2))
    assert ours == pytest.approx(classic, abs=0.01)


def test_bootstrap_is_seeded():
    first = preference_metrics([1, 0, 1, 1, 0], [0, 1, 0, 0, 0], seed=7)["overall"]["ci95"]
    again = preference_metrics([1, 0, 1, 1, 0], [0, 1, 0, 0, 0], seed=7)["overall"]["ci95"]
    assert first == again


def test_length_baseline_and_length_controlled_accuracy():
    # length difference chosen - rejected = [5, -5, 0, 2]
    # longer-wins credit [1, 0, 0.5, 1] -> 2.5 / 4 = 0.625; chosen strictly longer in 2 of 4 pairs.
    # margins [1, 1, -1, -1]: chosen shorter = pair 1 (right) -> 1.0;
    # chosen longer = pairs 0 (right), 3 (wrong) -> 0.5.
    metrics = preference_metrics(
        [1, 1, 0, 0], [0, 0, 1, 1], chosen_lengths=[10, 5, 7, 3], rejected_lengths=[5, 10, 7, 1], bootstrap=0
    )
    assert metrics["length_baseline"] == {"accuracy": 0.625, "chosen_longer_rate": 0.5}
    assert metrics["length_controlled"] == {
        "chosen_shorter_accuracy": 1.0,
        "chosen_longer_accuracy": 0.5,
        "n_chosen_shorter": 1,
        "n_chosen_longer": 2,
    }


def test_length_sections_are_none_without_lengths():
    metrics = preference_metrics([1, 0], [0, 1], bootstrap=0)
    assert metrics["length_baseline"] is None and metrics["length_controlled"] is None


def test_margin_summary():
    # margins 1..10: mean = median = 5.5; linear-interpolated p10 = 1 + 0.9 = 1.9, p90 = 9.1.
    margin = preference_metrics(np.arange(1, 11), np.zeros(10), bootstrap=0)["margin"]
    assert margin == pytest.approx({"mean": 5.5, "median": 5.5, "p10": 1.9, "p90": 9.1})


def test_ece_is_zero_when_confidence_equals_accuracy_in_every_bin():
    # 5 equal-mass bins of 10 pairs. Bin with confidence c has |margin| = logit(c) for all 10
    # pairs and 10c of them right (positive margin), so accuracy = c = confidence in each bin.
    # c = 0.5 is margin 0: ties, confidence 0.5 and half credit each.
    margins = []
    for right in (5, 6, 7, 8, 9):
        size = logit(right / 10)
        margins += [size] * right + [-size] * (10 - right)
    assert expected_calibration_error(np.array(margins), n_bins=5) == pytest.approx(0.0, abs=1e-12)


def test_ece_and_brier_of_an_overconfident_model():
    # every pair right with confidence 0.9: ECE = |1 - 0.9| = 0.1; Brier = (1 - 0.9)^2 = 0.01.
    calibration = preference_metrics(np.full(20, logit(0.9)), np.zeros(20), bootstrap=0)["calibration"]
    assert calibration["ece"] == pytest.approx(0.1)
    assert calibration["brier"] == pytest.approx(0.01)


def test_temperature_recovers_a_known_scale():
    # Model scores s; the truth prefers the higher-scored side with P = sigmoid(s / 2).
    # In chosen-minus-rejected form the margin is +s when that side was chosen, -s otherwise,
    # so the NLL of sigmoid(margin / T) is minimised near T = 2.
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 4.0, size=20_000)
    higher_side_chosen = rng.random(scores.size) < sigmoid(scores / 2.0)
    margins = np.where(higher_side_chosen, scores, -scores)
    assert fit_temperature(margins) == pytest.approx(2.0, rel=0.05)
    calibration = preference_metrics(margins, np.zeros(margins.size), bootstrap=0)["calibration"]
    assert calibration["ece_after_temperature"] < 0.02 < calibration["ece"]


def test_temperature_is_one_for_all_zero_margins():
    assert fit_temperature(np.zeros(5)) == 1.0


def test_rewardbench_section_weighting_on_a_constructed_example():
    accuracy = {
        "alpacaeval-easy": 1.0, "mt-bench-easy": 0.5,  # Chat
        "math-prm": 0.5, "hep-python": 1.0, "hep-go": 0.5,  # Reasoning
        "shp": 0.6, "summarize": 0.8,  # Prior Sets
    }  # fmt: skip
    n = {"alpacaeval-easy": 100, "mt-bench-easy": 28, "math-prm": 447, "hep-python": 164, "hep-go": 164}
    n |= {"shp": 9, "summarize": 1}
    scores = rewardbench_scores(accuracy, n)
    # Chat = (1.0 * 100 + 0.5 * 28) / 128 = 114 / 128
    # Reasoning: math-prm weighs as the code total 328: (0.5 * 328 + 1.0 * 164 + 0.5 * 164) / 656 = 410 / 656
    # Prior Sets = plain mean (0.6 + 0.8) / 2 = 0.7, whatever the counts
    # Score = (2 * Chat + 2 * Reasoning + 1 * Prior) / 5 = (1.78125 + 1.25 + 0.7) / 5 = 0.74625
    expected_sections = {"Chat": 114 / 128, "Reasoning": 410 / 656, "Prior Sets (0.5 weight)": 0.7}
    assert scores["sections"] == pytest.approx(expected_sections)
    assert scores["score"] == pytest.approx(0.74625)


def test_rewardbench_math_weight_equals_upstream_example_counts_on_the_full_set():
    # Upstream EXAMPLE_COUNTS: math-prm 984 (= 6 x 164), every hep-* 164.
    code = ["hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"]
    accuracy = {"math-prm": 0.9, **{name: i / 10 for i, name in enumerate(code)}}
    n = {"math-prm": 447, **{name: 164 for name in code}}
    upstream = (0.9 * 984 + sum(164 * i / 10 for i in range(6))) / (984 + 6 * 164)
    assert rewardbench_scores(accuracy, n)["sections"]["Reasoning"] == pytest.approx(upstream)


def test_preference_metrics_adds_rewardbench_scores_for_rewardbench_subsets():
    metrics = preference_metrics([1, 0, 1], [0, 1, 0], subsets=["hep-go", "hep-go", "shp"], bootstrap=0)
    # Reasoning = hep-go accuracy 0.5; Prior Sets = shp 1.0; score = (2 * 0.5 + 1 * 1.0) / 3
    assert metrics["rewardbench"]["score"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("chosen", "rejected", "credit"),
    [
        (3.0, [1.0, 2.0, 0.0], 1.0),  # strictly best
        (3.0, [3.0, 1.0, 0.0], 0.5),  # 2-way tie at the top
        (3.0, [3.0, 3.0, 3.0], 0.25),  # 4-way tie
        (3.0, [3.0, 4.0, 0.0], 0.0),  # tied, but not at the top
        (2.0, [3.0, 1.0, 1.0], 0.0),
    ],
)
def test_rewardbench2_best_of_n_credit(chosen, rejected, credit):
    assert rewardbench2_accuracy(chosen, rejected) == credit


def test_rewardbench2_ties_score_follows_upstream_formula():
    ref = {"p1": ([5.0], [1.0, 2.0]), "p2": ([1.0], [2.0])}
    tied = {"p1": ([5.0, 4.0], [1.0]), "p2": ([3.0, 3.0], [1.0])}
    # ref: p1 margin 5-2 = 3 (accurate), p2 margin 1-2 = -1 (not) -> ref accuracy 0.5
    # tied: p1 margin 4-1 = 3, spread 1; p2 margin 3-1 = 2, spread 0 -> tied accuracy 1.0
    # preferred (tied margin > spread): 3 > 1, 2 > 0 -> 1.0
    # hard (min(ref, tied margin) > spread): min(3,3)=3 > 1 yes, min(-1,2)=-1 > 0 no -> 0.5
    # tie-breaker tanh(hard / spread - 1): p1 tanh(2) = 0.96403, p2 -1/0 = -inf -> tanh = -1
    tie_breaker = (math.tanh(2.0) - 1.0) / 2
    expected = 0.3 * 1.0 + 0.3 * 0.5 + 0.2 * 1.0 + 0.2 * 0.5 + 0.01 * tie_breaker  # = 0.74982
    result = rewardbench2_ties_score(ref, tied)
    assert result["score"] == pytest.approx(expected)
    assert result["correctness_preferred_hard"] == 0.5


def test_rewardbench2_ties_need_both_versions_of_a_prompt():
    groups = [BestOfGroup("ref:1", "Ties", "q", ["a"], ["b"]), BestOfGroup("tied:2", "Ties", "q", ["a", "c"], ["b"])]
    with pytest.raises(DataError, match="no Ties prompt has both its 'ref:N' and its 'tied:N' version scored"):
        rewardbench2_summary(groups, lambda group, text: {"a": 2.0, "b": 1.0, "c": 1.5}[text])


def test_comparison_metrics_reads_scored_pairs_as_preference_metrics_does():
    rng = np.random.default_rng(0)
    chosen, rejected = rng.normal(size=30), rng.normal(size=30)
    subsets, lengths = ["a", "b", None] * 10, rng.integers(1, 50, size=(2, 30))
    rows = zip(chosen, rejected, subsets, *lengths, strict=True)
    scored = [{"reward_chosen": c, "reward_rejected": r, "subset": s, "chosen_length": lc, "rejected_length": lr,
               "id": f"p{i}"} for i, (c, r, s, lc, lr) in enumerate(rows)]
    expected = preference_metrics(chosen, rejected, subsets=subsets, chosen_lengths=lengths[0],
                                  rejected_lengths=lengths[1], bootstrap=200, seed=3)
    assert comparison_metrics(scored, bootstrap=200, seed=3) == expected


def test_paired_bootstrap_difference_sign_and_interval():
    # A is right on pairs 0..59, B on pairs 0..79: B - A = 0.2, per-pair differences all >= 0.
    correct_a = (np.arange(100) < 60).astype(float)
    correct_b = (np.arange(100) < 80).astype(float)
    b_minus_a = paired_bootstrap_difference(correct_a, correct_b, bootstrap=2000, seed=0)
    assert b_minus_a["difference"] == pytest.approx(0.2)
    assert 0 < b_minus_a["ci95"][0] < 0.2 < b_minus_a["ci95"][1]
    a_minus_b = paired_bootstrap_difference(correct_b, correct_a, bootstrap=2000, seed=0)
    assert a_minus_b["difference"] == pytest.approx(-0.2) and a_minus_b["ci95"][1] < 0


def test_paired_bootstrap_of_identical_models_is_exactly_zero():
    correct = np.array([1.0, 0.0, 1.0, 0.5])
    assert paired_bootstrap_difference(correct, correct) == {"difference": 0.0, "ci95": [0.0, 0.0]}


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError):
        preference_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        preference_metrics([], [])
    with pytest.raises(ValueError):
        preference_metrics([1.0], [0.0], subsets=["a", "b"])
    with pytest.raises(ValueError):
        preference_metrics([1.0, 2.0], [0.0, 0.0], chosen_lengths=[3, 4], rejected_lengths=[5])
