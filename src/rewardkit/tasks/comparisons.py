"""Preference pairs turned into token ids once, then batched and scored.

Training and its periodic evaluation share these helpers, so a pair is encoded, batched and scored the same way
as in `rewardkit eval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardkit.data.records import PreferencePair
from rewardkit.metrics.preference import comparison_metrics
from rewardkit.models.packing import collate_packed, pack_sequences
from rewardkit.models.reward_model import RewardModel, to_device
from rewardkit.models.spec import EncodedPair

ENCODE_CHUNK = 256


@dataclass(frozen=True)
class EncodedComparison:
    pair: PreferencePair
    chosen: EncodedPair
    rejected: EncodedPair

    @property
    def tokens(self) -> int:
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)

    @property
    def width(self) -> int:
        """The padded width this pair needs: both sides go into one batch."""
        return max(len(self.chosen.input_ids), len(self.rejected.input_ids))


def encode_comparisons(rm: RewardModel, pairs: Sequence[PreferencePair]) -> tuple[list[EncodedComparison], int]:
    """Encode both sides of every pair through the spec; returns the kept comparisons and how many were dropped
    because a response alone does not fit `max_length`."""
    kept, dropped = [], 0
    for start in range(0, len(pairs), ENCODE_CHUNK):
        chunk = pairs[start : start + ENCODE_CHUNK]
        prompts = [p.prompt for p in chunk] * 2
        responses = [p.chosen for p in chunk] + [p.rejected for p in chunk]
        encoded = rm.spec.encode_batch(rm.tokenizer, prompts, responses)
        for pair, chosen, rejected in zip(chunk, encoded[: len(chunk)], encoded[len(chunk) :], strict=True):
            if chosen is None or rejected is None:
                dropped += 1
            else:
                kept.append(EncodedComparison(pair, chosen, rejected))
    return kept, dropped


def group_rewards(model: torch.nn.Module, rm: RewardModel, groups: Sequence[Sequence[EncodedPair]], device, *,
                  share_prefix: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (n, k_max) of each group's responses (to one prompt), in order, and the (n, k_max) mask of real
    entries, from one forward of `model` (the reward model, possibly wrapped for distributed training). With
    `share_prefix` (decoders) a group is one row whose common prefix is computed once (`rewardkit.models.packing`);
    otherwise every response is a row of its own."""
    k_max = max(len(group) for group in groups)
    mask = torch.tensor([[i < len(group) for i in range(k_max)] for group in groups], device=device)
    if share_prefix:
        batch = collate_packed([pack_sequences([e.input_ids for e in group]) for group in groups], rm.pad_token_id)
        return model(**to_device(batch, device)), mask  # (n, k_max)
    batch = rm.collate([e for group in groups for e in group])
    flat = model(**to_device(batch, device))  # (responses,)
    return torch.zeros(mask.shape, device=device, dtype=flat.dtype).masked_scatter(mask, flat), mask


def comparison_rewards(model: torch.nn.Module, rm: RewardModel, comparisons: Sequence[EncodedComparison], device, *,
                       share_prefix: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards_chosen, rewards_rejected), each (b,), from one forward (`group_rewards` of the pairs)."""
    rewards, _ = group_rewards(model, rm, [(c.chosen, c.rejected) for c in comparisons], device,
                               share_prefix=share_prefix)
    return rewards[:, 0], rewards[:, 1]


def score_comparisons(rm: RewardModel, comparisons: Sequence[EncodedComparison], batch_size: int = 32):
    """Rewards (chosen, rejected) as float lists."""
    encoded = [c.chosen for c in comparisons] + [c.rejected for c in comparisons]
    rewards = rm.score_encoded(encoded, batch_size=batch_size)
    return rewards[: len(comparisons)], rewards[len(comparisons) :]


def evaluate_comparisons(rm: RewardModel, comparisons: Sequence[EncodedComparison], *, bootstrap: int = 1000,
                         seed: int = 0) -> tuple[dict, list[float]]:
    """Metrics for already-encoded pairs (training's held-out set), and every reward computed (chosen then rejected).

    Lengths for the length baseline are response tokens, as in `rewardkit eval`."""
    chosen, rejected = score_comparisons(rm, comparisons)
    scored = [scored_comparison(reward_chosen, reward_rejected, c.pair.subset, c.chosen, c.rejected)
              for c, reward_chosen, reward_rejected in zip(comparisons, chosen, rejected, strict=True)]
    return comparison_metrics(scored, bootstrap=bootstrap, seed=seed), chosen + rejected


def scored_comparison(reward_chosen: float, reward_rejected: float, subset: str | None, chosen: EncodedPair,
                      rejected: EncodedPair) -> dict:
    """A scored pair as `comparison_metrics` reads it, with response lengths in tokens as in `rewardkit eval`."""
    return {"reward_chosen": reward_chosen, "reward_rejected": reward_rejected, "subset": subset,
            "chosen_length": chosen.response_length, "rejected_length": rejected.response_length}
