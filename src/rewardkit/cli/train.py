"""`rewardkit train` and `rewardkit demo`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import Overrides, console, quiet_transformers, user_errors
from rewardkit.config import load_config
from rewardkit.evaluation.report import ModelResult, console_table
from rewardkit.training.launch import train as train_model


@user_errors
def train(
    config: Annotated[Path, typer.Option(help="YAML training config.")],
    output_dir: Annotated[Path, typer.Option(help="Where the model, metrics and checkpoints go.")],
    set: Overrides = None,
    ensemble: Annotated[int | None, typer.Option(
        min=1, help="Train K members on resamples into one ensemble directory (train.ensemble).")] = None,
) -> None:
    """Train a reward model from a YAML config."""
    overrides = [*(set or []), *([f"train.ensemble={ensemble}"] if ensemble else [])]
    run_training(load_config(config, overrides), output_dir)


@user_errors
def demo(
    output_dir: Annotated[Path, typer.Option(help="Where the model and metrics go.")] = Path("runs/demo"),
    set: Overrides = None,
) -> None:
    """Train a reward model on the bundled data with the bundled backbone (CPU, minutes), then evaluate it."""
    config_file = resources.files("rewardkit") / "configs" / "demo.yaml"
    with resources.as_file(config_file) as path:
        config = load_config(path, set or [])
    run_training(config, output_dir)


def run_training(config, output_dir: Path) -> None:
    quiet_transformers()
    result = train_model(config, output_dir)
    summary = result.summary
    precision = "bf16 autocast" if summary["precision"] == "bf16" else "fp32"
    unit = summary["task"]
    members = f"{summary['ensemble']} members, " if summary.get("ensemble") else ""
    dropped = summary["dropped_too_long"]["train"]
    console.print(f"trained {members}on {summary['trained_examples']} {unit} ({dropped} dropped: "
                  f"too long for max_length) in {summary['train_seconds']} s: {summary['examples_per_s']} {unit}/s, "
                  f"{precision}")
    if result.metrics and "overall" not in result.metrics:  # label tasks: ratings, verifiers, steps
        console.print_json(json.dumps(result.metrics))
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    elif result.metrics:
        console.print(console_table([ModelResult("model", result.metrics, predictions=[])], title="held-out accuracy"))
        if "ensemble" in result.metrics:
            found = result.metrics["ensemble"]
            members = ", ".join(f"{a:.4f}" for a in found["member_accuracy"])
            console.print(f"members' accuracy: {members}; accuracy on the most / least certain quarter: "
                          f"{found['by_uncertainty']['most_certain']:.4f} / "
                          f"{found['by_uncertainty']['least_certain']:.4f}")
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    console.print(f"model:   {result.model_dir}")
