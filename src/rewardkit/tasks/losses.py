"""Losses for reward models, computed in fp32.

Pairwise: Bradley-Terry, and the tie models of Rao-Kupper and Davidson. Listwise: Plackett-Luce.
Pointwise, with missing labels masked out: MSE for rating heads, BCE for verifiers and process rewards.
ODIN's length and orthogonality losses train a disentangled length head beside the pairwise ones.
Every loss takes an optional per-example `weight` (b,) and returns the weighted mean of its
per-example losses, a scalar.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

# At equal rewards (d = 0) both tie models give win, tie and loss 1/3 each with these strengths:
# Rao-Kupper P(tie | d = 0) = (theta - 1) / (theta + 1) = 1/3 at theta = 2; Davidson nu / (2 + nu) = 1/3 at nu = 1.
DEFAULT_RAO_KUPPER_THETA = 2.0


DEFAULT_DAVIDSON_NU = 1.0


TieModel = Literal["rao_kupper", "davidson"]


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
    loss = _weighted_mean(-F.logsigmoid(logits), weight)
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * ((rewards_chosen + rewards_rejected) ** 2).mean()
    return loss


def _weighted_mean(
    losses: torch.Tensor, weight: torch.Tensor | None, counted: torch.Tensor | None = None
) -> torch.Tensor:
    """sum_i w_i l_i / sum_i w_i over the examples where `counted` (b,) is true (all by default).

    With nothing counted this is 0 / 0; it returns a zero that keeps the graph, so `backward()` still
    works (every gradient zero). Uncounted losses must be finite.
    """
    weights = torch.ones_like(losses) if weight is None else weight.float()
    if counted is not None:
        weights = weights * counted
    return (losses * weights).sum() / weights.sum().clamp_min(torch.finfo(torch.float32).tiny)


def rao_kupper_log_probabilities(
    d: torch.Tensor, theta: float = DEFAULT_RAO_KUPPER_THETA
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log P(win), log P(tie), log P(loss) of a over b under Rao & Kupper (1967), d = r_a - r_b.

    With pi = e^r: P(a > b) = pi_a / (pi_a + theta pi_b) = sigmoid(d - ln theta), P(b > a) = sigmoid(-d - ln theta),
    P(tie) = (theta^2 - 1) sigmoid(d - ln theta) sigmoid(-d - ln theta); the three sum to 1 for any theta > 1,
    and P(tie | d = 0) = (theta - 1) / (theta + 1). Each output has the shape of d.
    """
    if not theta > 1.0:
        raise ValueError(f"Rao-Kupper needs theta > 1, got {theta}")
    log_theta = math.log(theta)
    log_win = F.logsigmoid(d - log_theta)
    log_loss = F.logsigmoid(-d - log_theta)
    log_tie = math.log(theta**2 - 1.0) + log_win + log_loss
    return log_win, log_tie, log_loss


def davidson_log_probabilities(
    d: torch.Tensor, nu: float = DEFAULT_DAVIDSON_NU
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log P(win), log P(tie), log P(loss) of a over b under Davidson (1970), d = r_a - r_b.

    With pi = e^r: P(a > b) = pi_a / (pi_a + pi_b + nu sqrt(pi_a pi_b)) = 1 / (1 + e^-d + nu e^(-d/2)).
    Dividing through by sqrt(pi_a pi_b) puts all three over one normaliser Z = e^(d/2) + e^(-d/2) + nu:
    P(win) = e^(d/2) / Z, P(tie) = nu / Z, P(loss) = e^(-d/2) / Z, with log Z a logsumexp (stable for any d).
    Each output has the shape of d.
    """
    if not nu > 0.0:
        raise ValueError(f"Davidson needs nu > 0, got {nu}")
    half_d = d / 2
    log_nu = torch.full_like(d, math.log(nu))
    log_normaliser = torch.logsumexp(torch.stack([half_d, -half_d, log_nu]), dim=0)  # (*d.shape)
    return half_d - log_normaliser, log_nu - log_normaliser, -half_d - log_normaliser


def tie_probabilities(
    d: torch.Tensor, model: TieModel, strength: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(P(win), P(tie), P(loss)) of a over b, d = r_a - r_b, for evaluation; each the shape of d.

    `strength` is Rao-Kupper's theta or Davidson's nu (the model's default when None).
    """
    d = d.float()
    if model == "rao_kupper":
        log_probabilities = rao_kupper_log_probabilities(d, DEFAULT_RAO_KUPPER_THETA if strength is None else strength)
    elif model == "davidson":
        log_probabilities = davidson_log_probabilities(d, DEFAULT_DAVIDSON_NU if strength is None else strength)
    else:
        raise ValueError(f"unknown tie model {model!r}; use 'rao_kupper' or 'davidson'")
    log_win, log_tie, log_loss = log_probabilities
    return log_win.exp(), log_tie.exp(), log_loss.exp()


def rao_kupper_loss(
    rewards_a: torch.Tensor,
    rewards_b: torch.Tensor,
    tie: torch.Tensor,
    *,
    theta: float = DEFAULT_RAO_KUPPER_THETA,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """NLL of pairs with ties under Rao & Kupper (1967); see `rao_kupper_log_probabilities`.

    Rows where `tie` (b,) bool is false have a preferred (loss -log sigmoid(d - ln theta), d = r_a - r_b);
    tied rows have loss -log P(tie). theta > 1 sets how wide the tie region is: the default 2 makes win,
    tie and loss equally likely at equal rewards. Rewards have shape (b,); the result is a scalar.
    """
    log_win, log_tie, _ = rao_kupper_log_probabilities(rewards_a.float() - rewards_b.float(), theta)
    return _weighted_mean(-torch.where(tie, log_tie, log_win), weight)


def davidson_loss(
    rewards_a: torch.Tensor,
    rewards_b: torch.Tensor,
    tie: torch.Tensor,
    *,
    nu: float = DEFAULT_DAVIDSON_NU,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """NLL of pairs with ties under Davidson (1970); see `davidson_log_probabilities`.

    Rows where `tie` (b,) bool is false have a preferred (loss -log P(win) = log(1 + e^-d + nu e^(-d/2)),
    d = r_a - r_b); tied rows have loss -log P(tie) = log((e^(d/2) + e^(-d/2) + nu) / nu). nu > 0; the
    default 1 makes win, tie and loss equally likely at equal rewards. Rewards have shape (b,); the result is a scalar.
    """
    log_win, log_tie, _ = davidson_log_probabilities(rewards_a.float() - rewards_b.float(), nu)
    return _weighted_mean(-torch.where(tie, log_tie, log_win), weight)


def plackett_luce_loss(
    rewards: torch.Tensor, mask: torch.Tensor, *, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """NLL of full rankings under Plackett-Luce (Luce, 1959; Plackett, 1975), the listwise Bradley-Terry.

    `rewards` (n, k) lists each ranking best first; `mask` (n, k) bool marks real entries, so a list
    of length K uses the first K columns. With r_0 .. r_{K-1} the real rewards in order, the ranking is
    drawn by picking the best among what is left, each time with a softmax:

        NLL = sum_{i=0}^{K-2} [logsumexp(r_i, ..., r_{K-1}) - r_i]

    (the i = K-1 term is always 0). K = 2 is exactly Bradley-Terry, -log sigmoid(r_0 - r_1). Lists with
    fewer than two entries rank nothing and are not counted in the mean. The result is a scalar.
    """
    rewards = rewards.float().masked_fill(~mask, float("-inf"))
    suffix_logsumexp = rewards.flip(-1).logcumsumexp(dim=-1).flip(-1)  # (n, k): logsumexp(r_i..r_{K-1})
    per_list = torch.where(mask, suffix_logsumexp - rewards, 0.0).sum(dim=-1)  # (n,)
    return _weighted_mean(per_list, weight, counted=mask.sum(dim=-1) >= 2)


def ranking_pairs_loss(
    rewards: torch.Tensor, mask: torch.Tensor, *, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Bradley-Terry over every ordered pair of each ranking, averaged within the ranking.

    InstructGPT (Ouyang et al., 2022) trains on all K(K-1)/2 comparisons of a prompt as one batch element,
    so each prompt counts once however many responses it has:

        loss = mean_{i<j} -log sigmoid(r_i - r_j)       (r best first; `mask` as in `plackett_luce_loss`)

    Weight a ranking by its number of pairs to make every pair count alike instead. K = 2 is Bradley-Terry.
    """
    rewards = rewards.float()
    differences = rewards.unsqueeze(-1) - rewards.unsqueeze(-2)  # (n, k, k): r_i - r_j
    k = rewards.shape[-1]
    ordered = torch.ones(k, k, dtype=torch.bool, device=rewards.device).triu(1)
    pairs = ordered & mask.unsqueeze(-1) & mask.unsqueeze(-2)  # (n, k, k): i ranked above j, both real
    per_list = torch.where(pairs, -F.logsigmoid(differences), 0.0).sum((-2, -1)) / pairs.sum((-2, -1)).clamp_min(1)
    return _weighted_mean(per_list, weight, counted=pairs.any(-1).any(-1))


def masked_mse_loss(
    predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, *, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared error of regression heads (b, A) (e.g. one rating per attribute), labels missing where `mask` is false.

    Per example: mean of (prediction - target)^2 over its labelled attributes; then the weighted mean over
    examples with at least one label. Masked targets never matter (they may be NaN). A batch with no labels
    gives a zero loss that still has a grad_fn. All inputs have shape (b, A); the result is a scalar.
    """
    predictions, targets = predictions.float(), targets.float().masked_fill(~mask, 0.0)
    return _masked_mean(torch.square(predictions - targets), mask, weight)


def masked_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, *, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy, -[t log sigmoid(x) + (1 - t) log sigmoid(-x)], with labels missing where `mask` is false.

    For outcome verifiers and step-level process rewards: `logits` (b, k), e.g. one per step, with targets
    in [0, 1] (hard or soft labels). Masking and averaging as in `masked_mse_loss`: mean over an example's
    labelled entries, weighted mean over examples that have any. The result is a scalar.
    """
    logits, targets = logits.float(), targets.float().masked_fill(~mask, 0.0)
    return _masked_mean(F.binary_cross_entropy_with_logits(logits, targets, reduction="none"), mask, weight)


def _masked_mean(elementwise: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of each row (b, k) over its unmasked entries, then weighted mean over rows that have any."""
    counts = mask.sum(dim=-1)  # (b,)
    per_example = torch.where(mask, elementwise, 0.0).sum(dim=-1) / counts.clamp_min(1)  # (b,)
    return _weighted_mean(per_example, weight, counted=counts > 0)


def pearson_correlation(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson's r of two tensors of the same shape, read flat; 0 where either is constant (no NaN). A scalar."""
    x, y = x.float().flatten(), y.float().flatten()
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm() + eps)


def odin_length_loss(quality: torch.Tensor, length_reward: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """ODIN's length loss (Chen et al., 2024), within a batch of responses:

        |corr(quality, lengths)| - |corr(length_reward, lengths)|

    It decorrelates the quality head from response length and lets the length head carry it (either sign:
    some data prefer shorter replies). Inputs share a shape, e.g. (b, 2) chosen and rejected; the result is a
    scalar in [-1, 1].
    """
    return pearson_correlation(quality, lengths).abs() - pearson_correlation(length_reward, lengths).abs()


def orthogonality_loss(weight_quality: torch.Tensor, weight_length: torch.Tensor) -> torch.Tensor:
    """ODIN's orthogonality loss |w_quality . w_length| on the two heads' weight vectors (d,): they then read
    different directions of the shared features. A scalar."""
    return (weight_quality.float() @ weight_length.float()).abs()
