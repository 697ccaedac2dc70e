"""`rewardkit eval` end to end on tiny random-head models: output files whose numbers agree, the paired
comparison, the fitted temperature, score caching, subsets, RewardBench 1 and 2, and one-line errors."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_report import expected_text
from typer.testing import CliRunner

from browser import CHROMIUM, render_in_chromium
from conftest import toy_pairs, write_jsonl
from rewardkit.cli.app import app
from rewardkit.data.records import BestOfGroup, PreferencePair
from rewardkit.evaluation.inputs import load_eval_data
from rewardkit.evaluation.preference import evaluate_pairs
from rewardkit.evaluation.run import PREDICTION_KEYS, model_names
from rewardkit.metrics.preference import fit_temperature, pair_credit
from rewardkit.metrics.rewardbench import rewardbench2_accuracy, rewardbench2_summary
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import ScoringSpec

runner = CliRunner()
MAX_LENGTH = 64


def save_random_model(backbone: Path, directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    RewardModel.from_backbone(str(backbone), max_length=MAX_LENGTH).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    return save_random_model(llama_dir, tmp_path_factory.mktemp("llama-rm"), seed=0)


@pytest.fixture(scope="module")
def bert_model_dir(bert_dir, tmp_path_factory) -> Path:
    return save_random_model(bert_dir, tmp_path_factory.mktemp("bert-rm"), seed=1)


def run_eval(*args) -> tuple[str, dict, list[dict]]:
    """Run `rewardkit eval ARGS`; returns (console output, metrics.json, predictions.jsonl)."""
    args = [str(arg) for arg in args]
    result = runner.invoke(app, ["eval", "--bootstrap", "200", *args])
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return result.output, json.loads((out / "metrics.json").read_text()), predictions


def test_bf16_eval_reports_its_largest_reward_difference_and_flips_against_fp32(model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", records(toy_pairs(40)))
    _, fp32, fp32_predictions = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "fp32",
                                         "--precision", "fp32")
    output, bf16, bf16_predictions = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "bf16",
                                              "--precision", "bf16", "--precision-check", "40")
    reference = {p["id"]: p for p in fp32_predictions}
    differences = [abs(p[side] - reference[p["id"]][side]) for p in bf16_predictions
                   for side in ("reward_chosen", "reward_rejected")]
    flips = sum(np.sign(p["margin"]) != np.sign(reference[p["id"]]["margin"]) for p in bf16_predictions)  # ties too
    assert bf16["precision"] == "bf16" and 0 < max(differences) < 0.1, "bf16 really ran, close to fp32"
    assert bf16["bf16_vs_fp32"] == {"pairs": 40, "max_reward_diff": pytest.approx(max(differences)),
                                    "preference_flips": flips}
    assert f"against fp32 on 40 pairs the largest reward difference is {max(differences):.4g}" in output
    sampled = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "sampled", "--precision", "bf16",
                       "--precision-check", "8")[1]
    assert sampled["bf16_vs_fp32"]["pairs"] == 8 and fp32["precision"] == "fp32"


def run_failing_eval(*args) -> str:
    result = runner.invoke(app, ["eval", *[str(arg) for arg in args]])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    return " ".join(result.output.split())  # rich wraps long lines


def records(pairs: list[PreferencePair]) -> list[dict]:
    return [pair.to_dict() for pair in pairs]


def test_metrics_agree_with_predictions_and_the_report_is_written(model_dir, tmp_path):
    pairs = toy_pairs(40)
    too_long = PreferencePair(prompt="q", chosen="word " * 200, rejected="short", id="too-long")
    data = write_jsonl(tmp_path / "toy.jsonl", records(pairs + [too_long]))
    output, metrics, predictions = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "out",
                                            "--precision", "fp32")

    assert metrics["model"] == str(model_dir) and metrics["dropped_too_long"] == 1 and metrics["skipped_records"] == 0
    assert metrics["precision"] == "fp32" and "bf16_vs_fp32" not in metrics
    assert len(predictions) == 40 and all(set(p) == set(PREDICTION_KEYS) for p in predictions)
    assert [p["id"] for p in predictions] == [pair.id for pair in pairs]
    for p in predictions:
        assert p["margin"] == pytest.approx(p["reward_chosen"] - p["reward_rejected"])
        assert p["correct"] == (p["margin"] > 0)
    correct = np.array([p["correct"] for p in predictions], dtype=float)
    assert metrics["overall"]["accuracy"] == pytest.approx(correct.mean()) and metrics["overall"]["n"] == 40
    low, high = metrics["overall"]["ci95"]
    assert low <= metrics["overall"]["accuracy"] <= high
    for name in ("s0", "s1"):
        mine = [p["correct"] for p in predictions if p["subset"] == name]
        assert metrics["subsets"][name]["n"] == len(mine)
        assert metrics["subsets"][name]["accuracy"] == pytest.approx(np.mean(mine))
    length_difference = np.array([p["chosen_length"] - p["rejected_length"] for p in predictions], dtype=float)
    assert metrics["length_baseline"]["accuracy"] == pytest.approx(pair_credit(length_difference).mean())

    rm = RewardModel.from_pretrained(model_dir)
    expected = rm.score([pairs[3].prompt], [pairs[3].chosen])[0]
    assert predictions[3]["reward_chosen"] == pytest.approx(expected, abs=1e-5), "scored through the spec"

    accuracy_text = f"{metrics['overall']['accuracy']:.4f}"
    assert accuracy_text in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000  # figures inlined
    assert "Preference evaluation" in output and accuracy_text in output and "1 pairs not scored" in output


def test_two_models_are_compared_with_a_paired_bootstrap(model_dir, bert_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", records(toy_pairs(40)))
    _, metrics, predictions = run_eval("--model", model_dir, "--model", bert_model_dir, "--data", data,
                                       "--out", tmp_path / "out")
    first, second = model_dir.name, bert_model_dir.name
    assert set(metrics) == {"models", "comparison"} and list(metrics["models"]) == [first, second]
    assert set(metrics["comparison"]) == {second}
    comparison = metrics["comparison"][second]
    accuracy = {name: metrics["models"][name]["overall"]["accuracy"] for name in (first, second)}
    assert comparison["reference"] == first and comparison["n"] == 40
    assert comparison["difference"] == pytest.approx(accuracy[second] - accuracy[first])
    assert comparison["ci95"][0] <= comparison["difference"] <= comparison["ci95"][1]
    assert sorted({p["model"] for p in predictions}) == sorted([first, second]) and len(predictions) == 80
    assert f"{second} − {first}" in (tmp_path / "out" / "report.md").read_text()


def test_fit_temperature_is_saved_in_the_spec_and_calibrates_probabilities(model_dir, tmp_path):
    model = shutil.copytree(model_dir, tmp_path / "model")
    data = write_jsonl(tmp_path / "toy.jsonl", records(toy_pairs(40)))
    output, metrics, predictions = run_eval("--model", model, "--data", data, "--out", tmp_path / "out",
                                            "--fit-temperature")
    temperature = metrics["calibration"]["temperature"]
    assert temperature == pytest.approx(fit_temperature(np.array([p["margin"] for p in predictions])))
    assert ScoringSpec.load(model).temperature == pytest.approx(temperature)
    reloaded = RewardModel.from_pretrained(model)
    assert reloaded.spec.temperature == pytest.approx(temperature)
    assert reloaded.preference_probability(1.0, 0.25) == pytest.approx(1 / (1 + math.exp(-0.75 / temperature)))
    assert ScoringSpec.load(model_dir).temperature is None, "only the evaluated directory changes"
    assert "saved temperature" in output


def test_each_unique_response_is_scored_once(model_dir, monkeypatch):
    chosen, rejected = ["a good answer", "a good helpful answer"], ["rude", "a bad answer", "a bad rude answer"]
    pairs = [PreferencePair(prompt="the same question?", chosen=chosen[i % 2], rejected=rejected[i % 3], id=f"p{i}")
             for i in range(12)]
    rows = []
    forward = RewardModel.forward

    def counting_forward(self, input_ids, attention_mask, token_type_ids=None):
        rows.append(input_ids.shape[0])
        return forward(self, input_ids, attention_mask, token_type_ids)

    monkeypatch.setattr(RewardModel, "forward", counting_forward)
    metrics = evaluate_pairs(RewardModel.from_pretrained(model_dir), pairs, bootstrap=0)
    assert metrics["overall"]["n"] == 12
    assert sum(rows) == 5, "2 distinct chosen + 3 distinct rejected responses, each scored once"


def test_subsets_from_a_named_field_and_from_file_names(model_dir, tmp_path):
    plain = [{key: value for key, value in record.items() if key != "subset"} for record in records(toy_pairs(20))]
    alpha = write_jsonl(tmp_path / "alpha.jsonl", plain[:8])
    beta = tmp_path / "beta.jsonl.gz"
    with gzip.open(beta, "wt", encoding="utf-8") as file:
        file.write("".join(json.dumps(record) + "\n" for record in plain[8:]))
    data = load_eval_data([str(alpha), str(beta)])
    assert [pair.subset for pair in data.pairs] == ["alpha"] * 8 + ["beta"] * 12
    assert load_eval_data([str(alpha)]).pairs[0].subset is None, "one file: no subsets made up"

    labelled = write_jsonl(tmp_path / "labelled.jsonl",
                           [record | {"category": f"cat-{i % 3}"} for i, record in enumerate(plain)])
    _, metrics, predictions = run_eval("--model", model_dir, "--data", labelled, "--out", tmp_path / "out",
                                       "--subset-field", "category")
    assert set(metrics["subsets"]) == {"cat-0", "cat-1", "cat-2"}
    assert [p["subset"] for p in predictions] == [f"cat-{i % 3}" for i in range(20)]


def test_repeated_ids_are_made_unique(tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", records(toy_pairs(3)) * 2)
    assert [pair.id for pair in load_eval_data([str(data)]).pairs] == [
        "toy-0", "toy-1", "toy-2", "toy-0#2", "toy-1#2", "toy-2#2"]


def test_rewardbench_subsets_get_section_scores(model_dir, tmp_path):
    names = ["alpacaeval-easy", "hep-cpp", "math-prm"]
    pairs = [PreferencePair(prompt=p.prompt, chosen=p.chosen, rejected=p.rejected, id=p.id, subset=names[i % 3])
             for i, p in enumerate(toy_pairs(30))]
    data = write_jsonl(tmp_path / "rb.jsonl", records(pairs))
    _, metrics, _ = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "out")
    sections = metrics["rewardbench"]["sections"]
    assert set(sections) == {"Chat", "Reasoning"}
    assert sections["Chat"] == pytest.approx(metrics["subsets"]["alpacaeval-easy"]["accuracy"])
    assert metrics["rewardbench"]["score"] == pytest.approx((sections["Chat"] + sections["Reasoning"]) / 2)


def group(id: str, subset: str, chosen: list[float], rejected: list[float]) -> tuple[BestOfGroup, dict]:
    """A best-of-n prompt whose completions are named by index, with their rewards."""
    texts = [f"{id} answer {i}" for i in range(len(chosen) + len(rejected))]
    prompt_group = BestOfGroup(id, subset, f"prompt {id}", texts[: len(chosen)], texts[len(chosen) :])
    return prompt_group, dict(zip(texts, chosen + rejected, strict=True))


def test_rewardbench2_scores_on_hand_built_prompts():
    built = [
        group("m1", "Math", [3.0], [1.0, 2.0, 0.0]),  # chosen on top: 1
        group("m2", "Math", [2.0], [2.0, 1.0, 0.0]),  # two-way tie at the top: 1/2
        group("m3", "Math", [0.0], [1.0, 0.0, 0.0]),  # beaten: 0
        group("f1", "Focus", [5.0], [1.0, 1.0, 1.0]),
        group("ref:7", "Ties", [4.0], [1.0, 2.0]),  # margin 2, spread 0
        group("tied:7", "Ties", [4.0, 3.0], [1.0]),  # margin 3 - 1 = 2, spread 1
        group("f2", "Focus", [9.0], [1.0, 1.0, 1.0]),  # has a completion too long to score
    ]
    rewards = {text: reward for _, rewards in built for text, reward in rewards.items()}
    rewards["f2 answer 3"] = None
    summary = rewardbench2_summary([g for g, _ in built], lambda g, text: rewards[text])

    ties = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * math.tanh(2 / 1 - 1)  # both accurate, 2 > 1 twice, tie-breaker
    assert summary["subsets"] == pytest.approx({"Focus": 1.0, "Math": 0.5, "Ties": ties})
    assert summary["score"] == pytest.approx((1.0 + 0.5 + ties) / 3)
    assert summary["prompts"] == {"Focus": 1, "Math": 3, "Ties": 2} and summary["dropped_too_long"] == 1


def test_rewardbench2_layout_end_to_end(model_dir, tmp_path):
    rows = [
        {"id": "1", "subset": "Math", "prompt": "2+2?", "chosen": ["4"], "rejected": ["5", "22", "four?"]},
        {"id": "2", "subset": "Math", "prompt": "3+3?", "chosen": ["6"], "rejected": ["33", "9", "7"]},
        {"id": "3", "subset": "Focus", "prompt": "tea?", "chosen": ["yes please"], "rejected": ["maps", "rain", "no"]},
        {"id": "ref:1", "subset": "Ties", "prompt": "a prime?", "chosen": ["2"], "rejected": ["4", "6"]},
        {"id": "tied:1", "subset": "Ties", "prompt": "a prime?", "chosen": ["2", "3", "5"], "rejected": ["4", "6"]},
    ]
    data = write_jsonl(tmp_path / "rb2.jsonl", rows)
    _, metrics, predictions = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "out")
    assert len(predictions) == 3 * 3 + 2 + 6 and metrics["overall"]["n"] == 17
    summary = metrics["rewardbench2"]
    assert set(summary["subsets"]) == {"Math", "Focus", "Ties"}

    def credit(record_id: str) -> float:
        mine = [p for p in predictions if p["id"].startswith(f"{record_id}/")]
        return rewardbench2_accuracy(mine[0]["reward_chosen"], [p["reward_rejected"] for p in mine])

    assert summary["subsets"]["Math"] == pytest.approx((credit("1") + credit("2")) / 2)
    assert summary["subsets"]["Focus"] == pytest.approx(credit("3"))
    assert summary["score"] == pytest.approx(np.mean(list(summary["subsets"].values())))
    assert "RewardBench 2" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian: apt-get install chromium)")
def test_eval_report_renders_with_the_numbers_of_metrics_json(model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", records(toy_pairs(40)))
    _, metrics, _ = run_eval("--model", model_dir, "--data", data, "--out", tmp_path / "out")
    rendered = render_in_chromium(tmp_path / "out" / "report.html", tmp_path)
    assert rendered.probe_done and len(rendered.images) == 4
    assert all(int(image["data-natural-width"]) > 0 for image in rendered.images)
    assert any(cell["data-metric"] == "overall.accuracy" for cell in rendered.metric_cells)
    for cell in rendered.metric_cells:
        assert cell["text"] == expected_text(metrics, json.loads(cell["data-metric-path"])), cell["data-metric"]


def test_model_names_are_short_and_unique(tmp_path):
    assert model_names([tmp_path / "a" / "model", tmp_path / "b" / "model"]) == ["a/model", "b/model"]
    assert model_names([tmp_path / "x" / "m1", tmp_path / "y" / "m2"]) == ["m1", "m2"]
    with pytest.raises(ValueError, match="given twice"):
        model_names([tmp_path / "m", tmp_path / "m"])


def test_bad_input_is_one_clear_sentence(model_dir, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "q", "chosen": "a", "rejected": 5}] * 3)
    message = run_failing_eval("--model", model_dir, "--data", bad, "--out", tmp_path / "o", "--on-bad-record", "skip")
    assert "bad.jsonl: no usable preference pairs (skipped 3 bad records" in message and "data audit" in message

    toy = write_jsonl(tmp_path / "toy.jsonl", records(toy_pairs(4)))
    message = run_failing_eval("--model", model_dir, "--data", toy, "--out", tmp_path / "o", "--subset-field", "topic")
    assert "has a field 'topic'" in message and "--subset-field" in message

    message = run_failing_eval("--model", tmp_path, "--data", toy, "--out", tmp_path / "o")
    assert "has no scoring_spec.json: it is not a rewardkit model" in message
    assert not (tmp_path / "o").exists()
