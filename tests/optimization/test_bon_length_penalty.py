"""Best-of-N with a length penalty: the objective is `score - L * response tokens`, and each best line says what
was applied."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from optimization.pools import pool_line, tiny_ensemble, tiny_rm, write_pool
from rewardkit.cli.app import app
from rewardkit.models.reward_model import RewardModel
from rewardkit.optimization.bon import best_of_n
from rewardkit.scoring.length import response_tokens

runner = CliRunner()
RESPONSES = ["tea", "the good answer", "helpful and good " * 4, "a rude answer that goes on " * 3]


@pytest.fixture(scope="module")
def rm_dir(llama_dir, tmp_path_factory):
    return tiny_rm(llama_dir, tmp_path_factory.mktemp("rm"))


@pytest.fixture
def pool(tmp_path):
    return write_pool(tmp_path / "pool.jsonl", [pool_line(p, i, f"{r} {p}") for p in "ab"
                                                 for i, r in enumerate(RESPONSES)])


def best_lines(path) -> dict[str, dict]:
    return {line["prompt_id"]: line for line in map(json.loads, path.read_text().splitlines())}


def test_the_penalized_objective_is_the_reward_minus_lambda_times_tokens(rm_dir, pool, tmp_path):
    rm = RewardModel.from_pretrained(rm_dir)
    best_of_n(pool, rm_dir, tmp_path / "penalized.jsonl", length_penalty=0.05)
    for prompt_id, line in best_lines(tmp_path / "penalized.jsonl").items():
        prompt = f"question {prompt_id}?"
        raw = rm.score([prompt] * len(RESPONSES), [f"{r} {prompt_id}" for r in RESPONSES])
        tokens = [rm.spec.encode(rm.tokenizer, prompt, f"{r} {prompt_id}").response_length for r in RESPONSES]
        objective = [r - 0.05 * n for r, n in zip(raw, tokens, strict=True)]
        i = line["sample_index"]
        assert i == max(range(len(RESPONSES)), key=lambda k: (objective[k], -k))
        assert (line["length_penalty"], line["response_tokens"]) == (0.05, tokens[i])
        assert line["reward_raw"] == pytest.approx(raw[i], abs=1e-5)
        assert line["reward_raw"] - line["reward"] == pytest.approx(0.05 * tokens[i], abs=1e-12)
        assert line["objective"] == "reward - 0.05 * response tokens"


def test_a_large_penalty_picks_a_shortest_sample_for_a_model_and_an_ensemble(llama_dir, rm_dir, pool, tmp_path):
    ensemble_dir = tiny_ensemble(llama_dir, tmp_path / "ens")
    rm = RewardModel.from_pretrained(rm_dir)  # the members share its tokenizer
    shortest = {p: min(response_tokens(rm, [f"question {p}?"] * len(RESPONSES), [f"{r} {p}" for r in RESPONSES]))
                for p in "ab"}
    for model in (rm_dir, ensemble_dir):
        result = runner.invoke(app, ["bon", "--pool", str(pool), "--model", str(model), "--output",
                                     str(tmp_path / "best.jsonl"), "--length-penalty", "100", "--precision", "fp32"])
        assert result.exit_code == 0, result.output
        assert {p: line["response_tokens"] for p, line in best_lines(tmp_path / "best.jsonl").items()} == shortest
        (tmp_path / "best.jsonl").unlink()
