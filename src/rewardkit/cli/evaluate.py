"""`rewardkit eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import (
    BatchSizeOption,
    EnsembleModeOption,
    FormatOption,
    LongPairsOption,
    MaxLengthOption,
    OnBadRecordOption,
    PrecisionOption,
    SeedOption,
    StdWeightOption,
    console,
    print_json,
    quiet_transformers,
    refuse_ensemble_options,
    user_errors,
)
from rewardkit.errors import ConfigError
from rewardkit.evaluation.report import ModelResult, console_table
from rewardkit.evaluation.run import EvalConfig, evaluate
from rewardkit.models.ensemble import is_ensemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE


@user_errors
def evaluate_command(
    model: Annotated[list[Path], typer.Option(metavar="DIR", help=(
        "Trained reward model or ensemble directory; repeat to compare models (the first is the reference)."))],
    data: Annotated[list[str], typer.Option(metavar="FILE", help="Preference file or hub dataset (repeatable).")],
    out: Annotated[Path, typer.Option(
        metavar="DIR", help="Writes metrics.json, predictions.jsonl, report.html and report.md here.")],
    subset_field: Annotated[str | None, typer.Option(
        metavar="FIELD", help="Record field naming each pair's subset (default: the record's subset).")] = None,
    bootstrap: Annotated[int, typer.Option(
        min=0, metavar="N", help="Bootstrap resamples for the 95% CIs (0: none).")] = 1000,
    seed: SeedOption = 0,
    fit_temperature: Annotated[bool, typer.Option(
        "--fit-temperature", help="Save the fitted calibration temperature in each model's scoring spec.")] = False,
    format: FormatOption = "auto",
    on_bad_record: OnBadRecordOption = "error",
    batch_size: BatchSizeOption = SCORING_BATCH_SIZE,
    ensemble_mode: EnsembleModeOption = None,
    std_weight: StdWeightOption = None,
    max_length: MaxLengthOption = None,
    long_pairs: LongPairsOption = "drop",
    precision: PrecisionOption = "auto",
    precision_check: Annotated[int, typer.Option(min=0, metavar="N", help=(
        "In bf16, score N sampled pairs again in fp32 and report the largest reward difference and the "
        "preference flips (0: skip)."))] = 64,
    probes: Annotated[bool, typer.Option("--probes", help=(
        "Also score the bundled bias probes (over-refusal, harmful-refusal, sycophancy, agreement): accuracy and "
        "CI per probe in the table, metrics.json (probes) and the report."))] = False,
) -> None:
    """Evaluate reward models on preference files; write a report.

    metrics.json holds one model's metrics, or {"models": {name: metrics}, "comparison": {name: paired bootstrap
    against the first model}} for several. With --fit-temperature, P(a preferred over b) = sigmoid((reward_a -
    reward_b) / T) is calibrated by the saved temperature T. Pointwise and process models are scored against the
    labels of rating, outcome and step files. Coverage (scored / total pairs) stands beside every accuracy:
    --max-length widens the window (up to the backbone's limit), --long-pairs truncate scores the rest. --probes
    adds pairs in which the right reply complies, refuses, corrects or agrees (rewardkit/probes/README.md).
    """
    ensembles = [directory for directory in model if is_ensemble(directory)]
    refuse_ensemble_options(ensemble_mode, std_weight, has_ensemble=bool(ensembles),
                            why_not="no --model directory is an ensemble")
    if fit_temperature and ensembles:
        raise ConfigError(f"--fit-temperature saves a temperature into one model's scoring spec; {ensembles[0]} is "
                          "an ensemble (evaluate its members for their temperatures)")
    quiet_transformers()
    config = EvalConfig(models=model, data=data, out_dir=out, subset_field=subset_field, bootstrap=bootstrap,
                        seed=seed, fit_temperature=fit_temperature, format=format, on_bad_record=on_bad_record,
                        batch_size=batch_size, ensemble_mode=ensemble_mode, std_weight=std_weight,
                        max_length=max_length, long_pairs=long_pairs, precision=precision,
                        precision_check=precision_check, probes=probes)
    results = evaluate(config)
    if "overall" not in results[0].metrics:  # scored against labels (ratings, verifier outcomes, steps)
        for result in results:
            print_json(result.metrics)
        console.print(f"metrics: {config.out_dir / 'metrics.json'}")
        return
    console.print(console_table(results))
    print_eval_notes(config, results)


def print_eval_notes(config: EvalConfig, results: list[ModelResult]) -> None:
    """Skipped records, pairs too long to score or truncated, subsets left unscored, saved temperatures and where
    the outputs are."""
    skipped = results[0].metrics["skipped_records"]
    if skipped:
        console.print(f"skipped {skipped} bad records")
    for directory, result in zip(config.models, results, strict=True):
        metrics = result.metrics
        cost = metrics.get("bf16_vs_fp32")
        if cost and cost["pairs"]:
            console.print(f"{result.name}: scored in bf16; against fp32 on {cost['pairs']} pairs the largest reward "
                          f"difference is {cost['max_reward_diff']:.4g}, {cost['preference_flips']} preferences flip")
        if metrics["dropped_too_long"]:
            console.print(f"{result.name}: {metrics['dropped_too_long']} of {metrics['overall']['total']} pairs not "
                          f"scored (a response is longer than max_length {metrics['max_length']}; see --max-length "
                          "and --long-pairs)")
        if metrics["truncated"]:
            console.print(f"{result.name}: {metrics['truncated']} pairs scored with a response's tail cut")
        if metrics["unscored_subsets"]:
            console.print(f"{result.name}: no pair scored in subsets {', '.join(metrics['unscored_subsets'])}")
        if config.fit_temperature:
            console.print(f"{result.name}: saved temperature {result.metrics['calibration']['temperature']:.4f} "
                          f"to {directory / 'scoring_spec.json'}")
    console.print(f"report:  {config.out_dir / 'report.html'}")
