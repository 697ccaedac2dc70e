"""The bias probes: the bundled files are what the build script writes, each probe has the shape its README
describes, `probe_metrics` counts as by hand, and `rewardkit eval --probes` puts them in metrics.json, the
console table, probe_predictions.jsonl and the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import SHARED_DATA, assert_refused, save_tiny_model, toy_pairs, write_jsonl
from rewardkit.cli.app import app
from rewardkit.data.records import PreferencePair
from rewardkit.evaluation.inputs import EvalData
from rewardkit.evaluation.probes import PROBES, PROBES_DIR, load_probes, probe_metrics
from rewardkit.models.reward_model import RewardModel

runner = CliRunner()
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_probes.py"
COUNTS = {"over-refusal": 152, "harmful-refusal": 97, "sycophancy": 150, "agreement": 150}  # probes/README.md


def build_script():
    spec = importlib.util.spec_from_file_location("build_probes", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs the shared upstream data")
def test_the_bundled_probes_are_what_the_build_script_writes(tmp_path):
    script = build_script()
    for name, pairs in script.build(SHARED_DATA).items():
        script.save_preferences(pairs, tmp_path / f"{name}.jsonl")
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (PROBES_DIR / f"{name}.jsonl").read_bytes(), name


def reply(text) -> str:
    """A reply's text, whether plain or one assistant message (MT-Bench pairs are conversations)."""
    return text if isinstance(text, str) else text[-1]["content"]


def test_each_probe_has_its_documented_size_and_shape():
    script = build_script()
    data = load_probes()
    by_probe = {name: [p for p in data.pairs if p.subset.startswith(f"{name}/")] for name in PROBES}
    assert {name: len(pairs) for name, pairs in by_probe.items()} == COUNTS
    assert len({p.id for p in data.pairs}) == len(data.pairs)
    assert all(reply(p.rejected) in script.REFUSALS and reply(p.chosen) not in script.REFUSALS
               for p in by_probe["over-refusal"])
    assert all(p.chosen in script.REFUSALS and p.rejected not in script.REFUSALS
               for p in by_probe["harmful-refusal"])
    for name, (chosen_opening, rejected_opening) in {"sycophancy": ("Not quite", "Yes"),
                                                     "agreement": ("Yes", "Not quite")}.items():
        assert all(p.chosen.startswith(chosen_opening) and p.rejected.startswith(rejected_opening)
                   for p in by_probe[name])
    syc_questions = {p.id.split("/")[1] for p in by_probe["sycophancy"]}
    assert not syc_questions & {p.id.split("/")[1] for p in by_probe["agreement"]}  # disjoint questions


def test_probe_metrics_count_as_by_hand():
    pairs = [PreferencePair(prompt="p", chosen="c", rejected="r", id=f"{probe}/{i}", subset=f"{probe}/{part}")
             for probe, part in (("sycophancy", "gsm8k"), ("over-refusal", "mt-bench"), ("over-refusal", "gsm8k"))
             for i in range(4)]
    # over-refusal: 3 of its 8 pairs scored, 2 right; the chosen reply is the longer one in 1 of them
    predictions = [{"id": "x", "subset": "over-refusal/mt-bench", "reward_chosen": 1.0, "reward_rejected": 0.0,
                    "chosen_length": 9, "rejected_length": 3},
                   {"id": "y", "subset": "over-refusal/mt-bench", "reward_chosen": 0.0, "reward_rejected": 2.0,
                    "chosen_length": 2, "rejected_length": 3},
                   {"id": "z", "subset": "over-refusal/gsm8k", "reward_chosen": 5.0, "reward_rejected": 4.0,
                    "chosen_length": 1, "rejected_length": 3}]
    metrics = probe_metrics(predictions, EvalData(pairs), bootstrap=100, seed=0)
    refusal = metrics["over-refusal"]
    assert (refusal["n"], refusal["total"], refusal["coverage"]) == (3, 8, 3 / 8)
    assert refusal["accuracy"] == pytest.approx(2 / 3) and refusal["length_baseline_accuracy"] == pytest.approx(1 / 3)
    assert refusal["subsets"]["mt-bench"]["accuracy"] == 0.5 and refusal["subsets"]["gsm8k"]["n"] == 1
    assert refusal["expects"] == PROBES["over-refusal"] and 0 <= refusal["ci95"][0] <= refusal["ci95"][1] <= 1
    assert metrics["sycophancy"] == {"expects": PROBES["sycophancy"], "total": 4, "coverage": 0.0}  # none scored
    assert set(metrics) == {"over-refusal", "sycophancy"}


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("probe-rm"), max_length=128)


def test_eval_with_probes_reports_each_probe_everywhere(model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", [p.to_dict() for p in toy_pairs(12)])
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                                 "--bootstrap", "50", "--probes", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    lines = [json.loads(line) for line in (out / "probe_predictions.jsonl").read_text().splitlines()]
    assert set(metrics["probes"]) == set(PROBES)
    for name, block in metrics["probes"].items():
        correct = [line["correct"] for line in lines if line["subset"].startswith(f"{name}/")]
        assert block["n"] == len(correct) > 0 and block["accuracy"] == pytest.approx(np.mean(correct))
        assert block["total"] == COUNTS[name] and block["ci95"] is not None
        assert f"probe {name} ({PROBES[name]})" in result.output
    assert len({line["id"] for line in lines}) == len(lines)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 12  # the probes stay out of predictions
    page = (out / "report.html").read_text()
    assert "<h2>Bias probes</h2>" in page and 'data-metric="probes.sycophancy.accuracy"' in page
    assert 'data-metric="probes.over-refusal.subsets.mt-bench.accuracy"' in page
    assert "## Bias probes" in (out / "report.md").read_text()


def test_eval_without_probes_has_none(model_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", [p.to_dict() for p in toy_pairs(6)])
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "e"),
                                 "--bootstrap", "0", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "probes" not in json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert not (tmp_path / "e" / "probe_predictions.jsonl").exists() and "probe " not in result.output


def test_probes_refuse_a_model_scored_against_labels(llama_dir, tmp_path):
    torch.manual_seed(0)
    prm = RewardModel.from_backbone(str(llama_dir), max_length=64, step_separator="<|im_end|>")
    prm.spec = prm.spec.model_copy(update={"task": "process"})  # what training a process model saves
    prm.save_pretrained(tmp_path / "prm")
    steps = write_jsonl(tmp_path / "steps.jsonl", [{"prompt": "1+1?", "steps": ["1+1=2"], "labels": [True]}])
    result = runner.invoke(app, ["eval", "--model", str(tmp_path / "prm"), "--data", str(steps), "--out",
                                 str(tmp_path / "e"), "--probes"])
    assert_refused(result, "leave out --probes")
