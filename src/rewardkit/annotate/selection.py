"""Active selection: serve first the items a reward model is least sure about.

A reward model's certainty on an item is |r(response 1) - r(response 2)|; an ensemble's uncertainty is the spread
(population std) of its members' margins in z-score units, and its certainty the negative of that. Items are served
in increasing certainty; an item the model cannot score (a response too long) goes last.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from rewardkit.annotate.formats import Item
from rewardkit.annotate.store import AnnotationStore
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel


def certainties(scorer: RewardModel | RewardEnsemble, items: Sequence[Item], *, batch_size: int = SCORING_BATCH_SIZE
                ) -> list[float]:
    """How sure `scorer` is of each item's answer (higher: surer); NaN where it cannot score a response."""
    prompts = [item.prompt for item in items] * 2
    responses = [item.responses[0] for item in items] + [item.responses[1] for item in items]
    n = len(items)
    if isinstance(scorer, RewardEnsemble):
        members = scorer.score(prompts, responses, batch_size=batch_size).members
        margins = [[m[i] - m[n + i] for m in members] for i in range(n)]
        return [-statistics.pstdev(row) if all(map(math.isfinite, row)) else math.nan for row in margins]
    rewards = scorer.score(prompts, responses, batch_size=batch_size)
    return [abs(rewards[i] - rewards[n + i]) for i in range(n)]


def least_certain_first(items: Sequence[Item], scores: Sequence[float]) -> list[str]:
    """Item ids by increasing certainty, unscorable (NaN) ones last, ties in their given order."""
    order = sorted(range(len(items)), key=lambda i: (math.isnan(scores[i]), scores[i] if math.isfinite(scores[i])
                                                     else 0.0, i))
    return [items[i].id for i in order]


def order_by_model(store: AnnotationStore, scorer: RewardModel | RewardEnsemble, *,
                   batch_size: int = SCORING_BATCH_SIZE) -> int:
    """Serve the non-gold items least certain to `scorer` first; returns how many were ordered."""
    items = [item for item in store.items() if item.gold is None]
    if items:
        store.set_order(least_certain_first(items, certainties(scorer, items, batch_size=batch_size)))
    return len(items)
