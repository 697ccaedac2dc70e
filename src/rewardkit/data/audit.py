"""What a preference dataset holds: duplicates, identical pairs, empty replies, lengths, truncation under a scoring
spec, the length-only baseline and annotator agreement (Fleiss' kappa).

    audit = audit_preferences(result.pairs, votes=result.votes)"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rewardkit.data.records import PairEncoder, PreferencePair, Text, majority, prompt_key


def _pair_key(pair: PreferencePair) -> tuple[str, str, str]:
    return prompt_key(pair.prompt), prompt_key(pair.chosen), prompt_key(pair.rejected)


def _plain(response: Text) -> str:
    return response if isinstance(response, str) else "\n".join(message["content"] for message in response)


def _percentile(ordered: list[int], q: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else None


def _length_baseline(pairs: Sequence[PreferencePair]) -> dict:
    """How often the chosen reply is longer: the accuracy of "pick the longer one" when ties count as misses."""
    differences = [len(_plain(pair.chosen)) - len(_plain(pair.rejected)) for pair in pairs]
    chosen_longer = sum(difference > 0 for difference in differences)
    equal = sum(difference == 0 for difference in differences)
    return {
        "length_unit": "chars",
        "chosen_longer": chosen_longer,
        "rejected_longer": len(pairs) - chosen_longer - equal,
        "equal_length": equal,
        "chosen_longer_rate": chosen_longer / len(pairs) if pairs else None,
        "equal_length_rate": equal / len(pairs) if pairs else None,
    }


def _token_audit(pairs: Sequence[PreferencePair], encoder: PairEncoder) -> dict:
    lengths = [(encoder.length(p.prompt, p.chosen), encoder.length(p.prompt, p.rejected)) for p in pairs]
    encoded = [(encoder.encode(p.prompt, p.chosen), encoder.encode(p.prompt, p.rejected)) for p in pairs]
    ordered = sorted(length for both in lengths for length in both)
    return {
        "max_length": encoder.max_length,
        "length_percentiles": {"p50": _percentile(ordered, 50), "p90": _percentile(ordered, 90),
                               "p99": _percentile(ordered, 99), "max": ordered[-1] if ordered else None},
        "over_length_pairs": sum(max(both) > encoder.max_length for both in lengths),
        "dropped_pairs": sum(chosen is None or rejected is None for chosen, rejected in encoded),
        "identical_after_truncation": sum(
            chosen is not None and chosen == rejected and pair.chosen != pair.rejected
            for pair, (chosen, rejected) in zip(pairs, encoded, strict=True)
        ),
    }


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa of an items x categories table of vote counts, every item with the same number (>= 2) of
    raters. ValueError when that does not hold, or when every vote falls in one category (kappa undefined)."""
    raters = {sum(row) for row in table}
    if len(raters) != 1 or min(raters) < 2:
        raise ValueError(f"Fleiss' kappa needs items with the same number (at least 2) of raters, "
                         f"not {sorted(raters)}")
    (n,) = raters
    observed = sum(sum(count * (count - 1) for count in row) / (n * (n - 1)) for row in table) / len(table)
    expected = sum((sum(column) / (n * len(table))) ** 2 for column in zip(*table, strict=True))
    if expected == 1:
        raise ValueError("Fleiss' kappa is undefined when every vote falls in one category")
    return (observed - expected) / (1 - expected)


def _agreement_audit(items: Sequence[Sequence[int]]) -> dict:
    """Majority strength, ties, splits, mean agreement and Fleiss' kappa (categories 1, 2, 0) of voted items."""
    outcomes = [majority(votes) for votes in items]
    shares = Counter((top, len(votes)) for votes, (_, top) in zip(items, outcomes, strict=True))
    try:
        kappa = fleiss_kappa([[votes.count(option) for option in (1, 2, 0)] for votes in items])
    except ValueError:
        kappa = None
    return {
        "items_with_votes": len(items),
        "majority_strength": {f"{top}/{n}": count for (top, n), count in
                              sorted(shares.items(), key=lambda item: -item[0][0] / item[0][1])},
        "tie_majority": sum(winner == 0 for winner, _ in outcomes),
        "no_majority": sum(winner is None for winner, _ in outcomes),
        "mean_agreement": sum(top / len(votes) for votes, (_, top) in zip(items, outcomes, strict=True)) / len(items),
        "fleiss_kappa": kappa,
    }


def audit_preferences(
    pairs: Sequence[PreferencePair], encoder: PairEncoder | None = None,
    votes: Sequence[Sequence[int]] | None = None,
) -> dict:
    """Data problems and baselines as a JSON-able dict; token statistics (under "tokens") need an encoder.
    `empty_responses` counts the empty or whitespace-only replies (chosen and rejected each count): valid data, worth
    knowing about.

    Voted items get an "agreement" section: pass `votes` (`LoadResult.votes`, which keeps the items that loading
    dropped, like ties and three-way splits), else the pairs' own votes are used. Its Fleiss' kappa (categories
    first better, second better, tie) is None when undefined or when items have different numbers of votes.
    """
    copies = Counter(_pair_key(pair) for pair in pairs)
    per_prompt = Counter(prompt_key(pair.prompt) for pair in pairs)
    report = {
        "pairs": len(pairs),
        "subsets": dict(Counter(pair.subset or "(none)" for pair in pairs)),
        "duplicate_pairs": sum(count - 1 for count in copies.values()),
        "repeated_prompts": sum(count > 1 for count in per_prompt.values()),
        "pairs_with_repeated_prompts": sum(count for count in per_prompt.values() if count > 1),
        "identical_pairs": sum(pair.chosen == pair.rejected for pair in pairs),
        "empty_responses": sum(not _plain(reply).strip() for pair in pairs for reply in (pair.chosen, pair.rejected)),
        **_length_baseline(pairs),
    }
    if encoder is not None:
        report["tokens"] = _token_audit(pairs, encoder)
    items = [pair.votes for pair in pairs if pair.votes] if votes is None else votes
    if items:
        report["agreement"] = _agreement_audit(items)
    return report
