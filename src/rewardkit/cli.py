"""`rewardkit <verb>`: a thin layer over the library. Each command parses, calls one function, prints.

Errors a user can fix (bad data, bad config, missing files) print one clear line and exit 1, never a traceback.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from rewardkit.io import write_json_atomic

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
) -> None:
    """Train a reward model from a YAML config."""
    from rewardkit.config import load_config

    run_training(load_config(config, set or []), output_dir)


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
    console.print(f"trained on {summary['train_pairs']} pairs in {summary['train_seconds']} s "
                  f"({summary['pairs_per_s']} pairs/s, {summary['precision']})")
    if result.metrics:
        console.print(metrics_table(result.metrics, "held-out accuracy"))
        console.print(f"metrics: {output_dir / 'metrics.json'}")
    console.print(f"model:   {result.model_dir}")


def metrics_table(metrics: dict, title: str) -> Table:
    table = Table(title=title)
    for column in ("set", "accuracy", "95% CI", "pairs", "ties"):
        table.add_column(column)
    rows = [("overall", metrics["overall"])] + sorted(metrics["subsets"].items())
    for name, block in rows:
        ci = block.get("ci95")
        table.add_row(name, f"{block['accuracy']:.4f}", f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-",
                      str(block["n"]), str(block["ties"]))
    baseline = metrics.get("length_baseline")
    if baseline:
        table.caption = f"length-only baseline (pick the longer response): {baseline['accuracy']:.4f}"
    return table


@app.command()
@user_errors
def score(
    model: Annotated[Path, typer.Option(help="Trained reward model directory.")],
    input: Annotated[Path, typer.Option(help="JSONL with prompt + response, or messages.")],
    output: Annotated[Path, typer.Option(help="JSONL: the input fields plus reward.")],
    batch_size: int = 32,
    normalize: Annotated[bool, typer.Option(help="Also write the z-scored reward (spec normalization).")] = False,
) -> None:
    """Score prompt-response pairs (or conversations) with a trained reward model."""
    from rewardkit.model import RewardModel
    from rewardkit.score import score_file

    quiet_transformers()
    count = score_file(RewardModel.from_pretrained(model), input, output, batch_size=batch_size, normalize=normalize)
    console.print(f"scored {count} records -> {output}")


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
    """Count duplicates, identical pairs, lengths, truncation and the length-only baseline."""
    from rewardkit.data import audit_preferences, load_preferences
    from rewardkit.spec import SpecEncoder

    loaded = load_preferences(file, format=format, split=split, on_bad_record=on_bad_record)
    encoder = None
    if model or backbone:
        quiet_transformers()
        encoder = SpecEncoder(*load_spec_and_tokenizer(model, backbone, max_length))
    report = audit_preferences(loaded.pairs, encoder)
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


if __name__ == "__main__":
    app()
