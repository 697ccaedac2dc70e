"""The judge's quality against human labels: agreement with its interval, kappa, length and position bias."""

from __future__ import annotations

import pytest

from rewardkit.judge.items import JudgeItem
from rewardkit.judge.judges import Verdict
from rewardkit.judge.quality import cohen_kappa, judge_quality
from rewardkit.judge.run import Outcome


def verdict(first: float) -> Verdict:
    return Verdict({"A": first, "B": 1 - first}, "logprobs", 1.0)


def outcome(human: str, picks: str, *, votes=None, consistent: bool = True, a: str = "aa", b: str = "b") -> Outcome:
    """An item the judge decides for `picks` ("a" or "b") in both orders; not `consistent`: it always answers A."""
    p = 0.9 if picks == "a" else 0.1
    verdicts = (verdict(p), verdict(1 - p)) if consistent else (verdict(0.9), verdict(0.9))
    return Outcome(JudgeItem("i", "q", a, b, human=human, votes=votes), "helpfulness", verdicts)


def test_cohen_kappa_by_hand():
    # observed 3/4; chance: judge a 2/4, b 2/4; human a 3/4, b 1/4 -> 0.5 * 0.75 + 0.5 * 0.25 = 0.5 -> (0.75-0.5)/0.5
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "a", "a", "b"]) == pytest.approx(0.5)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None and cohen_kappa([], []) is None


def test_agreement_kappa_length_and_position_bias():
    outcomes = [outcome("a", "a"), outcome("a", "a"), outcome("b", "a"), outcome("b", "b"), outcome("tie", "b")]
    report = judge_quality(outcomes, bootstrap=200)
    assert report["agreement"]["rate"] == pytest.approx(3 / 4) and report["agreement"]["n"] == 4
    low, high = report["agreement"]["ci95"]
    assert low <= 0.75 <= high
    # a is the longer response everywhere: the judge picks it 3 of 5, the humans 2 of 4 decided
    assert report["length_bias"]["judge_picks_longer_rate"] == pytest.approx(3 / 5)
    assert report["length_bias"]["human_picks_longer_rate"] == pytest.approx(2 / 4)
    assert report["position"]["first_slot_win_rate"] == 0.5 and report["position"]["consistency_rate"] == 1.0
    assert report["cohen_kappa"] == pytest.approx(cohen_kappa(["a", "a", "a", "b", "b"], ["a", "a", "b", "b", "tie"]))


def test_an_always_first_judge_is_inconsistent_and_position_biased():
    report = judge_quality([outcome("a", "a", consistent=False), outcome("b", "b", consistent=False)], bootstrap=0)
    assert report["position"] == {"first_slot_win_rate": 1.0, "verdicts": 4, "consistency_rate": 0.0, "items": 2}


def test_annotators_agreement_beside_the_judges():
    outcomes = [outcome("a", "a", votes=(1, 1, 1)), outcome("a", "a", votes=(1, 1, 2)),
                outcome("b", "a", votes=(2, 2, 0)), outcome("b", "b", votes=(2, 2, 2))]
    annotators = judge_quality(outcomes, bootstrap=0)["annotators"]
    # annotator pairs (1,2) agree 4/4, (1,3) 2/4, (2,3) 2/4
    assert annotators["pairwise_agreement"] == pytest.approx(8 / 12) and annotators["annotators"] == 3
    # the judge says a, a, a, b: agrees with annotators 1 and 2 on 3/4, with annotator 3 on 2/4
    assert annotators["judge_agreement_with_each"] == pytest.approx((3 + 3 + 2) / 12)
    assert annotators["fleiss_kappa"] is not None
