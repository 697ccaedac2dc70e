"""Agreement statistics against published worked examples and hand-computed values."""

from __future__ import annotations

import math

import pytest

from rewardkit.annotate.agreement import (
    agreement_report,
    annotator_stats,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
)
from rewardkit.annotate.store import Answer


def test_cohen_kappa_of_the_textbook_table():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    first = [1] * 25 + [2] * 25
    second = [1] * 20 + [2] * 5 + [1] * 10 + [2] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa([1, 2, 0], [1, 2, 0]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))  # chance agreement is 1: undefined, not 1
    assert math.isnan(cohen_kappa([1], [2]))


def test_fleiss_kappa_of_the_fleiss_1971_worked_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = {}
    for item, counts in enumerate(table):
        labels = [category for category, count in enumerate(counts) for _ in range(count)]
        ratings[f"i{item}"] = {f"r{k}": label for k, label in enumerate(labels)}
    assert fleiss_kappa(ratings) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_ignores_items_with_one_label_and_is_one_when_all_agree():
    ratings = {"x": {"a": 1, "b": 1}, "y": {"a": 2, "b": 2}, "z": {"a": 0}}
    assert fleiss_kappa(ratings) == pytest.approx(1.0)
    assert math.isnan(fleiss_kappa({"z": {"a": 0}}))


def test_krippendorff_alpha_nominal_of_krippendorffs_example_with_missing_values():
    coders = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3", ". 3 3 3 2 3 4 2 2 5 1 .",
              "1 2 3 3 2 4 4 1 2 5 1 ."]
    ratings = {}
    for coder, row in enumerate(coders):
        for unit, value in enumerate(row.split()):
            if value != ".":
                ratings.setdefault(f"u{unit}", {})[f"c{coder}"] = int(value)
    assert krippendorff_alpha(ratings) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_by_hand_for_two_annotators():
    # items: (1,1) (2,2) (1,2): coincidences o11 = 2, o22 = 2, o12 = o21 = 1; n = 6, n1 = n2 = 3
    # D_o = 2, D_e = (3 * 3 * 2) / 5 = 3.6 -> alpha = 1 - 2 / 3.6
    ratings = {"x": {"a": 1, "b": 1}, "y": {"a": 2, "b": 2}, "z": {"a": 1, "b": 2}}
    assert krippendorff_alpha(ratings) == pytest.approx(1 - 2 / 3.6)


def answer(annotator, item, choice, swapped=False, seconds=2.0, strength=None):
    return Answer(annotator, item, choice, strength, "", swapped, seconds)


def test_votes_follow_the_side_randomization():
    assert answer("a", "x", "a", swapped=False).vote == 1
    assert answer("a", "x", "a", swapped=True).vote == 2
    assert answer("a", "x", "b", swapped=True).vote == 1
    assert answer("a", "x", "tie").vote == 0
    assert answer("a", "x", "cant_tell").vote is None and answer("a", "x", "skip").vote is None


def test_annotator_stats_side_bias_tie_rate_gold_and_time():
    answers = [answer("ana", "g1", "a", swapped=False, seconds=1.0),   # vote 1: right on gold 1
               answer("ana", "g2", "a", swapped=True, seconds=3.0),    # vote 2: wrong on gold 1
               answer("ana", "x", "b", seconds=5.0), answer("ana", "y", "tie", seconds=7.0),
               answer("ana", "z", "skip", seconds=9.0)]
    row = annotator_stats(answers, {"g1": 1, "g2": 1})
    assert row["left_rate"] == pytest.approx(2 / 3)
    assert row["tie_rate"] == pytest.approx(1 / 4)  # skips are not answers
    assert row["gold_accuracy"] == pytest.approx(0.5) and row["gold_answered"] == 2
    assert row["median_seconds"] == 5.0 and row["skipped"] == 1 and row["answered"] == 4


def test_report_pairs_every_annotator_and_leaves_cant_tell_out():
    answers = [answer("ana", "x", "a"), answer("bo", "x", "a"), answer("ana", "y", "b"), answer("bo", "y", "b"),
               answer("ana", "z", "a"), answer("bo", "z", "cant_tell")]
    report = agreement_report(answers, {}, ["ana", "bo"])
    (pair,) = report["pairs"]
    assert pair["items"] == 2 and pair["cohen_kappa"] == pytest.approx(1.0)
    assert report["overall"]["items_with_2plus"] == 2 and report["overall"]["items_labelled"] == 3
