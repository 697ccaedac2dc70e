"""Batch scoring of files through the saved spec."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import write_jsonl
from rewardkit.errors import DataError
from rewardkit.models.reward_model import RewardModel
from rewardkit.scoring.files import score_file


@pytest.fixture(scope="module")
def trained_dir(llama_dir, tmp_path_factory):
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(str(llama_dir), max_length=48)
    directory = tmp_path_factory.mktemp("scored-model")
    rm.save_pretrained(directory)
    return directory


def test_score_file_adds_rewards_equal_to_the_library(trained_dir, tmp_path):
    records = [
        {"prompt": "tea?", "response": "yes please", "extra": 1},
        {"messages": [{"role": "user", "content": "tea?"}, {"role": "assistant", "content": "yes please"}]},
        {"prompt": "q", "response": "word " * 100},
    ]
    rm = RewardModel.from_pretrained(trained_dir)
    count = score_file(rm, write_jsonl(tmp_path / "in.jsonl", records), tmp_path / "out.jsonl", normalize=False)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert count == 3 and out[0]["extra"] == 1
    assert out[0]["reward"] == pytest.approx(rm.score(["tea?"], ["yes please"])[0], abs=1e-6)
    assert out[1]["reward"] == pytest.approx(out[0]["reward"], abs=1e-6), "messages render like prompt + response"
    assert out[2]["reward"] is None and "max_length" in out[2]["error"]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"prompt": "q"}, "in.jsonl:1: missing field 'response'"),
        ({"messages": [{"role": "user", "content": "q"}]}, "in.jsonl:1: field 'messages' must end with the assistant"),
        ({"prompt": 3, "response": "a"}, "in.jsonl:1: field 'prompt': expected a string or a list of messages"),
        ({"prompt": ["hi"], "response": "a"}, r"in.jsonl:1: field 'prompt\[0\]': expected a message"),
        ({"messages": [{"role": "assistant"}]}, r"in.jsonl:1: field 'messages\[0\].content': missing"),
    ],
)
def test_bad_records_name_file_line_and_field(trained_dir, tmp_path, record, message):
    rm = RewardModel.from_pretrained(trained_dir)
    with pytest.raises(DataError, match=message):
        score_file(rm, write_jsonl(tmp_path / "in.jsonl", [record]), tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_normalize_without_statistics_fails_before_scoring(trained_dir, tmp_path):
    rm = RewardModel.from_pretrained(trained_dir)
    with pytest.raises(ValueError, match="no normalization statistics"):
        score_file(rm, write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q", "response": "a"}]), tmp_path / "o.jsonl",
                   normalize=True)


def test_attributes_are_written_and_reweighted_at_scoring_time(llama_dir, tmp_path):
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(str(llama_dir), max_length=48, attributes=["helpful", "verbose"])
    rm.spec = rm.spec.model_copy(update={"task": "pointwise", "attribute_weights": [1.0, 0.0]})
    rm.save_pretrained(tmp_path / "model")
    rm = RewardModel.from_pretrained(tmp_path / "model")
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "tea?", "response": "yes please"}])
    score_file(rm, source, tmp_path / "default.jsonl")
    score_file(rm, source, tmp_path / "penalized.jsonl", attribute_weights={"helpful": 1.0, "verbose": -0.5})
    [default] = [json.loads(line) for line in (tmp_path / "default.jsonl").read_text().splitlines()]
    [penalized] = [json.loads(line) for line in (tmp_path / "penalized.jsonl").read_text().splitlines()]
    values = default["attributes"]
    assert default["reward"] == pytest.approx(values["helpful"], abs=1e-6)
    assert penalized["reward"] == pytest.approx(values["helpful"] - 0.5 * values["verbose"], abs=1e-6)
    with pytest.raises(ValueError, match="unknown attributes"):
        score_file(rm, source, tmp_path / "x.jsonl", attribute_weights={"length": 1.0})


def test_a_process_model_scores_each_step(llama_dir, tmp_path):
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(str(llama_dir), max_length=48, step_separator="<|step|>")
    rm.spec = rm.spec.model_copy(update={"task": "process"})
    records = [{"prompt": "2+3?", "steps": ["2+3=5", "so 5"]}, {"prompt": "q", "steps": ["word " * 60]}]
    score_file(rm, write_jsonl(tmp_path / "in.jsonl", records), tmp_path / "out.jsonl")
    first, too_long = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert first["step_rewards"] == pytest.approx(rm.score_steps(["2+3?"], [["2+3=5", "so 5"]])[0], abs=1e-6)
    assert first["step_aggregates"]["min"] == min(first["step_rewards"])
    assert first["step_aggregates"]["last"] == first["step_rewards"][-1]
    assert too_long["step_rewards"] is None and "max_length" in too_long["error"]
    with pytest.raises(DataError, match="in.jsonl:1: field 'steps'"):
        score_file(rm, write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q", "steps": "one"}]), tmp_path / "o.jsonl")
