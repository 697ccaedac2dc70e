"""`rewardkit data audit` and `rewardkit data prepare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from transformers import AutoTokenizer

from rewardkit.cli.common import (
    FormatOption,
    OnBadRecordOption,
    SeedOption,
    console,
    print_json,
    quiet_transformers,
    user_errors,
)
from rewardkit.data.audit import audit_preferences
from rewardkit.data.preferences import load_preferences, save_preferences
from rewardkit.data.split import prepare_preferences
from rewardkit.errors import ConfigError
from rewardkit.io import write_json_atomic
from rewardkit.models.backbones import backbone_tokenizer_and_spec
from rewardkit.models.spec import ScoringSpec, SpecEncoder

BACKBONE_MAX_LENGTH = 512  # --max-length's default with --backbone


@user_errors
def data_audit(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Preference file or hub dataset name.")],
    format: FormatOption = "auto",
    split: Annotated[str, typer.Option(metavar="SPLIT", help="The hub dataset's split to read.")] = "train",
    model: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Count tokens with this trained model's spec (and its max_length).")] = None,
    backbone: Annotated[str | None, typer.Option(
        metavar="NAME", help="Count tokens with this backbone's spec.")] = None,
    max_length: Annotated[int | None, typer.Option(min=1, metavar="N", help=(
        f"With --backbone: tokens a pair may take (default: {BACKBONE_MAX_LENGTH}).")
    )] = None,
    on_bad_record: OnBadRecordOption = "error",
    output: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Also write the audit as JSON here (it is printed to stdout either way).")] = None,
) -> None:
    """Audit preference data: duplicates, length bias, agreement.

    Counts duplicates, identical pairs, lengths, truncation (with --model or --backbone), the length-only baseline
    and annotator agreement.
    """
    refuse_conflicts(model, backbone, max_length)
    loaded = load_preferences(file, format=format, split=split, on_bad_record=on_bad_record)
    encoder = None
    if model or backbone:
        quiet_transformers()
        encoder = SpecEncoder(*load_spec_and_tokenizer(model, backbone, max_length or BACKBONE_MAX_LENGTH))
    report = audit_preferences(loaded.pairs, encoder, votes=loaded.votes)
    report["skipped"] = [str(s) for s in loaded.skipped]
    report["notes"] = loaded.notes
    print_json(report)
    if output:
        write_json_atomic(output, report)


def refuse_conflicts(model: Path | None, backbone: str | None, max_length: int | None) -> None:
    """One tokenizer counts: --model (with its own max_length) or --backbone (with --max-length), not both."""
    if model and backbone:
        raise ConfigError("--model and --backbone both name the tokenizer to count with; give one")
    if max_length is not None and not backbone:
        raise ConfigError("--max-length applies to --backbone (a --model counts with its own max_length)")


def load_spec_and_tokenizer(model: Path | None, backbone: str | None, max_length: int):
    if model:
        return ScoringSpec.load(model), AutoTokenizer.from_pretrained(model)
    tokenizer, spec = backbone_tokenizer_and_spec(backbone, max_length=max_length)
    return spec, tokenizer


@user_errors
def data_prepare(
    files: Annotated[list[str], typer.Argument(metavar="FILE", help="Preference files or hub dataset names.")],
    output_dir: Annotated[Path, typer.Option(
        metavar="DIR", help="Writes train.jsonl, eval.jsonl and prepare.json here.")],
    format: FormatOption = "auto",
    eval_fraction: Annotated[float, typer.Option(
        min=0, max=1, metavar="F", help="Share of the pairs held out for eval, by prompt (below 1).")] = 0.1,
    max_pairs_per_prompt: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Keep at most N pairs per prompt (default: all).")] = None,
    seed: SeedOption = 0,
    on_bad_record: OnBadRecordOption = "error",
) -> None:
    """Dedupe, cap pairs per prompt and split train/eval by prompt.

    Drops identical pairs too, and writes canonical JSONL that `rewardkit train` reads.
    """
    pairs, skipped = [], []
    for file in files:
        loaded = load_preferences(file, format=format, on_bad_record=on_bad_record)
        pairs += loaded.pairs
        skipped += [str(s) for s in loaded.skipped]
    split = prepare_preferences(pairs, eval_fraction=eval_fraction, max_pairs_per_prompt=max_pairs_per_prompt,
                                seed=seed)
    save_preferences(split.train, output_dir / "train.jsonl")
    save_preferences(split.eval, output_dir / "eval.jsonl")
    write_json_atomic(output_dir / "prepare.json", {"stats": split.stats, "skipped": skipped})
    print_json({"stats": split.stats, "skipped": len(skipped)})
    console.print(f"wrote {len(split.train)} train and {len(split.eval)} eval pairs to {output_dir}")
