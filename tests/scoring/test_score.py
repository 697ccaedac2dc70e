"""Batch scoring of files through the saved spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import save_tiny_model, write_jsonl
from rewardkit.cli.app import app as cli_app
from rewardkit.errors import ConfigError, DataError
from rewardkit.models.ensemble import RewardEnsemble, save_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
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


def test_a_multi_attribute_file_is_encoded_and_forwarded_once(llama_dir, tmp_path):
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(str(llama_dir), max_length=48, attributes=["helpful", "verbose"])
    rm.spec = rm.spec.model_copy(update={"task": "pointwise", "attribute_weights": [1.0, 2.0],
                                         "normalization": Normalization(mean=0.5, std=2.0, n=10)})
    records = [{"prompt": "tea?", "response": "yes please"}, {"prompt": "q", "response": "word " * 100}]
    forwards, forward = [], rm.forward
    rm.forward = lambda *args, **kwargs: forwards.append(1) or forward(*args, **kwargs)
    score_file(rm, write_jsonl(tmp_path / "in.jsonl", records), tmp_path / "out.jsonl", normalize=True)
    assert len(forwards) == 1, "one forward pass for the rewards and the attributes"
    fitted, too_long = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert list(fitted) == ["prompt", "response", "reward", "reward_normalized", "attributes", "precision"]
    helpful, verbose = rm.score_attributes(["tea?"], ["yes please"])[0].values()
    assert fitted["attributes"] == pytest.approx({"helpful": helpful, "verbose": verbose}, abs=1e-6)
    assert fitted["reward"] == pytest.approx(helpful + 2.0 * verbose, abs=1e-6)
    assert fitted["reward_normalized"] == pytest.approx((fitted["reward"] - 0.5) / 2.0, abs=1e-6)
    assert list(too_long) == ["prompt", "response", "reward", "error", "precision"] and too_long["reward"] is None


# ---- ensembles ----------------------------------------------------------------------------------------------------
ENSEMBLE_RECORDS = [{"prompt": "tea?", "response": "yes please"}, {"prompt": "q", "response": "a good answer"},
                    {"prompt": "q", "response": "word " * 100}]


@pytest.fixture(scope="module")
def ensemble_dir(llama_dir, tmp_path_factory) -> Path:
    """Two members saved as an ensemble whose manifest says mean - 2 * std."""
    root = tmp_path_factory.mktemp("scored-ensemble")
    members = [save_tiny_model(llama_dir, root / "a", 5, Normalization(mean=0.1, std=0.4, n=10)),
               save_tiny_model(llama_dir, root / "b", 6, Normalization(mean=-0.3, std=1.2, n=10))]
    save_ensemble(root / "ensemble", members, mode="mean-minus-std", std_weight=2.0)
    return root / "ensemble"


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_ensemble_file_gets_the_ensembles_rewards_and_uncertainty(ensemble_dir, tmp_path):
    ensemble = RewardEnsemble.from_pretrained(ensemble_dir)
    source = write_jsonl(tmp_path / "in.jsonl", ENSEMBLE_RECORDS)
    assert score_file(ensemble, source, tmp_path / "out.jsonl") == 3
    *fitted, too_long = read_output(tmp_path / "out.jsonl")
    expected = ensemble.score(["tea?", "q"], ["yes please", "a good answer"])
    assert [r["reward"] for r in fitted] == pytest.approx(expected.rewards, abs=1e-6)
    assert [r["uncertainty"] for r in fitted] == pytest.approx(expected.uncertainty, abs=1e-6)
    mean = [sum(values) / 2 for values in zip(*expected.members, strict=True)]
    assert [r["reward"] for r in fitted] == pytest.approx(
        [m - 2.0 * u for m, u in zip(mean, expected.uncertainty, strict=True)], abs=1e-6), "the saved mean - 2 * std"
    assert too_long["reward"] is None and "max_length" in too_long["error"] and "uncertainty" not in too_long
    with pytest.raises(ConfigError, match="without --normalize"):
        score_file(ensemble, source, tmp_path / "x.jsonl", normalize=True)


def test_cli_score_takes_an_ensemble_directory_and_its_overrides(ensemble_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", ENSEMBLE_RECORDS[:2])
    runner = CliRunner()

    def cli_rewards(*options: str) -> list[float]:
        result = runner.invoke(cli_app, ["score", "--model", str(ensemble_dir), "--input", str(source), "--output",
                                         str(tmp_path / "out.jsonl"), "--precision", "fp32", *options])
        assert result.exit_code == 0, result.output
        return [r["reward"] for r in read_output(tmp_path / "out.jsonl")]

    members = RewardEnsemble.from_pretrained(ensemble_dir).score(["tea?", "q"], ["yes please", "a good answer"])
    mean = [sum(values) / 2 for values in zip(*members.members, strict=True)]
    spread = members.uncertainty
    assert cli_rewards() == pytest.approx(members.rewards, abs=1e-6)
    assert cli_rewards("--std-weight", "0.5") == pytest.approx(
        [m - 0.5 * s for m, s in zip(mean, spread, strict=True)], abs=1e-6)
    assert cli_rewards("--ensemble-mode", "min") == pytest.approx(
        [min(values) for values in zip(*members.members, strict=True)], abs=1e-6)
    plain = runner.invoke(cli_app, ["score", "--model", str(ensemble_dir / "member-0"), "--input", str(source),
                                    "--output", str(tmp_path / "o.jsonl"), "--ensemble-mode", "min"])
    assert plain.exit_code == 1 and "apply to ensembles" in " ".join(plain.output.split())


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
