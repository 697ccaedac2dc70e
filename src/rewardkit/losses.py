"""Pairwise losses for reward models, computed in fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    rewards_chosen: torch.Tensor,
    rewards_rejected: torch.Tensor,
    *,
    margin: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> torch.Tensor:
    """Negative log-likelihood of the Bradley-Terry model, P(chosen > rejected) = sigmoid(r_c - r_r - margin).

    `margin` (b,) asks for a gap of at least that size (Llama 2's margin loss); `weight` (b,) weights pairs
    (a weighted mean); `center_rewards_coefficient` adds c * mean((r_c + r_r)^2), which keeps rewards centred
    on zero (Eisenstein et al., 2023). All inputs have shape (b,); the result is a scalar.
    """
    rewards_chosen, rewards_rejected = rewards_chosen.float(), rewards_rejected.float()
    logits = rewards_chosen - rewards_rejected
    if margin is not None:
        logits = logits - margin.float()
    losses = -F.logsigmoid(logits)  # (b,)
    if weight is None:
        loss = losses.mean()
    else:
        weight = weight.float()
        loss = (losses * weight).sum() / weight.sum()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((rewards_chosen + rewards_rejected) ** 2).mean()
    return loss
