"""`rewardkit bon`: the best sample per prompt by the model's rewards, best-vs-worst pairs `rewardkit train` reads,
ensemble objectives through the one combiner, and what cannot be scored counted."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from conftest import assert_refused
from optimization.pools import pool_line, tiny_ensemble, tiny_rm, write_pool
from rewardkit.cli.app import app
from rewardkit.data.preferences import load_preferences
from rewardkit.models.ensemble import RewardEnsemble, combine_rewards
from rewardkit.models.reward_model import RewardModel

runner = CliRunner()
RESPONSES = ["the good answer", "a rude answer", "the bad answer is rude", "helpful and good", "tea"]


@pytest.fixture(scope="module")
def llama_rm_dir(llama_dir, tmp_path_factory):
    return tiny_rm(llama_dir, tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def ensemble_dir(llama_dir, tmp_path_factory):
    return tiny_ensemble(llama_dir, tmp_path_factory.mktemp("ensemble"))


@pytest.fixture
def pool(tmp_path):
    lines = [pool_line(p, i, f"{r} {p}") for p in ("a", "b", "c") for i, r in enumerate(RESPONSES)]
    lines.append(pool_line("c", 5, "good " * 80))  # longer than max_length 64: cannot be scored
    lines.append(pool_line("d", 0, "good " * 80))  # a prompt with nothing scored
    lines.append(pool_line("a", 0, "a repeated line"))
    return write_pool(tmp_path / "pool.jsonl", lines)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_best_per_prompt_and_best_vs_worst_pairs(pool, llama_rm_dir, tmp_path):
    best, pairs = tmp_path / "best.jsonl", tmp_path / "pairs.jsonl"
    result = runner.invoke(app, ["bon", "--pool", str(pool), "--model", str(llama_rm_dir), "--output", str(best),
                                 "--pairs", str(pairs), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    rm = RewardModel.from_pretrained(llama_rm_dir)
    picked = {line["prompt_id"]: line for line in read_jsonl(best)}
    assert set(picked) == {"a", "b", "c"}
    for prompt_id, line in picked.items():
        texts = [f"{r} {prompt_id}" for r in RESPONSES]
        rewards = rm.score([line["prompt"]] * len(texts), texts)
        assert line["response"] == texts[max(range(5), key=rewards.__getitem__)]
        assert line["reward"] == pytest.approx(max(rewards), abs=1e-5)
        assert line["precision"] == "fp32" and line["candidates"] == (6 if prompt_id == "c" else 5)
    loaded = load_preferences(str(pairs)).pairs
    assert len(loaded) == 3 and all(p.chosen == picked[p.id.split("-")[0]]["response"] for p in loaded)
    assert "best of 17 samples for 3 of 4 prompts (fp32)" in result.stdout
    assert "2 samples could not be scored" in result.stderr and "1 prompts had none scored" in result.stderr
    assert "1 repeated (prompt_id, sample_index) lines" in result.stderr


def test_ensemble_objectives_combine_the_members_z_scores(pool, ensemble_dir, tmp_path):
    best = tmp_path / "best.jsonl"
    result = runner.invoke(app, ["bon", "--pool", str(pool), "--model", str(ensemble_dir), "--output", str(best),
                                 "--objective", "mean-std", "--std-weight", "2", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    ensemble = RewardEnsemble.from_pretrained(ensemble_dir)
    line = next(line for line in read_jsonl(best) if line["prompt_id"] == "b")
    texts = [f"{r} b" for r in RESPONSES]
    members = ensemble.score([line["prompt"]] * 5, texts).members
    combined = combine_rewards(members, "mean-minus-std", 2.0)[0]
    assert line["objective"] == "ensemble mean-minus-std (std weight 2)"
    assert line["reward"] == pytest.approx(max(combined), abs=1e-5) and math.isfinite(line["reward"])


def test_ensemble_objectives_are_refused_for_one_model(pool, llama_rm_dir, tmp_path):
    assert_refused(runner.invoke(app, ["bon", "--pool", str(pool), "--model", str(llama_rm_dir), "--output",
                                       str(tmp_path / "best.jsonl"), "--objective", "min"]),
                   "combine an ensemble's members", not_written=(tmp_path / "best.jsonl",))


def test_a_process_model_scores_each_response_by_its_steps_aggregate(llama_dir, tmp_path):
    prm = RewardModel.from_backbone(str(llama_dir), max_length=64, step_separator="<|step|>")
    prm.spec = prm.spec.model_copy(update={"task": "process"})  # what training a process model saves
    prm.save_pretrained(tmp_path / "prm")
    lines = [pool_line("a", i, text) for i, text in enumerate(["one\n\ntwo\n\nthree", "tea\n\nrain", "maps"])]
    best = tmp_path / "best.jsonl"
    result = runner.invoke(app, ["bon", "--pool", str(write_pool(tmp_path / "pool.jsonl", lines)), "--model",
                                 str(tmp_path / "prm"), "--output", str(best), "--step-aggregate", "last",
                                 "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    steps = [["one", "two", "three"], ["tea", "rain"], ["maps"]]
    last = [p[-1] for p in RewardModel.from_pretrained(tmp_path / "prm").score_steps(["question a?"] * 3, steps)]
    (line,) = read_jsonl(best)
    assert line["sample_index"] == max(range(3), key=last.__getitem__)
    assert line["reward"] == pytest.approx(max(last), abs=1e-5)
