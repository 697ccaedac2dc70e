"""Long inputs: pairs whose response alone exceeds the model's max_length, in `rewardkit eval`, `score` and `serve`.

A tiny Llama saved with a small window (24 tokens) and pairs longer than it: drop (the default) counts them and
reports coverage; `--max-length` widens the window up to the backbone's position limit (512) and raises coverage;
`--long-pairs truncate` scores them with the response's tail cut and flags each one. Above the limit is refused.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import asgi_client, assert_refused, write_jsonl
from rewardkit.cli.app import app
from rewardkit.errors import ConfigError
from rewardkit.evaluation.run import EvalConfig, evaluate
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import SPEC_FILE, Normalization, ScoringSpec
from rewardkit.scoring.files import score_file
from rewardkit.serving.app import create_app
from rewardkit.serving.requests import ServeConfig

runner = CliRunner()
WINDOW = 24
LONG = "the good answer is helpful " * 8  # about 40 tokens: over 24, within 128
ITEMS = [{"prompt": "q", "response": "ok"}, {"prompt": "q", "response": LONG}]


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("long") / "rm"
    RewardModel.from_backbone(str(llama_dir), max_length=WINDOW).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def rm(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    """Subset "short": 4 pairs that fit; subset "long": 2 pairs that fit and 2 whose rejected response does not;
    subset "all-long": 1 pair that does not fit."""
    short = [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad", "subset": "short"} for i in range(4)]
    long = [{"prompt": f"l{i}", "chosen": "good", "rejected": LONG if i < 2 else "bad", "subset": "long"}
            for i in range(4)]
    all_long = {"prompt": "a", "chosen": LONG, "rejected": "x", "subset": "all-long"}
    return write_jsonl(tmp_path / "pairs.jsonl", [*short, *long, all_long])


def strict_json(path: Path):
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def run_eval(model_dir: Path, data: Path, out: Path, *options: str) -> tuple[str, dict, list[dict]]:
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                                 "--bootstrap", "0", *options])
    assert result.exit_code == 0, result.output
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return result.output, strict_json(out / "metrics.json"), predictions


# ---- rewardkit eval ------------------------------------------------------------------------------------------------
def test_drop_reports_coverage_overall_and_per_subset(model_dir, pairs_file, tmp_path):
    output, metrics, predictions = run_eval(model_dir, pairs_file, tmp_path / "out")
    overall = metrics["overall"]
    assert (overall["n"], overall["total"]) == (6, 9) and overall["coverage"] == pytest.approx(6 / 9)
    assert metrics["subsets"]["short"]["coverage"] == 1.0 and metrics["subsets"]["long"]["coverage"] == 0.5
    assert (metrics["subsets"]["long"]["n"], metrics["subsets"]["long"]["total"]) == (2, 4)
    assert metrics["unscored_subsets"] == {"all-long": 1}
    assert (metrics["dropped_too_long"], metrics["truncated"], metrics["max_length"]) == (3, 0, WINDOW)
    assert metrics["long_pairs"] == "drop" and not any(p["truncated"] for p in predictions)
    assert "3 of 9 pairs not scored" in " ".join(output.split())
    assert "Coverage" in output and "coverage: long" in output
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Coverage (scored / total pairs)" in report and "0.6667" in report and "0.5000" in report


def test_max_length_raises_coverage_and_leaves_the_saved_spec_alone(model_dir, pairs_file, tmp_path):
    saved = (model_dir / SPEC_FILE).read_text()
    _, metrics, predictions = run_eval(model_dir, pairs_file, tmp_path / "out", "--max-length", "128")
    assert metrics["overall"]["coverage"] == 1.0 and metrics["subsets"]["long"]["coverage"] == 1.0
    assert (metrics["max_length"], metrics["dropped_too_long"], metrics["unscored_subsets"]) == (128, 0, {})
    assert len(predictions) == 9 and not any(p["truncated"] for p in predictions)
    assert (model_dir / SPEC_FILE).read_text() == saved


def test_truncate_scores_every_pair_and_flags_the_cut_ones(model_dir, pairs_file, tmp_path):
    _, metrics, predictions = run_eval(model_dir, pairs_file, tmp_path / "out", "--long-pairs", "truncate")
    assert metrics["overall"]["coverage"] == 1.0 and metrics["unscored_subsets"] == {}
    assert (metrics["truncated"], metrics["dropped_too_long"], metrics["long_pairs"]) == (3, 0, "truncate")
    flagged = [p["subset"] for p in predictions if p["truncated"]]
    assert sorted(flagged) == ["all-long", "long", "long"]


def test_fit_temperature_with_a_wider_window_saves_only_the_temperature(model_dir, pairs_file, tmp_path):
    copy = tmp_path / "rm"
    copy.mkdir()
    for file in model_dir.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    evaluate(EvalConfig(models=[copy], data=[str(pairs_file)], out_dir=tmp_path / "out", bootstrap=0,
                        fit_temperature=True, max_length=128, long_pairs="truncate", progress=False))
    saved = ScoringSpec.load(copy)
    assert saved.max_length == WINDOW and saved.temperature is not None


def test_eval_refuses_a_window_over_the_position_limit(model_dir, pairs_file, tmp_path):
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(pairs_file),
                                 "--out", str(tmp_path / "out"), "--max-length", "600"])
    assert_refused(result, "max_length 600", "512 tokens", not_written=(tmp_path / "out" / "metrics.json",))


def test_the_python_api_refuses_it_too(model_dir, pairs_file, tmp_path):
    with pytest.raises(ConfigError, match="position embeddings hold 512"):
        evaluate(EvalConfig(models=[model_dir], data=[str(pairs_file)], out_dir=tmp_path / "out", max_length=513,
                            progress=False))
    with pytest.raises(ConfigError, match="long pairs must be one of"):
        EvalConfig(models=[model_dir], data=[str(pairs_file)], out_dir=tmp_path / "out", long_pairs="cut")


# ---- rewardkit score -----------------------------------------------------------------------------------------------
@pytest.fixture
def items_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "items.jsonl", ITEMS)


def scored(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_drops_truncates_or_widens(rm, items_file, tmp_path):
    score_file(rm, items_file, tmp_path / "drop.jsonl")
    short, long = scored(tmp_path / "drop.jsonl")
    assert long["reward"] is None and "max_length (24 tokens)" in long["error"] and "truncated" not in short

    score_file(rm, items_file, tmp_path / "cut.jsonl", long_pairs="truncate")
    cut_short, cut_long = scored(tmp_path / "cut.jsonl")
    assert cut_long["truncated"] is True and isinstance(cut_long["reward"], float) and "error" not in cut_long
    assert cut_short == short, "a pair that fits is scored as before"

    score_file(rm, items_file, tmp_path / "wide.jsonl", max_length=128)
    _, wide_long = scored(tmp_path / "wide.jsonl")
    assert "truncated" not in wide_long and wide_long["reward"] != cut_long["reward"]
    assert rm.spec.max_length == WINDOW and rm.spec.long_responses == "drop", "the caller's model is unchanged"


def test_an_ensemble_flags_a_pair_any_member_truncated(llama_dir, bert_dir, items_file, tmp_path):
    def member(backbone: Path, window: int) -> RewardModel:
        rm = RewardModel.from_backbone(str(backbone), max_length=window)
        rm.spec = rm.spec.model_copy(update={"normalization": Normalization(mean=0.0, std=1.0, n=10)})
        return rm

    torch.manual_seed(0)
    ensemble = RewardEnsemble([member(llama_dir, WINDOW), member(bert_dir, 128)])
    score_file(ensemble, items_file, tmp_path / "drop.jsonl")
    assert [r["reward"] is None for r in scored(tmp_path / "drop.jsonl")] == [False, True]
    score_file(ensemble, items_file, tmp_path / "cut.jsonl", long_pairs="truncate")
    short, long = scored(tmp_path / "cut.jsonl")
    assert "truncated" not in short and long["truncated"] is True and "uncertainty" in long


def test_score_cli_names_the_window_in_its_summary(model_dir, items_file, tmp_path):
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(items_file), "--output", str(out),
                                 "--max-length", "128", "--long-pairs", "truncate", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "scored 2 records in fp32 (max_length 128, long pairs truncated)" in result.stdout
    assert all(r["reward"] is not None for r in scored(out))


def test_score_cli_refuses_a_window_over_the_position_limit(model_dir, items_file, tmp_path):
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(items_file), "--output", str(out),
                                 "--max-length", "513"])
    assert_refused(result, "max_length 513", "512 tokens", not_written=(out,))


# ---- rewardkit serve -----------------------------------------------------------------------------------------------
def post_items(app, items: list[dict]) -> tuple[int, dict, dict]:
    async def call():
        async with asgi_client(app) as client:
            reply = await client.post("/v1/score", json={"items": items})
            return reply.status_code, reply.json(), (await client.get("/v1/models")).json()

    return asyncio.run(call())



def test_serve_drop_answers_413(rm):
    status, body, models = post_items(create_app({"rm": rm}), ITEMS)
    assert status == 413 and body["items"] == [1]
    assert (models["data"][0]["max_length"], models["data"][0]["long_pairs"]) == (WINDOW, "drop")


def test_serve_truncate_scores_with_a_warning_per_cut_item(rm):
    status, body, models = post_items(create_app({"rm": rm}, ServeConfig(long_pairs="truncate")), ITEMS)
    assert status == 200 and len(body["rewards"]) == 2
    assert [w for w in body["warnings"] if "tail cut" in w] == [
        "item 1: its response is longer than model 'rm''s max_length: scored with its tail cut"]
    assert models["data"][0]["long_pairs"] == "truncate"


def test_serve_max_length_scores_the_long_item_and_is_shown_in_models(rm):
    status, body, models = post_items(create_app({"rm": rm}, ServeConfig(max_length=128)), ITEMS)
    assert status == 200 and body["warnings"] == []
    assert models["data"][0]["max_length"] == 128 and models["data"][0]["spec"]["max_length"] == 128
    assert rm.spec.max_length == WINDOW


def test_serve_refuses_a_window_over_the_position_limit(rm, model_dir):
    with pytest.raises(ConfigError, match="position embeddings hold 512"):
        create_app({"rm": rm}, ServeConfig(max_length=1000))
    result = runner.invoke(app, ["serve", "--model", str(model_dir), "--max-length", "1000", "--port", "0"])
    assert_refused(result, "max_length 1000", "512 tokens")
