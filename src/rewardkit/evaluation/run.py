"""Evaluating reward models on preference files: what `rewardkit eval` runs.

    results = evaluate(EvalConfig(models=[Path("runs/demo/model")], data=["test.jsonl"], out_dir=Path("runs/eval")))
    results[0].metrics["overall"]["accuracy"], results[0].metrics["subsets"]["hh-rlhf"]["accuracy"]
    metrics = evaluate_pairs(RewardModel.from_pretrained("runs/demo/model"), pairs)   # in memory, writes nothing

Each model scores every unique (prompt, response) once, through its own scoring spec (`score_responses`), so a
response shared by many pairs costs one forward row. Lengths for the length baseline are response tokens, as in
training's periodic evaluation (`rewardkit.tasks.comparisons.evaluate_comparisons`), so both report the same numbers.

`evaluate` writes into `out_dir`:

    metrics.json       one model: its `preference_metrics` dict plus "model" (the directory), "dropped_too_long"
                       (pairs with a response longer than the spec's max_length), "truncated" (pairs scored
                       with a response's tail cut), "max_length" (the window used), "long_pairs", "total" and
                       "coverage" (scored / total pairs) in "overall" and each subset, "unscored_subsets"
                       ({subset: pairs} where none was scored), "skipped_records", "precision" (bf16 or
                       fp32) and, in bf16, "bf16_vs_fp32": {"pairs", "max_reward_diff", "preference_flips"} on a
                       sample of `precision_check` pairs scored again in fp32;
                       several models: {"models": {name: that dict}, "comparison": {name: {"reference",
                       "difference", "ci95", "n"}}}, each model after the first against the first: strict
                       accuracy difference (this - reference) on the pairs both scored, paired bootstrap CI
                       with `probes`, "probes": {probe: accuracy, CI, coverage, length baseline, parts} on the
                       bundled bias probes (`rewardkit.evaluation.probes`)
    predictions.jsonl  one line per model and pair: id, subset, model, reward_chosen, reward_rejected, margin,
                       correct (chosen reward strictly higher), chosen_length, rejected_length, truncated
    probe_predictions.jsonl   with `probes`: the same lines for the probes' pairs (subset "PROBE/PART")
    report.html, report.md   `rewardkit.evaluation.report.write_report`

Subsets: a record's own `subset` field; with several files, pairs without one take the file name (its stem).
`subset_field="category"` reads that field instead. RewardBench v1 subset names fill metrics["rewardbench"].

RewardBench 2 (allenai/reward-bench-2: `prompt`, `chosen: [str]`, `rejected: [str, ...]`, `subset`, `id`) is
detected from the first record. Every chosen x rejected pair is evaluated as usual, and metrics["rewardbench2"]
holds the benchmark's own scores: best-of-n credit per prompt (`rewardbench2_accuracy`) averaged per subset, the
Ties subset by its rule (`rewardbench2_ties_score`, ids "ref:N" / "tied:N"), and the final score, the unweighted
mean of the subset scores.

With `fit_temperature`, the temperature fitted on each model's margins (metrics["calibration"]["temperature"]) is
saved into its `scoring_spec.json`; `RewardModel.preference_probability` then gives calibrated P(a preferred over b).

`max_length` scores with a wider (or narrower) window than the model was saved with, up to its backbone's position
limit, and `long_pairs="truncate"` scores pairs whose response alone exceeds it with the response's tail cut
(`RewardModel.windowed`); neither changes the saved spec.

Options and `out_dir` are checked before any model or data is loaded. An undefined metric (NaN) is None in the
results and null in the files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rewardkit.errors import ConfigError, ModelError
from rewardkit.evaluation.inputs import EvalData, load_eval_data
from rewardkit.evaluation.labels import evaluate_label_files, evaluates_labels, is_rating_file
from rewardkit.evaluation.preference import evaluate_ensemble, evaluate_model
from rewardkit.evaluation.probes import evaluate_probes, load_probes
from rewardkit.evaluation.report import ModelResult, write_report
from rewardkit.io import check_output_dir, finite_or_none, write_json_atomic, write_jsonl_atomic, write_text_atomic
from rewardkit.metrics.preference import paired_bootstrap_difference
from rewardkit.models.ensemble import RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel
from rewardkit.models.spec import LongResponses, ScoringSpec, check_long_responses, require_at_least
from rewardkit.precision import Precision, default_device, resolve_precision
from rewardkit.progress import counting_progress

PREDICTION_KEYS = ("id", "subset", "model", "reward_chosen", "reward_rejected", "margin", "correct",
                   "chosen_length", "rejected_length", "truncated")


@dataclass
class EvalConfig:
    """What `rewardkit eval` was asked for; the first model is the reference of the comparison."""

    models: list[Path]
    data: list[str]
    out_dir: Path
    subset_field: str | None = None  # None: the record's `subset`, else the file stem when there are several files
    bootstrap: int = 1000  # resamples for every 95% CI; 0 turns CIs off
    seed: int = 0
    fit_temperature: bool = False  # save each model's fitted temperature into its scoring spec
    format: str = "auto"  # or a format of `load_preferences`: rewardbench2, pairs, implicit, ...
    on_bad_record: Literal["error", "skip"] = "error"
    batch_size: int = SCORING_BATCH_SIZE
    progress: bool = True
    ensemble_mode: str | None = None  # ensembles: mean, min or mean-minus-std instead of the saved mode
    std_weight: float | None = None  # ensembles: k of mean-minus-std instead of the saved one
    max_length: int | None = None  # tokens per pair instead of the spec's, up to the backbone's position limit
    long_pairs: LongResponses = "drop"  # a response alone over max_length: drop the pair, or truncate it
    precision: Precision = "fp32"  # bf16 weights, or auto: bf16 where the hardware is fast at it
    precision_check: int = 64  # bf16: pairs scored again in fp32 to measure what bf16 costs; 0 turns it off
    probes: bool = False  # also score the bundled bias probes (`rewardkit.evaluation.probes`)

    def __post_init__(self) -> None:
        require_at_least("batch_size", self.batch_size, 1)
        require_at_least("bootstrap", self.bootstrap, 0)
        require_at_least("precision_check", self.precision_check, 0)
        resolve_precision(self.precision)
        if self.max_length is not None:
            require_at_least("max_length", self.max_length, 1)
        check_long_responses(self.long_pairs)


def evaluate(config: EvalConfig) -> list[ModelResult]:
    """Evaluate every model on the data, write metrics, predictions and the report; returns one result per model."""
    check_output_dir(config.out_dir)
    # a directory without a spec fails before any data is read
    specs = {d: ScoringSpec.load(d) for d in config.models if not is_ensemble(d)}
    names = model_names(config.models)
    rating_files = any(s.task == "pointwise" for s in specs.values()) and all(map(is_rating_file, config.data))
    labelled = [evaluates_labels(spec, rating_files) for spec in specs.values()]
    if any(labelled):
        if config.probes:
            raise ModelError("the bias probes are preference pairs; a model scored against labels (a process model, "
                             "or a pointwise model on rating files) cannot be probed: leave out --probes")
        if not all(labelled) or len(specs) < len(config.models):
            raise ModelError("some models are scored against labels and others on preference pairs: evaluate them "
                             "separately")
        return evaluate_labels(config, names)
    data = load_eval_data(config.data, subset_field=config.subset_field, format=config.format,
                          on_bad_record=config.on_bad_record)
    probe_data = load_probes() if config.probes else None
    results = []
    with counting_progress(enabled=config.progress) as progress:
        for name, directory in zip(names, config.models, strict=True):
            options = {"name": name, "bootstrap": config.bootstrap, "seed": config.seed,
                       "batch_size": config.batch_size, "progress": progress}
            model = load_directory(directory, config, config.precision)
            result = evaluate_loaded(model, data, options)
            probes = {}
            if probe_data is not None:
                probes["probes"], result.probe_predictions = evaluate_probes(model, data=probe_data, **options)
            if config.fit_temperature and not is_ensemble(directory):
                save_temperature(specs[directory], directory, result.metrics["calibration"]["temperature"])
            precision = resolve_precision(config.precision)
            cost = {"bf16_vs_fp32": precision_cost(result, directory, data, config, options)} if (
                precision == "bf16" and config.precision_check) else {}
            result.metrics = finite_or_none(result.metrics | {"model": str(directory), "long_pairs": config.long_pairs,
                                                              "skipped_records": len(data.skipped),
                                                              "precision": precision} | cost | probes)
            results.append(result)
    reference = results[0]
    for result in results[1:]:
        result.comparison = {reference.name: compare(reference, result, bootstrap=config.bootstrap, seed=config.seed)}
    write_outputs(config.out_dir, results)
    return results


def evaluate_labels(config: EvalConfig, names: list[str]) -> list[ModelResult]:
    """Pointwise and process models on label files: metrics.json (by model when several), predictions.jsonl (one
    line per model and record: its outputs, or its step probabilities and predicted first error) and report.md."""
    results = []
    for name, directory in zip(names, config.models, strict=True):
        rm = load_model(directory, config, config.precision)
        metrics, predictions = evaluate_label_files(rm, config.data, on_bad_record=config.on_bad_record,
                                                    bootstrap=config.bootstrap)
        document = metrics | {"model": str(directory), "max_length": rm.spec.max_length}
        results.append(ModelResult(name=name, metrics=finite_or_none(document),
                                   predictions=[finite_or_none(p | {"model": name}) for p in predictions]))
    document = results[0].metrics if len(results) == 1 else {"models": {r.name: r.metrics for r in results}}
    write_json_atomic(config.out_dir / "metrics.json", document)
    write_jsonl_atomic(config.out_dir / "predictions.jsonl", (p for r in results for p in r.predictions))
    write_text_atomic(config.out_dir / "report.md", "\n\n".join(
        f"# {r.name}\n\n```json\n{json.dumps(r.metrics, indent=2)}\n```" for r in results) + "\n")
    return results


def evaluate_directory(directory: Path, data: EvalData, config: EvalConfig, precision: str,
                       options: dict) -> ModelResult:
    """The saved model or ensemble in `directory`, loaded in `precision`, evaluated on `data`."""
    return evaluate_loaded(load_directory(directory, config, precision), data, options)


def load_directory(directory: Path, config: EvalConfig, precision: str) -> RewardModel | RewardEnsemble:
    """The saved model or ensemble in `directory`, loaded in `precision` with `config`'s window and overrides."""
    if is_ensemble(directory):
        return RewardEnsemble.from_pretrained(directory, mode=config.ensemble_mode, std_weight=config.std_weight,
                                              load_member=lambda d: load_model(d, config, precision))
    return load_model(directory, config, precision)


def evaluate_loaded(model: RewardModel | RewardEnsemble, data: EvalData, options: dict) -> ModelResult:
    evaluate = evaluate_ensemble if isinstance(model, RewardEnsemble) else evaluate_model
    return evaluate(model, data, **options)


def load_model(directory: str | Path, config: EvalConfig, precision: str) -> RewardModel:
    """The saved model in `precision` on the GPU when there is one, scoring with `config`'s window and rule for
    over-long pairs (its saved spec untouched)."""
    model = RewardModel.from_pretrained(directory, precision=precision).to(default_device())
    return model.windowed(max_length=config.max_length, long_responses=config.long_pairs)


def precision_cost(result: ModelResult, directory: Path, data: EvalData, config: EvalConfig, options: dict) -> dict:
    """What bf16 costs: on a random sample of `config.precision_check` pairs scored again in fp32, the largest
    reward difference and the pairs whose preferred side changes (a margin's sign)."""
    sample = random.Random(config.seed).sample(data.pairs, min(config.precision_check, len(data.pairs)))
    reference = evaluate_directory(directory, EvalData(pairs=sample), config, "fp32",
                                   options | {"name": f"{options['name']} (fp32 check)", "bootstrap": 0})
    ours = {p["id"]: p for p in result.predictions}
    shared = [(p, ours[p["id"]]) for p in reference.predictions if p["id"] in ours]
    differences = [abs(a[side] - b[side]) for a, b in shared for side in ("reward_chosen", "reward_rejected")]
    flips = sum(sign(a["margin"]) != sign(b["margin"]) for a, b in shared)
    return {"pairs": len(shared), "max_reward_diff": max(differences, default=None), "preference_flips": flips}


def sign(x: float) -> int:
    return (x > 0) - (x < 0)


def save_temperature(saved: ScoringSpec, directory: Path, temperature: float) -> None:
    """Store the calibration temperature in the model's saved spec (rewards themselves stay raw, and a run-time
    window is not saved); atomic write."""
    saved.model_copy(update={"temperature": temperature}).save(directory)


def compare(reference: ModelResult, result: ModelResult, *, bootstrap: int, seed: int) -> dict:
    """Strict accuracy of `result` minus `reference` on the pairs both scored, with a paired bootstrap 95% CI."""
    reference_correct = {p["id"]: float(p["correct"]) for p in reference.predictions}
    shared = [p for p in result.predictions if p["id"] in reference_correct]
    difference = paired_bootstrap_difference([reference_correct[p["id"]] for p in shared],
                                             [float(p["correct"]) for p in shared], bootstrap=bootstrap, seed=seed)
    return {"reference": reference.name, **difference, "n": len(shared)}


def model_names(directories: Sequence[Path]) -> list[str]:
    """Short unique names: each directory's name, with parent names added until they differ."""
    paths = [Path(directory).resolve() for directory in directories]
    for depth in range(1, max(len(path.parts) for path in paths) + 1):
        names = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(names)) == len(names):
            return names
    raise ConfigError(f"the same model directory is given twice: {', '.join(map(str, directories))}")


def write_outputs(out_dir: Path, results: list[ModelResult]) -> None:
    """metrics.json, predictions.jsonl, report.html and report.md (shapes in the module docstring)."""
    if len(results) == 1:
        document = results[0].metrics
    else:
        document = {"models": {result.name: result.metrics for result in results},
                    "comparison": {result.name: next(iter(result.comparison.values())) for result in results[1:]}}
    write_json_atomic(out_dir / "metrics.json", document)
    write_jsonl_atomic(out_dir / "predictions.jsonl",
                       ({key: p[key] for key in PREDICTION_KEYS} for result in results for p in result.predictions))
    if any(result.probe_predictions for result in results):
        write_jsonl_atomic(out_dir / "probe_predictions.jsonl", ({key: p[key] for key in PREDICTION_KEYS}
                                                                 for r in results for p in r.probe_predictions))
    write_report(out_dir, results)
