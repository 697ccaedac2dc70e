"""The scoring-time length penalty: `reward - L * response tokens`, the tokens counted as the model scores the
response, recorded beside the raw reward in `rewardkit score` output."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from conftest import assert_usage_error, save_tiny_model, write_jsonl
from rewardkit.cli.app import app
from rewardkit.errors import ConfigError
from rewardkit.models.ensemble import RewardEnsemble, save_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.scoring.files import score_file
from rewardkit.scoring.length import penalize, response_tokens

runner = CliRunner()
RECORDS = [{"prompt": "tea?", "response": "yes please"}, {"prompt": "Name a colour.", "response": "red " * 9},
           {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there friend"}]},
           {"prompt": "q", "response": "word " * 100}]  # longer than max_length: no reward, no penalty


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory):
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("rm") / "rm", 0, Normalization(mean=0.1, std=0.5, n=9))


def scored(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_penalty_lowers_each_reward_by_exactly_its_lambda_times_tokens(model_dir, tmp_path):
    rm = RewardModel.from_pretrained(model_dir)
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    score_file(rm, source, tmp_path / "raw.jsonl", normalize=True)
    score_file(rm, source, tmp_path / "penalized.jsonl", normalize=True, length_penalty=0.25)
    raw, penalized = scored(tmp_path / "raw.jsonl"), scored(tmp_path / "penalized.jsonl")
    prompts = ["tea?", "Name a colour.", [{"role": "user", "content": "hi"}]]
    responses = ["yes please", "red " * 9, [{"role": "assistant", "content": "hello there friend"}]]
    encoded = rm.spec.encode_batch(rm.tokenizer, prompts, responses)
    tokens = [pair.response_length for pair in encoded]
    assert len(set(tokens)) == 3  # the records differ in length, so a wrong count would show
    for before, after, n in zip(raw[:3], penalized[:3], tokens, strict=True):
        assert (after["reward_raw"], after["length_penalty"], after["response_tokens"]) == (before["reward"], 0.25, n)
        assert before["reward"] - after["reward"] == pytest.approx(0.25 * n, abs=1e-12)
        assert before["reward_normalized"] - after["reward_normalized"] == pytest.approx(0.25 * n, abs=1e-12)
    assert penalized[3] == raw[3] and penalized[3]["reward"] is None  # not scored: nothing applied


def test_penalize_and_response_tokens_by_hand(model_dir):
    rm = RewardModel.from_pretrained(model_dir)
    first, unknown = penalize([1.0, 2.0], [3, None], 0.5)
    assert first == -0.5 and math.isnan(unknown) and math.isnan(penalize([math.nan], [4], 0.5)[0])
    (n,) = response_tokens(rm, ["q"], ["red red"])
    assert n == rm.spec.encode(rm.tokenizer, "q", "red red").response_length > 0


def test_an_ensemble_is_penalized_in_its_z_score_units(llama_dir, tmp_path):
    members = [save_tiny_model(llama_dir, tmp_path / f"m{i}", i, Normalization(mean=0.0, std=1.0 + i, n=9))
               for i in range(2)]
    save_ensemble(tmp_path / "ens", members, mode="mean")
    ensemble = RewardEnsemble.from_pretrained(tmp_path / "ens")
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS[:2])
    score_file(ensemble, source, tmp_path / "raw.jsonl")
    score_file(ensemble, source, tmp_path / "penalized.jsonl", length_penalty=0.1)
    for before, after in zip(scored(tmp_path / "raw.jsonl"), scored(tmp_path / "penalized.jsonl"), strict=True):
        assert before["reward"] - after["reward"] == pytest.approx(0.1 * after["response_tokens"], abs=1e-12)
        assert after["uncertainty"] == before["uncertainty"]


def test_cli_score_length_penalty(model_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS[:2])
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(source), "--output",
                                 str(tmp_path / "out.jsonl"), "--length-penalty", "0.5", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    for record in scored(tmp_path / "out.jsonl"):
        assert record["reward"] == pytest.approx(record["reward_raw"] - 0.5 * record["response_tokens"], abs=1e-12)
    negative = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(source), "--output",
                                   str(tmp_path / "neg.jsonl"), "--length-penalty", "-1"])
    assert_usage_error(negative, "--length-penalty", not_written=(tmp_path / "neg.jsonl",))


def test_a_non_finite_penalty_is_refused_before_reading(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="--length-penalty must be a finite number >= 0"):
        score_file(RewardModel.from_pretrained(model_dir), tmp_path / "missing.jsonl", tmp_path / "out.jsonl",
                   length_penalty=float("inf"))
