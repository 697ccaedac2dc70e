"""`rewardkit train` and `rewardkit demo`."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import Overrides, console, print_json, quiet_transformers, user_errors
from rewardkit.config import TrainConfig, load_config
from rewardkit.errors import ConfigError
from rewardkit.evaluation.probes import evaluate_probes
from rewardkit.evaluation.report import ModelResult, console_table
from rewardkit.io import write_json_atomic
from rewardkit.scoring.loading import load_scorer
from rewardkit.training.launch import train as train_model

OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Replace a model already in OUTPUT_DIR/model (by default that is an error).")]


@user_errors
def train(
    config: Annotated[Path, typer.Option(metavar="FILE", help="YAML training config.")],
    output_dir: Annotated[Path, typer.Option(metavar="DIR", help="Where the model, metrics and checkpoints go.")],
    set: Overrides = None,
    ensemble: Annotated[int | None, typer.Option(min=1, metavar="K", help=(
        "Train K members on resamples into one ensemble directory (the config's train.ensemble)."))] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a reward model from a YAML config."""
    if ensemble is not None and any(o.startswith("train.ensemble=") for o in set or []):
        raise ConfigError("--ensemble and --set train.ensemble=... both set the ensemble size; give one")
    overrides = [*(set or []), *([f"train.ensemble={ensemble}"] if ensemble else [])]
    run_training(load_config(config, overrides), output_dir, overwrite)


@user_errors
def demo(
    output_dir: Annotated[Path, typer.Option(metavar="DIR", help="Where the model and metrics go.")] = Path(
        "runs/demo"),
    set: Overrides = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Train and evaluate a model on the bundled data (CPU, minutes).

    The bundled backbone and preference data: nothing is downloaded. The table adds the bundled bias probes.
    """
    config_file = resources.files("rewardkit") / "configs" / "demo.yaml"
    with resources.as_file(config_file) as path:
        config = load_config(path, set or [])
    run_training(config, output_dir, overwrite, probes=True)


def run_training(config: TrainConfig, output_dir: Path, overwrite: bool, *, probes: bool = False) -> None:
    """Train, then print the summary and the held-out metrics (with `probes`, also the bias probes', added to
    metrics.json); under torchrun only rank 0 prints."""
    quiet_transformers()
    result = train_model(config, output_dir, overwrite=overwrite)
    if not is_main_process():
        return
    summary = result.summary
    precision = "bf16 autocast" if summary["precision"] == "bf16" else "fp32"
    unit = summary["task"]
    members = f"{summary['ensemble']} members, " if summary.get("ensemble") else ""
    dropped = summary["dropped_too_long"]["train"]
    console.print(f"trained {members}{what_was_trained(summary)} ({dropped} dropped: "
                  f"too long for max_length) in {summary['train_seconds']} s: {summary['examples_per_s']} {unit}/s, "
                  f"{precision}")
    if result.metrics and "overall" not in result.metrics:  # label tasks: ratings, verifiers, steps
        print_json(result.metrics)
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    elif result.metrics:
        if probes:
            result.metrics["probes"] = evaluate_probes(load_scorer(result.model_dir))[0]
            write_json_atomic(output_dir / "metrics.json", result.metrics)
        console.print(console_table([ModelResult("model", result.metrics, predictions=[])], title="held-out accuracy"))
        if "ensemble" in result.metrics:
            found = result.metrics["ensemble"]
            members = ", ".join(f"{a:.4f}" for a in found["member_accuracy"])
            console.print(f"members' accuracy: {members}; accuracy on the most / least certain quarter: "
                          f"{found['by_uncertainty']['most_certain']:.4f} / "
                          f"{found['by_uncertainty']['least_certain']:.4f}")
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    console.print(f"model:   {result.model_dir}")


def what_was_trained(summary: dict) -> str:
    """"152 pairs (19 steps of 8) of 2975 usable": what the steps saw, against the usable training set."""
    return (f"{summary['trained_examples_seen']} {summary['task']} ({summary['steps']} steps of "
            f"{summary['batch_size']}) of {summary['trained_examples']} usable")


def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch (RANK is set by both), or a plain single process."""
    return os.environ.get("RANK", "0") == "0"
