"""`rewardkit <verb>`: a thin layer over the library. Each command parses, calls one function, prints.

Errors a user can fix (bad data, bad config, missing files) print one clear line and exit 1, never a traceback.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from rewardkit.io import write_json_atomic

if TYPE_CHECKING:
    from rewardkit.evaluate import EvalConfig
    from rewardkit.report import ModelResult

app = typer.Typer(help="Reward modeling for LLM alignment: preference data in, reward model out.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect and prepare preference data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()

Overrides = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: key=value (repeatable).")]


def user_errors(command):
    """Turn the errors a user can act on into one red line and exit code 1."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        from rewardkit.config import ConfigError
        from rewardkit.data import DataError
        from rewardkit.train import TrainingError

        try:
            return command(*args, **kwargs)
        except (DataError, ConfigError, TrainingError, FileNotFoundError, ValueError) as err:
            console.print(f"[red]error:[/red] {err}", highlight=False)
            raise typer.Exit(1) from None

    return run


def quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Option(help="YAML training config.")],
    output_dir: Annotated[Path, typer.Option(help="Where the model, metrics and checkpoints go.")],
    set: Overrides = None,
    ensemble: Annotated[Optional[int], typer.Option(
        min=1, help="Train K members on resamples into one ensemble directory (train.ensemble).")] = None,
) -> None:
    """Train a reward model from a YAML config."""
    from rewardkit.config import load_config

    overrides = [*(set or []), *([f"train.ensemble={ensemble}"] if ensemble else [])]
    run_training(load_config(config, overrides), output_dir)


@app.command()
@user_errors
def demo(
    output_dir: Annotated[Path, typer.Option(help="Where the model and metrics go.")] = Path("runs/demo"),
    set: Overrides = None,
) -> None:
    """Train a reward model on the bundled data with the bundled backbone (CPU, minutes), then evaluate it."""
    from rewardkit.config import load_config

    config_file = resources.files("rewardkit") / "configs" / "demo.yaml"
    with resources.as_file(config_file) as path:
        config = load_config(path, set or [])
    run_training(config, output_dir)


def run_training(config, output_dir: Path) -> None:
    from rewardkit.train import train as train_model

    quiet_transformers()
    result = train_model(config, output_dir)
    summary = result.summary
    precision = "bf16 autocast" if summary["precision"] == "bf16" else "fp32"
    unit = summary["task"]
    members = f"{summary['ensemble']} members, " if summary.get("ensemble") else ""
    console.print(f"trained {members}on {summary['trained_examples']} {unit} ({summary['dropped_too_long']['train']} dropped: "
                  f"too long for max_length) in {summary['train_seconds']} s: {summary['examples_per_s']} {unit}/s, "
                  f"{precision}")
    if result.metrics and "overall" not in result.metrics:  # label tasks: ratings, verifiers, steps
        console.print_json(json.dumps(result.metrics))
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    elif result.metrics:
        from rewardkit.report import ModelResult, console_table

        console.print(console_table([ModelResult("model", result.metrics, predictions=[])], title="held-out accuracy"))
        if "ensemble" in result.metrics:
            found = result.metrics["ensemble"]
            members = ", ".join(f"{a:.4f}" for a in found["member_accuracy"])
            console.print(f"members' accuracy: {members}; accuracy on the most / least certain quarter: "
                          f"{found['by_uncertainty']['most_certain']:.4f} / {found['by_uncertainty']['least_certain']:.4f}")
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    console.print(f"model:   {result.model_dir}")


@app.command("eval")
@user_errors
def evaluate_command(
    model: Annotated[list[Path], typer.Option(
        help="Trained reward model directory; repeat to compare models (the first is the reference).")],
    data: Annotated[list[str], typer.Option(help="Preference file or hub dataset (repeatable).")],
    out: Annotated[Path, typer.Option(help="Writes metrics.json, predictions.jsonl, report.html and report.md here.")],
    subset_field: Annotated[Optional[str], typer.Option(help="Record field naming each pair's subset.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs (0: none).")] = 1000,
    seed: int = 0,
    fit_temperature: Annotated[bool, typer.Option(
        help="Save the fitted calibration temperature in each model's scoring spec.")] = False,
    format: Annotated[str, typer.Option(
        help="auto, rewardbench2, or an importer: pairs, implicit, sharegpt, ranked, pandalm.")] = "auto",
    on_bad_record: Annotated[str, typer.Option(
        help="error: stop at the first bad record; skip: count it and go on.")] = "error",
    batch_size: int = 32,
    ensemble_mode: Annotated[Optional[str], typer.Option(
        help="Ensembles: mean, min or mean-minus-std (default: the mode saved with the ensemble).")] = None,
    std_weight: Annotated[Optional[float], typer.Option(help="Ensembles: k in mean - k * std.")] = None,
) -> None:
    """Score preference files with one or more reward models; write metrics, predictions and an HTML report.

    metrics.json holds one model's metrics, or {"models": {name: metrics}, "comparison": {name: paired bootstrap
    against the first model}} for several. With --fit-temperature, P(a preferred over b) = sigmoid((reward_a -
    reward_b) / T) is calibrated by the saved temperature T.
    """
    from rewardkit.evaluate import EvalConfig, evaluate
    from rewardkit.report import console_table

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
    for directory, result in zip(config.models, results):
        if result.metrics["dropped_too_long"]:
            console.print(f"{result.name}: {result.metrics['dropped_too_long']} pairs not scored "
                          "(a response is longer than the model's max_length)")
        if config.fit_temperature:
            console.print(f"{result.name}: saved temperature {result.metrics['calibration']['temperature']:.4f} "
                          f"to {directory / 'scoring_spec.json'}")
    console.print(f"report:  {config.out_dir / 'report.html'}")


@app.command()
@user_errors
def score(
    model: Annotated[Path, typer.Option(help="Trained reward model directory.")],
    input: Annotated[Path, typer.Option(help="JSONL with prompt + response, or messages.")],
    output: Annotated[Path, typer.Option(help="JSONL: the input fields plus reward.")],
    batch_size: int = 32,
    normalize: Annotated[bool, typer.Option(help="Also write the z-scored reward (spec normalization).")] = False,
    weight: Annotated[Optional[list[str]], typer.Option(
        help="Multi-attribute models: NAME=W weighs an attribute in the reward (repeatable; unnamed ones get 0).")] = None,
) -> None:
    """Score prompt-response pairs (or conversations, or a process model's step lists) with a trained model."""
    from rewardkit.model import RewardModel
    from rewardkit.score import score_file

    quiet_transformers()
    weights = dict(parse_weight(w) for w in weight) if weight else None
    count = score_file(RewardModel.from_pretrained(model), input, output, batch_size=batch_size, normalize=normalize,
                       attribute_weights=weights)
    console.print(f"scored {count} records -> {output}")


def parse_weight(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        if not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise ValueError(f"--weight {text!r}: expected NAME=NUMBER, e.g. verbosity=-0.5") from None


@data_app.command("audit")
@user_errors
def data_audit(
    file: Annotated[str, typer.Argument(help="Preference file or hub dataset name.")],
    format: str = "auto",
    split: str = "train",
    model: Annotated[Optional[Path], typer.Option(help="Count tokens with this trained model's spec.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="Count tokens with this backbone's spec.")] = None,
    max_length: int = 512,
    on_bad_record: str = "error",
    output: Annotated[Optional[Path], typer.Option(help="Write the audit as JSON here.")] = None,
) -> None:
    """Count duplicates, identical pairs, lengths, truncation, the length-only baseline and annotator agreement."""
    from rewardkit.data import audit_preferences, load_preferences
    from rewardkit.spec import SpecEncoder

    loaded = load_preferences(file, format=format, split=split, on_bad_record=on_bad_record)
    encoder = None
    if model or backbone:
        quiet_transformers()
        encoder = SpecEncoder(*load_spec_and_tokenizer(model, backbone, max_length))
    report = audit_preferences(loaded.pairs, encoder, votes=loaded.votes)
    report["skipped"] = [f"{s.location}: {s.reason}" for s in loaded.skipped]
    report["notes"] = loaded.notes
    console.print_json(json.dumps(report, ensure_ascii=False))
    if output:
        write_json_atomic(output, report)


def load_spec_and_tokenizer(model: Path | None, backbone: str | None, max_length: int):
    from transformers import AutoTokenizer

    from rewardkit.model import backbone_tokenizer_and_spec
    from rewardkit.spec import ScoringSpec

    if model:
        return ScoringSpec.load(model), AutoTokenizer.from_pretrained(model)
    tokenizer, spec = backbone_tokenizer_and_spec(backbone, max_length=max_length)
    return spec, tokenizer


@data_app.command("prepare")
@user_errors
def data_prepare(
    files: Annotated[list[str], typer.Argument(help="Preference files or hub dataset names.")],
    output_dir: Annotated[Path, typer.Option(help="Writes train.jsonl, eval.jsonl and prepare.json here.")],
    format: str = "auto",
    eval_fraction: float = 0.1,
    max_pairs_per_prompt: Optional[int] = None,
    seed: int = 0,
    on_bad_record: str = "error",
) -> None:
    """Dedupe, drop identical pairs, cap pairs per prompt and split train/eval by prompt (canonical JSONL)."""
    from rewardkit.data import load_preferences, prepare_preferences, save_preferences

    pairs, skipped = [], []
    for file in files:
        loaded = load_preferences(file, format=format, on_bad_record=on_bad_record)
        pairs += loaded.pairs
        skipped += [f"{s.location}: {s.reason}" for s in loaded.skipped]
    split = prepare_preferences(pairs, eval_fraction=eval_fraction, max_pairs_per_prompt=max_pairs_per_prompt, seed=seed)
    save_preferences(split.train, output_dir / "train.jsonl")
    save_preferences(split.eval, output_dir / "eval.jsonl")
    write_json_atomic(output_dir / "prepare.json", {"stats": split.stats, "skipped": skipped})
    console.print_json(json.dumps({"stats": split.stats, "skipped": len(skipped)}))
    console.print(f"wrote {len(split.train)} train and {len(split.eval)} eval pairs to {output_dir}")


@app.command()
@user_errors
def serve(
    model: Annotated[Optional[list[str]], typer.Option(
        help="Model directory, or NAME=DIR (repeatable); the first is the default.")] = None,
    ensemble: Annotated[Optional[list[str]], typer.Option(
        help="NAME=DIR1,DIR2,...: serve the members' combined z-scores (repeatable).")] = None,
    ensemble_mode: Annotated[Optional[str], typer.Option(help="mean, min or mean-minus-std.")] = None,
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (loopback by default).")] = None,
    port: Optional[int] = None,
    api_key_env: Annotated[Optional[str], typer.Option(
        help="Require 'Authorization: Bearer <key>', the key read from this environment variable.")] = None,
    max_batch_tokens: Annotated[Optional[int], typer.Option(help="Padded tokens per forward pass.")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option(help="Pairs per forward pass (1: no batching).")] = None,
    max_wait_ms: Annotated[Optional[float], typer.Option(
        help="How long a queued pair waits for others to join its batch.")] = None,
    max_items: Annotated[Optional[int], typer.Option(help="Pairs per request.")] = None,
    max_request_tokens: Annotated[Optional[int], typer.Option(help="Tokens per request.")] = None,
    max_request_chars: Annotated[Optional[int], typer.Option(help="Characters per request.")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help=(
        "torch intra-op threads for forward passes (torch.set_num_threads); 1 is steadiest on a shared CPU."))] = None,
    trust_remote_code: bool = False,
) -> None:
    """Serve reward models over HTTP: POST /v1/score, POST /get_reward (OpenRLHF), /health, /v1/models, /metrics.

    Options left out take the defaults of rewardkit.serve.ServeConfig.
    """
    import os

    from rewardkit.serve import ServeConfig, create_app, load_models, run_server

    options = {"host": host, "port": port, "ensemble_mode": ensemble_mode, "max_batch_tokens": max_batch_tokens,
               "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "max_items": max_items,
               "max_request_tokens": max_request_tokens, "max_request_chars": max_request_chars}
    if api_key_env:
        if not os.environ.get(api_key_env):
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set")
        options["api_key"] = os.environ[api_key_env]
    config = ServeConfig(**{k: v for k, v in options.items() if v is not None})
    if threads:
        import torch

        torch.set_num_threads(threads)  # before any forward thread starts: each takes the count on first use
    quiet_transformers()
    models, ensembles = load_models(model or [], ensemble or [], trust_remote_code=trust_remote_code)
    scoring_app = create_app(models, config, ensembles)
    console.print(f"serving {', '.join([*models, *ensembles])} on http://{config.host}:{config.port}"
                  f"{' (API key required)' if config.api_key else ''}")
    run_server(scoring_app, config)


if __name__ == "__main__":
    app()
