"""Bradley-Terry loss against values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rewardkit.losses import bradley_terry_loss


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
