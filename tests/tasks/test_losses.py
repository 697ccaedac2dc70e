"""Losses against values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rewardkit.tasks.losses import (
    bradley_terry_loss,
    davidson_loss,
    masked_bce_loss,
    masked_mse_loss,
    plackett_luce_loss,
    ranking_pairs_loss,
    rao_kupper_loss,
    tie_probabilities,
)


def softplus(x: float) -> float:
    """log(1 + e^x) = -log sigmoid(-x)."""
    return math.log1p(math.exp(x))


def test_equal_rewards_give_ln2():
    zeros = torch.zeros(4)
    assert bradley_terry_loss(zeros, zeros).item() == pytest.approx(math.log(2))


def test_known_values():
    # -log sigmoid(1) = log(1 + e^-1) = 0.31326; -log sigmoid(-2) = log(1 + e^2) = 2.12693
    loss = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert loss.item() == pytest.approx((0.313262 + 2.126928) / 2, abs=1e-5)


def test_margin_demands_a_gap():
    # with margin 1, a gap of 1 is only as good as a gap of 0 without it: ln 2
    loss = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), margin=torch.tensor([1.0]))
    assert loss.item() == pytest.approx(math.log(2))


def test_weights_make_a_weighted_mean():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    loss = bradley_terry_loss(chosen, rejected, weight=torch.tensor([3.0, 1.0]))
    assert loss.item() == pytest.approx((3 * 0.313262 + 2.126928) / 4, abs=1e-5)


def test_center_rewards_penalizes_offset():
    chosen, rejected = torch.tensor([3.0]), torch.tensor([2.0])
    plain = bradley_terry_loss(chosen, rejected)
    centred = bradley_terry_loss(chosen, rejected, center_rewards_coefficient=0.01)
    assert (centred - plain).item() == pytest.approx(0.01 * 25)


def test_gradient_raises_chosen_and_lowers_rejected():
    chosen, rejected = torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    bradley_terry_loss(chosen, rejected).backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()
    assert chosen.grad[0].item() == pytest.approx(-0.5 / 3)


def test_bf16_inputs_are_computed_in_fp32():
    loss = bradley_terry_loss(torch.tensor([1.0], dtype=torch.bfloat16), torch.tensor([0.0], dtype=torch.bfloat16))
    assert loss.dtype == torch.float32


# --- tie models --------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "strength"), [("rao_kupper", 2.0), ("davidson", 1.0)])
def test_default_tie_strengths_make_equal_rewards_a_three_way_coin(model, strength):
    # Rao-Kupper theta = 2, d = 0: win = sigmoid(-ln 2) = 1/3, tie = 3 * 1/3 * 1/3 = 1/3.
    # Davidson nu = 1, d = 0: Z = 1 + 1 + 1 = 3, so each is 1/3.
    p_win, p_tie, p_loss = tie_probabilities(torch.zeros(1), model)
    assert [p_win.item(), p_tie.item(), p_loss.item()] == pytest.approx([1 / 3] * 3)
    assert [p.item() for p in tie_probabilities(torch.zeros(1), model, strength)] == pytest.approx([1 / 3] * 3)
    loss = {"rao_kupper": rao_kupper_loss, "davidson": davidson_loss}[model]
    for tie in (False, True):
        assert loss(torch.zeros(1), torch.zeros(1), torch.tensor([tie])).item() == pytest.approx(math.log(3))


def test_rao_kupper_known_values():
    # theta = 2, d = ln 2: win = sigmoid(0) = 0.5, loss = sigmoid(-2 ln 2) = 1 / (1 + 4) = 0.2,
    # tie = (4 - 1) * 0.5 * 0.2 = 0.3; 0.5 + 0.3 + 0.2 = 1.
    d = torch.tensor([math.log(2)])
    assert [p.item() for p in tie_probabilities(d, "rao_kupper", 2.0)] == pytest.approx([0.5, 0.3, 0.2])
    loss = rao_kupper_loss(torch.tensor([math.log(2), math.log(2)]), torch.zeros(2), torch.tensor([False, True]))
    assert loss.item() == pytest.approx((-math.log(0.5) - math.log(0.3)) / 2)


def test_rao_kupper_theta_widens_the_tie_region():
    # P(tie | d = 0) = (theta - 1) / (theta + 1): 1/3 at theta = 2, 1/2 at theta = 3.
    assert tie_probabilities(torch.zeros(1), "rao_kupper", 3.0)[1].item() == pytest.approx(0.5)


def test_davidson_known_values_match_the_closed_form():
    # nu = 1, d = 2 ln 2: e^(d/2) = 2, e^(-d/2) = 0.5, Z = 3.5 -> win 4/7, tie 2/7, loss 1/7;
    # the paper's form 1 / (1 + e^-d + nu e^(-d/2)) = 1 / (1 + 0.25 + 0.5) = 4/7 agrees.
    d = torch.tensor([2 * math.log(2)])
    assert [p.item() for p in tie_probabilities(d, "davidson", 1.0)] == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    # nu = 2, d = 0: Z = 4 -> win 1/4, tie 1/2
    loss = davidson_loss(torch.zeros(2), torch.zeros(2), torch.tensor([False, True]), nu=2.0)
    assert loss.item() == pytest.approx((math.log(4) + math.log(2)) / 2)


@pytest.mark.parametrize("model", ["rao_kupper", "davidson"])
def test_tie_probabilities_sum_to_one_and_stay_finite_for_large_gaps(model):
    d = torch.tensor([-200.0, -3.0, -0.5, 0.0, 0.7, 5.0, 200.0])
    for strength in (1.5, 4.0):
        p_win, p_tie, p_loss = tie_probabilities(d, model, strength)
        assert torch.allclose(p_win + p_tie + p_loss, torch.ones_like(d))
        assert (p_win[1:] >= p_win[:-1]).all() and (p_loss[1:] <= p_loss[:-1]).all()  # monotone in d
    big = torch.tensor([200.0, -200.0])
    loss = {"rao_kupper": rao_kupper_loss, "davidson": davidson_loss}[model]
    assert torch.isfinite(loss(big, torch.zeros(2), torch.tensor([True, False])))


@pytest.mark.parametrize("loss", [rao_kupper_loss, davidson_loss])
def test_a_tie_pulls_the_gap_to_zero_from_both_sides_and_a_win_pushes_it_up(loss):
    rewards_a = torch.tensor([1.0, -1.0, 0.0, -1.0], requires_grad=True)
    rewards_b = torch.zeros(4, requires_grad=True)
    loss(rewards_a, rewards_b, torch.tensor([True, True, True, False])).backward()
    # gradient descent moves r_a against its gradient: d = 1 goes down, d = -1 goes up, d = 0 stays
    assert rewards_a.grad[0] > 0 and rewards_a.grad[1] < 0 and rewards_a.grad[2].item() == pytest.approx(0.0)
    assert rewards_a.grad[3] < 0 and rewards_b.grad[3] > 0  # a preferred: raise a, lower b
    assert torch.allclose(rewards_a.grad, -rewards_b.grad)  # only d = r_a - r_b matters


@pytest.mark.parametrize("loss", [rao_kupper_loss, davidson_loss])
def test_tie_losses_weight_pairs(loss):
    rewards_a, rewards_b, tie = torch.tensor([1.0, 0.0]), torch.zeros(2), torch.tensor([False, True])
    per_pair = torch.stack([loss(rewards_a[i : i + 1], rewards_b[i : i + 1], tie[i : i + 1]) for i in range(2)])
    weighted = loss(rewards_a, rewards_b, tie, weight=torch.tensor([3.0, 1.0]))
    assert weighted.item() == pytest.approx((3 * per_pair[0] + per_pair[1]).item() / 4)


def test_tie_strengths_are_validated():
    with pytest.raises(ValueError):
        rao_kupper_loss(torch.zeros(1), torch.zeros(1), torch.tensor([True]), theta=1.0)
    with pytest.raises(ValueError):
        davidson_loss(torch.zeros(1), torch.zeros(1), torch.tensor([True]), nu=0.0)
    with pytest.raises(ValueError):
        tie_probabilities(torch.zeros(1), "bradley_terry")


def test_tie_losses_compute_in_fp32():
    bf16 = torch.tensor([1.0], dtype=torch.bfloat16)
    assert rao_kupper_loss(bf16, bf16, torch.tensor([True])).dtype == torch.float32
    assert davidson_loss(bf16, bf16, torch.tensor([True])).dtype == torch.float32


# --- Plackett-Luce -----------------------------------------------------------------------


def test_plackett_luce_known_value():
    # [2, 1, 0]: [lse(2, 1, 0) - 2] + [lse(1, 0) - 1] = log(1 + e^-1 + e^-2) + log(1 + e^-1)
    #          = log(1.503215) + log(1.367879) = 0.407606 + 0.313262 = 0.720869
    loss = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.ones(1, 3, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.720869, abs=1e-5)


def test_plackett_luce_of_two_items_is_bradley_terry():
    rewards = torch.tensor([[1.5, -0.5], [0.0, 2.0], [3.0, 3.0]])
    pl = plackett_luce_loss(rewards, torch.ones(3, 2, dtype=torch.bool), weight=torch.tensor([1.0, 2.0, 0.5]))
    bt = bradley_terry_loss(rewards[:, 0], rewards[:, 1], weight=torch.tensor([1.0, 2.0, 0.5]))
    assert pl.item() == pytest.approx(bt.item())


def test_plackett_luce_ignores_padding_and_skips_lists_too_short_to_rank():
    # row 0: [2, 1, 0] as above, 0.720869; row 1: [0, 0] + padding, lse(0, 0) - 0 = ln 2;
    # row 2: one item ranks nothing and is not counted -> (0.720869 + 0.693147) / 2
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    loss = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 50.0], [7.0, 9.0, 9.0]]), mask)
    assert loss.item() == pytest.approx((0.720869 + math.log(2)) / 2, abs=1e-5)
    repadded = plackett_luce_loss(torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, -3.0], [7.0, -1.0, 4.0]]), mask)
    assert repadded.item() == loss.item()


def test_plackett_luce_weights_lists():
    mask = torch.ones(2, 2, dtype=torch.bool)
    # ln 2 for the tied list, 0.313262 for [1, 0] (as Bradley-Terry's -log sigmoid(1))
    loss = plackett_luce_loss(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), mask, weight=torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx((math.log(2) + 3 * 0.313262) / 4, abs=1e-5)


def test_plackett_luce_raises_the_best_and_lowers_the_worst():
    rewards = torch.zeros(2, 4, requires_grad=True)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    plackett_luce_loss(rewards, mask).backward()
    grad = rewards.grad
    assert (grad[:, 0] < 0).all() and grad[0, 3] > 0 and grad[1, 2] > 0  # best up, last real entry down
    assert grad[1, 3].item() == 0.0  # padding gets no gradient
    assert torch.isfinite(grad).all()
    # all equal: d/dr_0 = (1/4 - 1) / 2 lists = -0.375 on the four-item list
    assert grad[0, 0].item() == pytest.approx(-0.375)


def test_plackett_luce_without_any_rankable_list_is_zero_with_a_graph():
    rewards = torch.ones(2, 3, requires_grad=True)
    loss = plackett_luce_loss(rewards, torch.tensor([[True, False, False], [False, False, False]]))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert (rewards.grad == 0).all()


# --- masked pointwise losses -------------------------------------------------------------


def test_masked_mse_known_value_averages_within_then_across_examples():
    # row 0: labelled attributes 0, 1: errors 0^2, 2^2 -> mean 2; row 1: attribute 0: 1^2 -> 1;
    # row 2: no labels, not counted. Unweighted (2 + 1) / 2 = 1.5; weights 1, 3 (and 100 on row 2) -> 5 / 4.
    predictions = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    assert masked_mse_loss(predictions, targets, mask).item() == pytest.approx(1.5)
    weight = torch.tensor([1.0, 3.0, 100.0])
    assert masked_mse_loss(predictions, targets, mask, weight=weight).item() == pytest.approx(1.25)


def test_masked_bce_known_value_with_soft_targets():
    # row 0: logit 0 vs 1 -> ln 2; logit ln 3 vs 1 -> -log(3/4) = ln(4/3); mean (ln 2 + ln(4/3)) / 2.
    # row 1: logit 0 vs soft 0.5 -> ln 2 (masked second entry ignored). Loss = mean of the two rows.
    logits = torch.tensor([[0.0, math.log(3)], [0.0, 9.0]])
    targets = torch.tensor([[1.0, 1.0], [0.5, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    row0 = (math.log(2) + math.log(4 / 3)) / 2
    assert masked_bce_loss(logits, targets, mask).item() == pytest.approx((row0 + math.log(2)) / 2)
    weighted = masked_bce_loss(logits, targets, mask, weight=torch.tensor([2.0, 1.0]))
    assert weighted.item() == pytest.approx((2 * row0 + math.log(2)) / 3)


@pytest.mark.parametrize("loss", [masked_mse_loss, masked_bce_loss])
def test_masked_targets_change_nothing_even_when_nan(loss):
    predictions = torch.tensor([[0.3, -1.0, 2.0], [0.5, 0.1, -0.2]], requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, True, False]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    other = torch.tensor([[1.0, float("nan"), 0.0], [0.7, 1.0, float("nan")]])  # differs only where masked
    first = loss(predictions, targets, mask)
    first.backward()
    grad = predictions.grad.clone()
    predictions.grad = None
    second = loss(predictions, other, mask)
    second.backward()
    assert second.item() == first.item()
    assert torch.equal(predictions.grad, grad) and (grad[~mask] == 0).all()


@pytest.mark.parametrize("loss", [masked_mse_loss, masked_bce_loss])
def test_masked_losses_of_an_unlabelled_batch_are_zero_with_a_graph(loss):
    predictions = torch.ones(2, 3, requires_grad=True)
    value = loss(predictions, torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool), weight=torch.ones(2))
    assert value.item() == 0.0 and value.grad_fn is not None
    value.backward()
    assert (predictions.grad == 0).all()


def test_masked_losses_pull_predictions_toward_targets():
    predictions = torch.zeros(1, 2, requires_grad=True)
    targets, mask = torch.tensor([[1.0, -1.0]]), torch.ones(1, 2, dtype=torch.bool)
    masked_mse_loss(predictions, targets, mask).backward()
    assert predictions.grad[0, 0] < 0 < predictions.grad[0, 1]  # d/dp mean((p - t)^2) = (p - t) = -1, +1
    logits = torch.zeros(1, 2, requires_grad=True)
    masked_bce_loss(logits, torch.tensor([[1.0, 0.0]]), mask).backward()
    assert logits.grad[0, 0].item() == pytest.approx(-0.25)  # (sigmoid(0) - 1) / 2 entries
    assert logits.grad[0, 1].item() == pytest.approx(0.25)


def test_listwise_and_masked_losses_compute_in_fp32():
    x = torch.zeros(1, 2, dtype=torch.bfloat16)
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert plackett_luce_loss(x, mask).dtype == torch.float32
    assert masked_mse_loss(x, x, mask).dtype == torch.float32
    assert masked_bce_loss(x, x, mask).dtype == torch.float32


def test_ranking_pairs_loss_is_the_mean_bradley_terry_of_each_rankings_pairs():
    rewards = torch.tensor([[2.0, 1.0, -1.0], [0.5, 1.5, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    first = (softplus(-1.0) + softplus(-3.0) + softplus(-2.0)) / 3  # pairs (0,1), (0,2), (1,2)
    second = softplus(1.0)  # K = 2: Bradley-Terry of 0.5 over 1.5
    assert ranking_pairs_loss(rewards, mask).item() == pytest.approx((first + second) / 2, rel=1e-6)
    weighted = ranking_pairs_loss(rewards, mask, weight=torch.tensor([3.0, 1.0])).item()
    assert weighted == pytest.approx((3 * first + second) / 4, rel=1e-6), "weight K(K-1)/2: every pair alike"


def test_ranking_pairs_loss_pushes_the_better_up():
    rewards = torch.zeros(1, 3, requires_grad=True)
    ranking_pairs_loss(rewards, torch.ones(1, 3, dtype=torch.bool)).backward()
    assert rewards.grad[0, 0] < 0 < rewards.grad[0, 2] and rewards.grad[0, 1] == pytest.approx(0.0, abs=1e-7)
