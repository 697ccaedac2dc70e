"""The CLI is a thin layer: each verb runs end to end, and user errors are one line, not a traceback."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from conftest import write_jsonl
from rewardkit.cli.app import app
from rewardkit.errors import TrainingError
from rewardkit.training.recipe import TrainResult

runner = CliRunner()


def test_train_then_score_then_audit(llama_dir, toy_data, tmp_path):
    config = {
        "model": {"backbone": str(llama_dir), "max_length": 64},
        "data": {"train": [{"path": str(toy_data)}], "eval_fraction": 0.25},
        "optim": {"lr": 3e-3},
        "train": {"batch_size": 8, "epochs": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "run"),
                                 "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output and (tmp_path / "run" / "metrics.json").is_file()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["epochs"] == 2

    write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q?", "response": "a good helpful answer"}])
    result = runner.invoke(app, ["score", "--model", str(tmp_path / "run" / "model"),
                                 "--input", str(tmp_path / "in.jsonl"),
                                 "--output", str(tmp_path / "out.jsonl"), "--normalize", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "out.jsonl").read_text())
    assert isinstance(scored["reward"], float) and isinstance(scored["reward_normalized"], float)

    piped = runner.invoke(app, ["score", "--model", str(tmp_path / "run" / "model"), "--input", "-", "--output", "-",
                                "--normalize", "--precision", "fp32"], input=(tmp_path / "in.jsonl").read_text())
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout) == scored and piped.stderr == "scored 1 records in fp32\n"

    result = runner.invoke(app, ["data", "audit", str(toy_data), "--model", str(tmp_path / "run" / "model"),
                                 "--output", str(tmp_path / "audit.json")])
    assert result.exit_code == 0, result.output
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["tokens"]["max_length"] == 64 and audit["tokens"]["dropped_pairs"] == 0
    assert json.loads(result.stdout) == audit, "stdout is the audit itself, unwrapped"


def test_prepare_splits_by_prompt(toy_data, tmp_path):
    result = runner.invoke(app, ["data", "prepare", str(toy_data), "--output-dir", str(tmp_path / "out"),
                                 "--eval-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    read = lambda name: [json.loads(line) for line in (tmp_path / "out" / name).read_text().splitlines()]  # noqa: E731
    train, held_out = read("train.jsonl"), read("eval.jsonl")
    assert len(train) + len(held_out) == 48 and held_out
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held_out}


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": 5}\n')
    result = runner.invoke(app, ["data", "audit", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl:1" in result.output and "rejected" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["score", "--model", str(tmp_path), "--input", str(bad),
                                 "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not a rewardkit model" in result.output



def test_a_bug_keeps_its_traceback_and_only_rewardkit_errors_become_one_line(toy_data, tmp_path, monkeypatch):
    """The CLI's error boundary is RewardkitError: an internal ValueError is not dressed up as a user error."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": [{"path": str(toy_data)}]}}))

    def broken(config, output_dir, **options):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr("rewardkit.cli.train.train_model", broken)
    result = runner.invoke(app, ["train", "--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert isinstance(result.exception, ValueError) and "error:" not in result.output

    def refused(config, output_dir, **options):
        raise TrainingError("loss became nan at step 1")

    monkeypatch.setattr("rewardkit.cli.train.train_model", refused)
    result = runner.invoke(app, ["train", "--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 1 and "error: loss became nan at step 1" in result.output
    assert isinstance(result.exception, SystemExit)


def fake_training(monkeypatch, summary: dict) -> list[dict]:
    """`rewardkit.cli.train.train_model` replaced by one that returns `summary`; returns the options it got."""
    calls = []

    def trained(config, output_dir, **options):
        calls.append(options)
        return TrainResult(output_dir / "model", None, summary)

    monkeypatch.setattr("rewardkit.cli.train.train_model", trained)
    return calls


SUMMARY = {"precision": "fp32", "task": "pairs", "dropped_too_long": {"train": 3}, "trained_examples": 2975,
           "train_seconds": 1.5, "examples_per_s": 101.3, "steps": 19, "batch_size": 8, "trained_examples_seen": 152}


def test_train_passes_overwrite_and_reports_the_pairs_it_saw(toy_data, tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": [{"path": str(toy_data)}]}, "train": {"batch_size": 8}}))
    calls = fake_training(monkeypatch, SUMMARY)
    result = runner.invoke(app, ["train", "--config", str(config), "--output-dir", str(tmp_path), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert calls == [{"overwrite": True}]
    assert result.stdout.splitlines()[0] == ("trained 152 pairs (19 steps of 8) of 2975 usable (3 dropped: too long "
                                             "for max_length) in 1.5 s: 101.3 pairs/s, fp32")


def test_only_rank_0_prints_the_training_summary(toy_data, tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": [{"path": str(toy_data)}]}}))
    fake_training(monkeypatch, SUMMARY)
    monkeypatch.setenv("RANK", "1")
    result = runner.invoke(app, ["train", "--config", str(config), "--output-dir", str(tmp_path)])
    assert result.exit_code == 0 and result.output == ""

def test_ensemble_training_and_weighted_scoring_from_the_command_line(llama_dir, toy_data, tmp_path):
    config = {
        "model": {"backbone": str(llama_dir), "max_length": 64},
        "data": {"train": [{"path": str(toy_data)}], "eval_fraction": 0.25},
        "train": {"batch_size": 8, "epochs": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "ens"),
                                 "--ensemble", "2"])
    assert result.exit_code == 0, result.output
    assert "trained 2 members" in result.output and "most / least certain" in result.output
    assert (tmp_path / "ens" / "model" / "ensemble.json").is_file()
    write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q?", "response": "a good helpful answer"}])
    result = runner.invoke(app, ["score", "--model", str(tmp_path / "ens" / "model" / "member-0"), "--input",
                                 str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"), "--weight", "x"])
    assert result.exit_code == 1 and "expected NAME=NUMBER" in result.output


def test_the_demo_adds_the_bias_probes_to_its_table_and_metrics(llama_dir, toy_data, tmp_path, capsys):
    from rewardkit.cli.train import run_training
    from rewardkit.config import load_config
    from rewardkit.evaluation.probes import PROBES

    config = {"model": {"backbone": str(llama_dir), "max_length": 512},
              "data": {"train": [{"path": str(toy_data)}], "eval_fraction": 0.25},
              "train": {"batch_size": 8, "epochs": 1}}
    run_training(load_config(None, [], base=config), tmp_path / "run", False, probes=True)
    probes = json.loads((tmp_path / "run" / "metrics.json").read_text())["probes"]
    assert set(probes) == set(PROBES) and all(p["n"] > 0 for p in probes.values())
    assert "probe over-refusal (complies with a benign request)" in capsys.readouterr().out
