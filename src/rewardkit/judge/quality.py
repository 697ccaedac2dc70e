"""How good a judge is, on pairs with human labels: what `rewardkit judge --against FILE` reports.

    report = judge_quality(result.outcomes, bootstrap=1000, seed=0)
    report["agreement"]["rate"], report["agreement"]["ci95"], report["cohen_kappa"], report["length_bias"]

On every judged item with a human label (the annotators' majority, "a", "b" or "tie"):
- agreement: on the items the humans decided (not a tie), the share where the judge's combined verdict picks the
  humans' side (a judge tie counts as a miss), with a 95% bootstrap interval;
- cohen_kappa: judge verdict vs human label over the three answers a / b / tie (each pair is shown in a seeded
  random orientation, so "a" is not always the human's choice);
- length_bias: how often the judge picks the longer response (items of unequal length it decides), against how
  often the humans do (items of unequal length they decide);
- position: the first-slot win rate over every verdict and the consistency rate (both orders give one winner);
- annotators (where items carry several annotators' votes, as PandaLM's three): the mean agreement of each pair of
  annotators, their mean Cohen's kappa and Fleiss' kappa, beside the judge's mean agreement with each annotator.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rewardkit.data.audit import fleiss_kappa
from rewardkit.judge.principles import FIRST, TIE
from rewardkit.judge.principles import plain_text as text_of
from rewardkit.judge.run import Outcome
from rewardkit.metrics.preference import bootstrap_mean_ci

VOTE_SIDES = {1: "a", 2: "b", 0: "tie"}


def rate(hits: Sequence[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items; None when undefined (no items, or chance is 1)."""
    if not first:
        return None
    observed = rate([x == y for x, y in zip(first, second, strict=True)])
    counts_first, counts_second = Counter(first), Counter(second)
    expected = sum(counts_first[k] * counts_second[k] for k in counts_first) / len(first) ** 2
    return None if expected == 1 else (observed - expected) / (1 - expected)


def agreement_summary(outcomes: Sequence[Outcome], *, bootstrap: int, seed: int) -> dict:
    decided = [o for o in outcomes if o.item.human in ("a", "b")]
    hits = np.array([o.verdict == o.item.human for o in decided], dtype=float)
    return {"rate": float(hits.mean()) if decided else None, "n": len(decided),
            "ci95": bootstrap_mean_ci(hits, bootstrap=bootstrap, rng=np.random.default_rng(seed)) if decided else None,
            "judge_ties": sum(o.verdict == TIE for o in decided)}


def longer_side(outcome: Outcome) -> str | None:
    a, b = (len(text_of(text)) for text in (outcome.item.a, outcome.item.b))
    return None if a == b else "a" if a > b else "b"


def length_bias(outcomes: Sequence[Outcome]) -> dict:
    unequal = [o for o in outcomes if longer_side(o) is not None]
    judge = [o.verdict == longer_side(o) for o in unequal if o.verdict != TIE]
    human = [o.item.human == longer_side(o) for o in unequal if o.item.human in ("a", "b")]
    return {"judge_picks_longer_rate": rate(judge), "judge_n": len(judge),
            "human_picks_longer_rate": rate(human), "human_n": len(human), "length_unit": "chars"}


def position_summary(outcomes: Sequence[Outcome]) -> dict:
    labels = [verdict.label for o in outcomes for verdict in o.verdicts if verdict.label != TIE]
    return {"first_slot_win_rate": rate([label == FIRST for label in labels]), "verdicts": len(labels),
            "consistency_rate": rate([o.consistent for o in outcomes]), "items": len(outcomes)}


def annotator_summary(outcomes: Sequence[Outcome]) -> dict | None:
    """Inter-annotator agreement on the judged items whose votes all come from the same number (>= 2) of people."""
    voted = [o for o in outcomes if o.item.votes and len(o.item.votes) >= 2]
    raters = {len(o.item.votes) for o in voted}
    if len(raters) != 1:
        return None
    columns = [[VOTE_SIDES[o.item.votes[k]] for o in voted] for k in range(raters.pop())]
    judge = [o.verdict for o in voted]
    pairs = list(itertools.combinations(columns, 2))
    table = [[o.item.votes.count(vote) for vote in (0, 1, 2)] for o in voted]
    try:
        fleiss = fleiss_kappa(table)
    except ValueError:
        fleiss = None
    kappas = [k for k in (cohen_kappa(x, y) for x, y in pairs) if k is not None]
    return {
        "items": len(voted), "annotators": len(columns),
        "pairwise_agreement": float(np.mean([rate([p == q for p, q in zip(x, y, strict=True)]) for x, y in pairs])),
        "pairwise_cohen_kappa": float(np.mean(kappas)) if kappas else None,
        "fleiss_kappa": fleiss,
        "judge_agreement_with_each": float(np.mean([rate([j == v for j, v in zip(judge, column, strict=True)])
                                                    for column in columns])),
        "judge_cohen_kappa_with_each": mean_or_none([cohen_kappa(judge, column) for column in columns]),
    }


def mean_or_none(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def judge_quality(outcomes: Sequence[Outcome], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """The module docstring's report over the `outcomes` that have a human label."""
    labelled = [o for o in outcomes if o.item.human is not None]
    return {
        "items": len(labelled),
        "agreement": agreement_summary(labelled, bootstrap=bootstrap, seed=seed),
        "cohen_kappa": cohen_kappa([o.verdict for o in labelled], [o.item.human for o in labelled]),
        "length_bias": length_bias(labelled),
        "position": position_summary(labelled),
        "annotators": annotator_summary(labelled),
        "human_labels": dict(Counter(o.item.human for o in labelled)),
        "judge_verdicts": dict(Counter(o.verdict for o in labelled)),
    }
