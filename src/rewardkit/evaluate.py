"""Evaluating a reward model on preference pairs: score both sides through the spec, then compute metrics.

    metrics = evaluate_pairs(RewardModel.from_pretrained("runs/demo/model"), pairs)
    metrics["overall"]["accuracy"], metrics["subsets"]["hh-rlhf"]["accuracy"]

Training's periodic evaluation calls the same functions, so its numbers match `rewardkit eval`.
"""

from __future__ import annotations

from typing import Sequence

from rewardkit.data import PreferencePair
from rewardkit.metrics import preference_metrics
from rewardkit.model import RewardModel
from rewardkit.pairs import EncodedComparison, encode_comparisons, score_comparisons


def evaluate_pairs(rm: RewardModel, pairs: Sequence[PreferencePair], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Metrics for `pairs`; pairs whose response alone exceeds the spec's max length are counted, not scored."""
    comparisons, dropped = encode_comparisons(rm, pairs)
    metrics, _ = evaluate_comparisons(rm, comparisons, bootstrap=bootstrap, seed=seed)
    metrics["dropped_too_long"] = dropped
    return metrics


def evaluate_comparisons(rm: RewardModel, comparisons: Sequence[EncodedComparison], *, bootstrap: int = 1000,
                         seed: int = 0) -> tuple[dict, list[float]]:
    """Metrics for already-encoded pairs, and every reward computed (chosen then rejected).

    Lengths for the length baseline are response tokens."""
    chosen, rejected = score_comparisons(rm, comparisons)
    metrics = preference_metrics(
        chosen,
        rejected,
        subsets=[c.pair.subset for c in comparisons],
        chosen_lengths=[response_tokens(c.chosen) for c in comparisons],
        rejected_lengths=[response_tokens(c.rejected) for c in comparisons],
        bootstrap=bootstrap,
        seed=seed,
    )
    return metrics, chosen + rejected


def response_tokens(encoded) -> int:
    return len(encoded.input_ids) - encoded.prompt_length
