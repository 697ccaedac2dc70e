"""ODIN's length and orthogonality losses against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rewardkit.tasks.losses import odin_length_loss, orthogonality_loss, pearson_correlation


def test_pearson_correlation_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # centred x = (-1.5, -0.5, 0.5, 1.5), centred y = (-1, -1, 1, 1): r = 4 / (sqrt(5) * 2)
    y = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # read flat, like x
    assert pearson_correlation(x, y).item() == pytest.approx(2 / math.sqrt(5), rel=1e-6)
    assert pearson_correlation(x, -3 * x + 7).item() == pytest.approx(-1.0, rel=1e-6)


def test_a_constant_gives_zero_correlation_and_finite_gradients():
    x = torch.full((4,), 0.3, requires_grad=True)
    r = pearson_correlation(x, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    r.backward()
    assert r.item() == 0.0 and torch.isfinite(x.grad).all()


def test_length_loss_rewards_a_length_head_that_carries_length_in_either_direction():
    lengths = torch.tensor([[10.0, 4.0], [7.0, 1.0]])
    quality = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # uncorrelated with length: centred dot product 0
    assert pearson_correlation(quality, lengths).item() == pytest.approx(0.0, abs=1e-7)
    assert odin_length_loss(quality, lengths, lengths).item() == pytest.approx(-1.0, rel=1e-6)
    assert odin_length_loss(quality, -lengths, lengths).item() == pytest.approx(-1.0, rel=1e-6)
    assert odin_length_loss(lengths, quality, lengths).item() == pytest.approx(1.0, rel=1e-6)


def test_orthogonality_loss_is_the_absolute_dot_product():
    assert orthogonality_loss(torch.tensor([1.0, 2.0, 0.0]), torch.tensor([-3.0, 1.0, 5.0])).item() == 1.0
    assert orthogonality_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])).item() == 0.0
