"""Agreement between annotators and per-annotator statistics (pure Python).

Labels are votes in the item's orientation (1, 2, 0 = tie); "can't tell" and skips are no label and are left out of
agreement. `ratings` maps item id -> {annotator: vote}.

    cohen_kappa(a, b)            two annotators on the items both labelled: (p_o - p_e) / (1 - p_e)
    fleiss_kappa(ratings)        items with 2+ labels; per-item agreement for a varying number of raters
    krippendorff_alpha(ratings)  nominal alpha from the coincidence matrix: 1 - D_o / D_e
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from rewardkit.annotate.store import Answer

Ratings = Mapping[str, Mapping[str, int]]


def cohen_kappa(first: Sequence[int], second: Sequence[int]) -> float:
    """Cohen's kappa of two equally long label sequences; NaN when fewer than 2 items or chance agreement is 1."""
    n = len(first)
    if n < 2:
        return math.nan
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[c] * counts_b[c] for c in counts_a) / n**2
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(ratings: Ratings) -> float:
    """Fleiss' kappa over the items with two or more labels (raters may differ per item); NaN without any."""
    rated = [Counter(votes.values()) for votes in ratings.values() if len(votes) >= 2]
    if not rated:
        return math.nan
    per_item = [(sum(c * c for c in counts.values()) - n) / (n * (n - 1))
                for counts in rated for n in [sum(counts.values())]]
    totals: Counter = sum(rated, Counter())
    all_labels = sum(totals.values())
    expected = sum((count / all_labels) ** 2 for count in totals.values())
    observed = statistics.fmean(per_item)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def krippendorff_alpha(ratings: Ratings) -> float:
    """Krippendorff's alpha for nominal labels, missing labels allowed; NaN with fewer than two pairable labels
    or a single label value."""
    coincidences: Counter = Counter()
    for votes in ratings.values():
        values = list(votes.values())
        m = len(values)
        if m < 2:
            continue
        for a, b in itertools.permutations(range(m), 2):
            coincidences[values[a], values[b]] += 1 / (m - 1)
    marginals: Counter = Counter()
    for (c, _), weight in coincidences.items():
        marginals[c] += weight
    n = sum(marginals.values())
    if n < 2 or len(marginals) < 2:
        return math.nan
    observed = sum(w for (c, k), w in coincidences.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k) / (n - 1)
    return 1 - observed / expected


def ratings_of(answers: Sequence[Answer]) -> dict[str, dict[str, int]]:
    """item id -> {annotator: vote}, labelled answers only."""
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for answer in answers:
        if answer.vote is not None:
            table[answer.item_id][answer.annotator] = answer.vote
    return dict(table)


def annotator_stats(answers: Sequence[Answer], gold: Mapping[str, int]) -> dict:
    """One annotator's counts, time per item, side bias (share of A/B picks that were the left side), tie rate
    (share of answers, skips left out) and accuracy on the gold items they labelled."""
    choices = Counter(a.choice for a in answers)
    decided = choices["a"] + choices["b"]
    answered = len(answers) - choices["skip"]
    gold_answers = [a for a in answers if a.item_id in gold and a.choice != "skip"]
    seconds = [a.seconds for a in answers]
    return {
        "answered": answered, "skipped": choices["skip"], "a": choices["a"], "b": choices["b"],
        "tie": choices["tie"], "cant_tell": choices["cant_tell"],
        "left_rate": choices["a"] / decided if decided else math.nan,
        "tie_rate": choices["tie"] / answered if answered else math.nan,
        "median_seconds": statistics.median(seconds) if seconds else math.nan,
        "mean_seconds": statistics.fmean(seconds) if seconds else math.nan,
        "gold_answered": len(gold_answers),
        "gold_accuracy": (sum(a.vote == gold[a.item_id] for a in gold_answers) / len(gold_answers)
                          if gold_answers else math.nan),
        "comments": sum(bool(a.comment.strip()) for a in answers),
    }


def pairwise_kappas(ratings: Ratings, annotators: Sequence[str]) -> list[dict]:
    """Cohen's kappa for every pair of annotators, on the items both labelled."""
    rows = []
    for first, second in itertools.combinations(annotators, 2):
        shared = [votes for votes in ratings.values() if first in votes and second in votes]
        rows.append({"annotators": [first, second], "items": len(shared),
                     "agreement": (statistics.fmean(v[first] == v[second] for v in shared) if shared else math.nan),
                     "cohen_kappa": cohen_kappa([v[first] for v in shared], [v[second] for v in shared])})
    return rows


def agreement_report(answers: Sequence[Answer], gold: Mapping[str, int], annotators: Sequence[str]) -> dict:
    """Everything `rewardkit annotate stats` shows: per annotator, per pair, and over all annotators."""
    ratings = ratings_of(answers)
    by_annotator = {name: annotator_stats([a for a in answers if a.annotator == name], gold) for name in annotators}
    multi = {item: votes for item, votes in ratings.items() if len(votes) >= 2}
    return {
        "annotators": by_annotator,
        "pairs": pairwise_kappas(ratings, annotators),
        "overall": {"items_labelled": len(ratings), "items_with_2plus": len(multi),
                    "fleiss_kappa": fleiss_kappa(ratings), "krippendorff_alpha": krippendorff_alpha(ratings)},
    }
