"""`rewardkit eval`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import console, quiet_transformers, user_errors
from rewardkit.evaluation.report import ModelResult, console_table
from rewardkit.evaluation.run import EvalConfig, evaluate


@user_errors
def evaluate_command(
    model: Annotated[list[Path], typer.Option(
        help="Trained reward model directory; repeat to compare models (the first is the reference).")],
    data: Annotated[list[str], typer.Option(help="Preference file or hub dataset (repeatable).")],
    out: Annotated[Path, typer.Option(help="Writes metrics.json, predictions.jsonl, report.html and report.md here.")],
    subset_field: Annotated[str | None, typer.Option(help="Record field naming each pair's subset.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs (0: none).")] = 1000,
    seed: int = 0,
    fit_temperature: Annotated[bool, typer.Option(
        help="Save the fitted calibration temperature in each model's scoring spec.")] = False,
    format: Annotated[str, typer.Option(
        help="auto, rewardbench2, or an importer: pairs, implicit, sharegpt, ranked, pandalm.")] = "auto",
    on_bad_record: Annotated[str, typer.Option(
        help="error: stop at the first bad record; skip: count it and go on.")] = "error",
    batch_size: int = 32,
    ensemble_mode: Annotated[str | None, typer.Option(
        help="Ensembles: mean, min or mean-minus-std (default: the mode saved with the ensemble).")] = None,
    std_weight: Annotated[float | None, typer.Option(help="Ensembles: k in mean - k * std.")] = None,
) -> None:
    """Score preference files with one or more reward models; write metrics, predictions and an HTML report.

    metrics.json holds one model's metrics, or {"models": {name: metrics}, "comparison": {name: paired bootstrap
    against the first model}} for several. With --fit-temperature, P(a preferred over b) = sigmoid((reward_a -
    reward_b) / T) is calibrated by the saved temperature T.
    """
    quiet_transformers()
    config = EvalConfig(models=model, data=data, out_dir=out, subset_field=subset_field, bootstrap=bootstrap,
                        seed=seed, fit_temperature=fit_temperature, format=format, on_bad_record=on_bad_record,
                        batch_size=batch_size, ensemble_mode=ensemble_mode, std_weight=std_weight)
    results = evaluate(config)
    if "overall" not in results[0].metrics:  # scored against labels (ratings, verifier outcomes, steps)
        for result in results:
            console.print_json(json.dumps(result.metrics))
        console.print(f"metrics: {config.out_dir / 'metrics.json'}")
        return
    console.print(console_table(results))
    print_eval_notes(config, results)


def print_eval_notes(config: EvalConfig, results: list[ModelResult]) -> None:
    """Skipped records, pairs too long to score, saved temperatures and where the outputs are."""
    skipped = results[0].metrics["skipped_records"]
    if skipped:
        console.print(f"skipped {skipped} bad records")
    for directory, result in zip(config.models, results, strict=True):
        if result.metrics["dropped_too_long"]:
            console.print(f"{result.name}: {result.metrics['dropped_too_long']} pairs not scored "
                          "(a response is longer than the model's max_length)")
        if config.fit_temperature:
            console.print(f"{result.name}: saved temperature {result.metrics['calibration']['temperature']:.4f} "
                          f"to {directory / 'scoring_spec.json'}")
    console.print(f"report:  {config.out_dir / 'report.html'}")
