"""Prefix sharing: packed rows give the same rewards and gradients as scoring each sequence alone."""

from __future__ import annotations

import pytest
import torch

from conftest import toy_pairs
from rewardkit.models.packing import collate_packed, pack_sequences, shared_prefix_length
from rewardkit.models.reward_model import RewardModel
from rewardkit.tasks.comparisons import comparison_rewards, encode_comparisons


@pytest.fixture(scope="module")
def llama_rm(llama_dir) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(llama_dir), max_length=96)


def test_pack_layout_by_hand():
    row = pack_sequences([[5, 6, 7, 8], [5, 6, 9]])
    assert row.input_ids == [5, 6, 7, 8, 9]
    assert row.position_ids == [0, 1, 2, 3, 2]
    assert row.segments == [0, 0, 1, 1, 2]
    assert row.score_index == [3, 4]
    mask = collate_packed([row], pad_token_id=0)["attention_mask"][0, 0]
    assert mask[4].tolist() == [True, True, False, False, True], "the second reply never sees the first"
    assert mask[3].tolist() == [True, True, True, True, False]


def test_identical_sequences_keep_a_scored_token_each():
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert pack_sequences([[1, 2, 3], [1, 2, 3]]).score_index == [2, 3]


def test_padding_rows_attend_only_to_themselves():
    rows = [pack_sequences([[1, 2], [1, 3]]), pack_sequences([[1, 2, 3, 4, 5], [1, 6]])]
    batch = collate_packed(rows, pad_token_id=0)
    mask = batch["attention_mask"][0, 0]
    assert mask[3].tolist() == [False, False, False, True, False, False]
    assert mask.any(-1).all(), "no empty softmax row"


def test_shared_training_rewards_and_gradients_equal_unshared(llama_rm):
    comparisons, _ = encode_comparisons(llama_rm, toy_pairs(6))
    results = {}
    for share in (False, True):
        llama_rm.zero_grad()
        chosen, rejected = comparison_rewards(llama_rm, llama_rm, comparisons, "cpu", share_prefix=share)
        (chosen - 2 * rejected).sum().backward()
        grads = {n: p.grad.clone() for n, p in llama_rm.named_parameters() if p.grad is not None}
        results[share] = (chosen.detach(), rejected.detach(), grads)
    (c0, r0, g0), (c1, r1, g1) = results[False], results[True]
    assert (c0 - c1).abs().max() <= 1e-4 and (r0 - r1).abs().max() <= 1e-4
    assert g0.keys() == g1.keys()
    assert max((g0[n] - g1[n]).abs().max().item() for n in g0) <= 1e-4


def test_best_of_n_shared_scores_equal_independent(llama_rm):
    prompts = ["a question about tea?", [{"role": "user", "content": "and maps?"}]]
    candidates = [[f"answer number {i} " * (i % 3 + 1) for i in range(5)], ["yes", "no", "word " * 200]]
    shared = llama_rm.score_candidates(prompts, candidates)
    alone = llama_rm.score_candidates(prompts, candidates, share_prefix=False)
    flat_shared, flat_alone = sum(shared, []), sum(alone, [])
    assert [len(g) for g in shared] == [5, 3]
    assert torch.isnan(torch.tensor(flat_shared[-1])) and torch.isnan(torch.tensor(flat_alone[-1]))
    torch.testing.assert_close(torch.tensor(flat_shared[:-1]), torch.tensor(flat_alone[:-1]), atol=1e-4, rtol=0)
    assert alone[0][0] == pytest.approx(llama_rm.score([prompts[0]], [candidates[0][0]])[0], abs=1e-5)
