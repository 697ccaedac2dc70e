"""The scoring spec: one rendering path, truncation that keeps the response, and the scored token."""

from __future__ import annotations

import pytest
import torch

from conftest import toy_pairs
from rewardkit.errors import ConfigError, ModelError
from rewardkit.models.backbones import windowed_spec
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import ScoringSpec, SpecEncoder
from rewardkit.tasks.comparisons import encode_comparisons


@pytest.fixture(scope="module")
def llama_rm(llama_dir) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(llama_dir), max_length=64).eval()


@pytest.fixture(scope="module")
def bert_rm(bert_dir) -> RewardModel:
    torch.manual_seed(0)
    return RewardModel.from_backbone(str(bert_dir), max_length=64).eval()


def test_natural_specs(llama_rm, bert_rm):
    assert llama_rm.spec.format == "chat_template" and llama_rm.spec.pooling == "last"
    assert llama_rm.spec.pad_token == "<pad>" and llama_rm.spec.chat_template
    assert bert_rm.spec.format == "plain" and bert_rm.spec.pooling == "first"
    assert (bert_rm.spec.prefix_tokens, bert_rm.spec.separator_tokens) == (["[CLS]"], ["[SEP]"])


def test_chat_template_rendering_splits_prompt_and_response(llama_rm):
    prompt, response = llama_rm.spec.render(llama_rm.tokenizer, "hi there", "hello")
    assert prompt == "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"
    assert response == "hello<|im_end|>\n"


def test_train_and_score_time_token_ids_are_identical(llama_rm, tmp_path):
    pair = toy_pairs(1)[0]
    (train_time,), _ = encode_comparisons(llama_rm, [pair])
    llama_rm.save_pretrained(tmp_path / "m")
    reloaded = RewardModel.from_pretrained(tmp_path / "m")
    score_time = reloaded.spec.encode(reloaded.tokenizer, pair.prompt, pair.chosen)
    assert score_time.input_ids == train_time.chosen.input_ids
    assert reloaded.spec == llama_rm.spec


def test_truncation_cuts_the_prompt_from_the_left_and_keeps_the_response(bert_rm):
    tok = bert_rm.tokenizer
    spec = bert_rm.spec.model_copy(update={"max_length": 24})
    response = "the good answer"
    encoded = spec.encode(tok, "cats " * 50 + "final words", response)
    assert len(encoded.input_ids) == 24
    response_ids = tok(response, add_special_tokens=False)["input_ids"]
    assert encoded.input_ids[-len(response_ids) - 1 : -1] == response_ids
    kept_prompt = tok.decode(encoded.input_ids[1 : encoded.prompt_length - 1])
    assert kept_prompt.endswith("words\n\nAssistant:") and not kept_prompt.startswith("User: cats")


def test_a_response_that_alone_does_not_fit_is_dropped(bert_rm):
    spec = bert_rm.spec.model_copy(update={"max_length": 10})
    assert spec.encode(bert_rm.tokenizer, "q", "a very long response " * 10) is None
    assert spec.encode(bert_rm.tokenizer, "q", "ok") is not None


def test_truncate_keeps_the_response_start_and_the_prompt_end_and_flags_the_pair(bert_rm):
    tok = bert_rm.tokenizer
    spec = bert_rm.spec.model_copy(update={"max_length": 20, "long_responses": "truncate"})
    prompt, response = "cats " * 30 + "final words", "the good answer is helpful " * 10
    encoded = spec.encode(tok, prompt, response)
    assert len(encoded.input_ids) == 20 and encoded.truncated
    room = 20 - 3  # [CLS] prompt [SEP] response [SEP]
    assert encoded.prompt_length - 2 == room // 2, "the prompt keeps at most half the room"
    prompt_text, response_text = spec.render(tok, prompt, response)
    response_ids = tok(response_text, add_special_tokens=False)["input_ids"]
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    assert encoded.input_ids[encoded.prompt_length : -1] == response_ids[: room - room // 2], "the start is kept"
    assert encoded.input_ids[1 : encoded.prompt_length - 1] == prompt_ids[-(room // 2) :], "the prompt's end"
    assert encoded.input_ids[-1] == tok.sep_token_id, "the suffix stays"


def test_truncate_changes_only_pairs_that_do_not_fit(bert_rm):
    tok, drop = bert_rm.tokenizer, bert_rm.spec.model_copy(update={"max_length": 12})
    truncate = drop.model_copy(update={"long_responses": "truncate"})
    prompts, responses = ["q", "q " * 20], ["ok", "fine"]
    assert truncate.encode_batch(tok, prompts, responses) == drop.encode_batch(tok, prompts, responses)
    assert not any(e.truncated for e in drop.encode_batch(tok, prompts, responses))
    [short] = truncate.encode_batch(tok, ["q"], ["a"])
    assert not short.truncated
    [cut] = truncate.encode_batch(tok, [""], ["a very long response " * 10])
    assert cut.truncated and len(cut.input_ids) == 12


def test_long_responses_is_a_run_time_choice_not_saved(tmp_path, bert_rm):
    truncate = bert_rm.spec.model_copy(update={"long_responses": "truncate"})
    truncate.save(tmp_path)
    assert "long_responses" not in (tmp_path / "scoring_spec.json").read_text()
    assert ScoringSpec.load(tmp_path).long_responses == "drop"
    assert truncate.fingerprint() != bert_rm.spec.fingerprint(), "truncation renders long pairs differently"


def test_windowed_spec_stops_at_the_position_limit(bert_rm):
    config = bert_rm.model.config
    wider = windowed_spec(bert_rm.spec, config, max_length=512, long_responses="truncate")
    assert (wider.max_length, wider.long_responses, bert_rm.spec.max_length) == (512, "truncate", 64)
    assert windowed_spec(bert_rm.spec, config) == bert_rm.spec
    with pytest.raises(ConfigError, match="max_length 513 is more than .* position embeddings hold 512 tokens"):
        windowed_spec(bert_rm.spec, config, max_length=513)
    with pytest.raises(ConfigError, match="'cut'"):
        windowed_spec(bert_rm.spec, config, long_responses="cut")


def test_same_score_alone_padded_left_right_and_in_a_mixed_batch(llama_rm):
    short = llama_rm.spec.encode(llama_rm.tokenizer, "hi", "ok")
    long = llama_rm.spec.encode(llama_rm.tokenizer, "a much longer prompt about rain and maps", "a longer reply too")
    alone = llama_rm(**llama_rm.collate([short]))
    mixed = llama_rm(**llama_rm.collate([long, short]))  # short is right-padded here
    ids = llama_rm.collate([long, short])["input_ids"]
    width, n = ids.shape[1], len(short.input_ids)
    left_ids = torch.full((1, width), llama_rm.pad_token_id)
    left_ids[0, width - n :] = torch.tensor(short.input_ids)
    left_mask = (torch.arange(width) >= width - n).long().unsqueeze(0)
    left = llama_rm(input_ids=left_ids, attention_mask=left_mask)
    torch.testing.assert_close(mixed[1], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(left[0], alone[0], atol=1e-5, rtol=0)


def test_eos_in_the_middle_still_scores_the_last_real_token(llama_rm):
    """ChatML ends every turn with EOS; the scored token is the last real one, read from the mask."""
    prompt = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
              {"role": "user", "content": "and?"}]
    encoded = llama_rm.spec.encode(llama_rm.tokenizer, prompt, "fine")
    eos = llama_rm.tokenizer.eos_token_id
    assert encoded.input_ids.count(eos) == 4 and encoded.input_ids[-1] != eos
    batch = llama_rm.collate([encoded])
    backbone = llama_rm.model.model
    hidden = backbone(**batch).last_hidden_state[0, len(encoded.input_ids) - 1]
    expected = llama_rm.model.score(hidden).squeeze()
    torch.testing.assert_close(llama_rm(**batch)[0], expected)


def test_first_token_pooling_rejects_left_padding(bert_rm):
    encoded = bert_rm.spec.encode(bert_rm.tokenizer, "hi", "ok")
    batch = bert_rm.collate([encoded])
    batch["attention_mask"][0, 0] = 0
    with pytest.raises(AssertionError, match="right-padded"):  # an invariant of the callers, not user input
        bert_rm(**batch)


def test_spec_saves_and_loads(tmp_path, bert_rm):
    bert_rm.spec.save(tmp_path)
    assert ScoringSpec.load(tmp_path) == bert_rm.spec
    assert ScoringSpec.load(tmp_path).fingerprint() == bert_rm.spec.fingerprint()


def test_loading_a_directory_without_a_spec_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="not a rewardkit model"):
        ScoringSpec.load(tmp_path)


def test_spec_encoder_reports_untruncated_length(bert_rm):
    spec = bert_rm.spec.model_copy(update={"max_length": 12})
    encoder = SpecEncoder(spec, bert_rm.tokenizer)
    assert encoder.length("cats " * 20, "ok") > 12
    assert len(encoder.encode("cats " * 20, "ok")) == 12


def test_an_empty_prompt_renders(bert_rm, llama_rm):
    for rm in (bert_rm, llama_rm):
        assert rm.spec.encode(rm.tokenizer, [], "ok") is not None


def test_special_token_strings_in_plain_text_stay_text(bert_rm):
    encoded = bert_rm.spec.encode(bert_rm.tokenizer, "q", "hello [SEP] <pad>")
    specials = {bert_rm.tokenizer.sep_token_id, bert_rm.tokenizer.pad_token_id}
    assert sum(t in specials for t in encoded.input_ids) == 2, "only the spec's own two [SEP]"


# ---- process reward models: steps ----------------------------------------------------------------------------------
@pytest.fixture
def step_model(llama_dir):
    return RewardModel.from_backbone(str(llama_dir), max_length=64, step_separator="<|step|>")


def test_every_step_ends_with_one_separator_token_and_the_ids_end_at_the_last(step_model):
    rm = step_model
    separator = rm.tokenizer.convert_tokens_to_ids("<|step|>")
    [encoded] = rm.spec.encode_steps(rm.tokenizer, ["add 2 and 3"], [["2 + 3 = 5.\n\n", "so 5", "done"]])
    assert len(encoded.step_positions) == 3
    assert [encoded.input_ids[i] for i in encoded.step_positions] == [separator] * 3
    assert encoded.step_positions[-1] == len(encoded.input_ids) - 1
    assert encoded.input_ids.count(separator) == 3 and min(encoded.step_positions) >= encoded.prompt_length


def test_step_encoding_matches_the_rendered_text_between_separators(step_model):
    rm = step_model
    [encoded] = rm.spec.encode_steps(rm.tokenizer, ["q"], [["one", "two"]])
    text = rm.tokenizer.decode(encoded.input_ids[encoded.prompt_length :])
    assert text == "one<|step|>two<|step|>"


def test_a_step_holding_the_separator_text_is_an_error(step_model):
    rm = step_model
    with pytest.raises(ValueError, match="contains the step separator"):
        rm.spec.encode_steps(rm.tokenizer, ["q"], [["one <|step|> two", "three"]])


def test_a_solution_too_long_is_dropped_not_cut(step_model):
    rm = step_model
    assert rm.spec.encode_steps(rm.tokenizer, ["q"], [["word " * 80]]) == [None]


def test_a_separator_that_is_not_one_token_is_refused(llama_dir):
    rm = RewardModel.from_backbone(str(llama_dir), max_length=64)
    spec = rm.spec.model_copy(update={"step_separator": "not a token"})
    with pytest.raises(ValueError, match="not a single token"):
        spec.encode_steps(rm.tokenizer, ["q"], [["a"]])


def test_step_scores_are_read_at_each_separator(step_model):
    rm = step_model.eval()
    [encoded] = rm.spec.encode_steps(rm.tokenizer, ["q"], [["one", "two", "three"]])
    batch = rm.collate([encoded])
    with torch.no_grad():
        every = rm.model.model(**batch).last_hidden_state
        expected = torch.sigmoid(rm.model.score(every[0, list(encoded.step_positions)]).squeeze(-1))
    [probabilities] = rm.step_probabilities([encoded])
    torch.testing.assert_close(torch.tensor(probabilities), expected, atol=1e-5, rtol=0)
