"""The saved model carries its rendering: template-rendered ids and plain-transformers logits equal rewardkit's."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from conftest import CHATML, save_tiny_model
from rewardkit.models.export import export_model
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.models.templates import build_chat_template

CONVERSATIONS = [
    [{"role": "user", "content": "Is tea good?"}, {"role": "assistant", "content": "yes, tea is good"}],
    [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "red"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
     {"role": "user", "content": "Rain?"}, {"role": "assistant", "content": "water from clouds"}],
    [{"role": "assistant", "content": "a reply with no prompt"}],
]
# each way a spec renders text: (backbone fixture, format, spec fields changed)
RENDERINGS = {
    "encoder plain": ("bert_dir", "auto", {}),
    "decoder chat template": ("llama_dir", "auto", {}),
    "decoder plain": ("llama_dir", "plain", {}),
    "decoder chat template with BOS": ("llama_dir", "auto", {"prefix_tokens": ["<s>"]}),
    "encoder chat template": ("bert_dir", "chat_template", {"chat_template": CHATML}),
}


@pytest.fixture(params=list(RENDERINGS))
def saved(request, tmp_path, bert_dir):
    """(model as trained, its saved directory) for each rendering."""
    fixture, format, update = RENDERINGS[request.param]
    backbone = request.getfixturevalue(fixture)
    if request.param == "encoder chat template":  # the tiny BERT has no template of its own
        backbone = tmp_path / "bert-chat"
        tokenizer = AutoTokenizer.from_pretrained(bert_dir)
        tokenizer.chat_template = CHATML
        AutoModel.from_pretrained(bert_dir).save_pretrained(backbone)
        tokenizer.save_pretrained(backbone)
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(str(backbone), max_length=256, format=format)
    rm.spec = rm.spec.model_copy(update=update)
    rm.save_pretrained(tmp_path / "model")
    return rm, tmp_path / "model"


def consumer_ids(directory, conversation) -> list[int]:
    """What TRL does: the saved tokenizer's own template, tokenized without added special tokens."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return tokenizer(tokenizer.apply_chat_template(conversation, tokenize=False), add_special_tokens=False).input_ids


def test_the_saved_template_renders_the_specs_ids_special_tokens_included(saved):
    rm, directory = saved
    for conversation in CONVERSATIONS:
        expected = rm.spec.encode(rm.tokenizer, conversation[:-1], conversation[-1:]).input_ids
        assert consumer_ids(directory, conversation) == expected, conversation
    plain_prompt = rm.spec.encode(rm.tokenizer, "Is tea good?", "yes, tea is good").input_ids
    assert consumer_ids(directory, CONVERSATIONS[0]) == plain_prompt
    specials = rm.tokenizer.convert_tokens_to_ids(rm.spec.prefix_tokens + rm.spec.suffix_tokens)
    assert all(token in plain_prompt for token in specials)


def test_a_backbone_template_that_is_the_specs_rendering_is_kept_as_it_is(llama_dir, bert_dir):
    chat = RewardModel.from_backbone(str(llama_dir), max_length=64)
    assert build_chat_template(chat.spec) == CHATML
    assert build_chat_template(RewardModel.from_backbone(str(bert_dir), max_length=64).spec) != CHATML


def test_the_generation_prompt_renders_every_message_up_to_the_reply(bert_dir):
    rm = RewardModel.from_backbone(str(bert_dir), max_length=64)
    template = build_chat_template(rm.spec)
    text = rm.tokenizer.apply_chat_template(CONVERSATIONS[0][:1], chat_template=template, tokenize=False,
                                            add_generation_prompt=True)
    assert text == "[CLS]User: Is tea good?\n\nAssistant:[SEP]"


@pytest.mark.parametrize("attributes", [None, ["helpful", "safe"]])
def test_the_saved_config_is_a_regression_naming_its_outputs(llama_dir, tmp_path, attributes):
    RewardModel.from_backbone(str(llama_dir), max_length=64, attributes=attributes).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    names = attributes or ["reward"]
    assert config["problem_type"] == "regression"
    assert config["id2label"] == {str(i): name for i, name in enumerate(names)}
    assert config["label2id"] == {name: i for i, name in enumerate(names)}


def transformers_rewards(directory, conversations, token_types: bool) -> list[float]:
    """Plain transformers on the template's ids, right-padded in one batch as TRL does; `token_types`: 1 from the
    token after the first separator on (what the spec gives a BERT-style encoder)."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    if token_types:
        sep = (batch["input_ids"] == tokenizer.sep_token_id).long()
        batch["token_type_ids"] = ((sep.cumsum(-1) - sep) > 0).long()  # as the model card says
    with torch.no_grad():
        return model(**batch).logits[:, 0].tolist()


def test_plain_transformers_on_the_templates_ids_gives_the_rewards_of_score(saved):
    rm, directory = saved
    expected = rm.score_messages(CONVERSATIONS)
    got = transformers_rewards(directory, CONVERSATIONS, token_types=rm.spec.token_type_ids)
    assert got == pytest.approx(expected, abs=1e-5)


def test_an_encoder_trained_with_token_types_needs_them_from_the_consumer(bert_dir, tmp_path):
    rm = RewardModel.from_backbone(str(bert_dir), max_length=64, token_types=True)  # model.token_type_ids: true
    with torch.no_grad():  # token types that matter, as after training
        rm.model.bert.embeddings.token_type_embeddings.weight[1].normal_(std=5.0)
    rm.spec = rm.spec.model_copy(update={"normalization": Normalization(mean=0.0, std=1.0, n=2)})
    rm.save_pretrained(tmp_path / "m")
    zeros = transformers_rewards(tmp_path / "m", CONVERSATIONS[:2], token_types=False)
    assert zeros != pytest.approx(rm.score_messages(CONVERSATIONS[:2]), abs=1e-5)  # the tolerance typed ids meet
    assert "Token types" in (export_model(tmp_path / "m", tmp_path / "export") / "README.md").read_text()


def test_new_encoders_have_no_token_types_so_consumers_that_pass_none_agree(bert_dir, tmp_path):
    rm = RewardModel.from_backbone(str(bert_dir), max_length=64)
    assert not rm.spec.token_type_ids
    with torch.no_grad():
        rm.model.bert.embeddings.token_type_embeddings.weight[1].normal_(std=5.0)  # unused: every type is 0
    rm.save_pretrained(tmp_path / "m")
    zeros = transformers_rewards(tmp_path / "m", CONVERSATIONS[:2], token_types=False)
    assert zeros == pytest.approx(rm.score_messages(CONVERSATIONS[:2]), abs=1e-5)


def test_an_export_scores_as_the_model_and_carries_a_model_card(bert_dir, tmp_path):
    run = tmp_path / "run"
    source = save_tiny_model(bert_dir, run / "model", seed=1, normalization=Normalization(mean=0.3, std=2.0, n=9))
    metrics = {"overall": {"accuracy": 0.75, "ci95": [0.6, 0.9], "n": 40}, "length_baseline": {"accuracy": 0.55}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.yaml").write_text("data:\n  train:\n  - {path: /x/pandalm-testset-v1.json, subset: pandalm}\n")
    out = export_model(source, tmp_path / "export")
    assert {"model.safetensors", "config.json", "scoring_spec.json", "README.md"} <= {p.name for p in out.iterdir()}
    original, exported = RewardModel.from_pretrained(source), RewardModel.from_pretrained(out)
    prompts, responses = [c[:-1] for c in CONVERSATIONS], [c[-1:] for c in CONVERSATIONS]
    assert exported.score(prompts, responses) == pytest.approx(original.score(prompts, responses), abs=1e-6)
    card = (out / "README.md").read_text()
    for needle in ("| overall | 0.750 | [0.600, 0.900] | 40 |", "Length baseline", "0.550", "Apache-2.0",
                   "pandalm", "bert", "pairwise", "64 tokens", "TRL", "vLLM"):
        assert needle in card, needle


def test_baking_the_normalization_gives_every_consumer_z_scored_rewards(bert_dir, tmp_path):
    source = save_tiny_model(bert_dir, tmp_path / "model", seed=2, normalization=Normalization(mean=0.3, std=2.0, n=9))
    original = RewardModel.from_pretrained(source)
    original.spec = original.spec.model_copy(update={"temperature": 1.5})
    original.save_pretrained(source)
    baked = RewardModel.from_pretrained(export_model(source, tmp_path / "baked", bake_normalization=True))
    prompts, responses = [c[:-1] for c in CONVERSATIONS], [c[-1:] for c in CONVERSATIONS]
    z = original.score(prompts, responses, normalize=True)
    assert baked.score(prompts, responses) == pytest.approx(z, abs=1e-5)
    assert baked.score(prompts, responses, normalize=True) == pytest.approx(z, abs=1e-5)
    assert (baked.spec.normalization.mean, baked.spec.normalization.std, baked.spec.normalization.n) == (0, 1, 9)
    assert baked.preference_probability(z[0], z[1]) == pytest.approx(
        original.preference_probability(*original.score(prompts[:2], responses[:2])), abs=1e-5)
