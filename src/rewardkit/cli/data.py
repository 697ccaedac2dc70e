"""`rewardkit data audit` and `rewardkit data prepare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from transformers import AutoTokenizer

from rewardkit.cli.common import console, quiet_transformers, user_errors
from rewardkit.data.audit import audit_preferences
from rewardkit.data.preferences import load_preferences, save_preferences
from rewardkit.data.split import prepare_preferences
from rewardkit.io import write_json_atomic
from rewardkit.models.backbones import backbone_tokenizer_and_spec
from rewardkit.models.spec import ScoringSpec, SpecEncoder


@user_errors
def data_audit(
    file: Annotated[str, typer.Argument(help="Preference file or hub dataset name.")],
    format: str = "auto",
    split: str = "train",
    model: Annotated[Path | None, typer.Option(help="Count tokens with this trained model's spec.")] = None,
    backbone: Annotated[str | None, typer.Option(help="Count tokens with this backbone's spec.")] = None,
    max_length: int = 512,
    on_bad_record: str = "error",
    output: Annotated[Path | None, typer.Option(help="Write the audit as JSON here.")] = None,
) -> None:
    """Count duplicates, identical pairs, lengths, truncation, the length-only baseline and annotator agreement."""
    loaded = load_preferences(file, format=format, split=split, on_bad_record=on_bad_record)
    encoder = None
    if model or backbone:
        quiet_transformers()
        encoder = SpecEncoder(*load_spec_and_tokenizer(model, backbone, max_length))
    report = audit_preferences(loaded.pairs, encoder, votes=loaded.votes)
    report["skipped"] = [str(s) for s in loaded.skipped]
    report["notes"] = loaded.notes
    console.print_json(json.dumps(report, ensure_ascii=False))
    if output:
        write_json_atomic(output, report)


def load_spec_and_tokenizer(model: Path | None, backbone: str | None, max_length: int):
    if model:
        return ScoringSpec.load(model), AutoTokenizer.from_pretrained(model)
    tokenizer, spec = backbone_tokenizer_and_spec(backbone, max_length=max_length)
    return spec, tokenizer


@user_errors
def data_prepare(
    files: Annotated[list[str], typer.Argument(help="Preference files or hub dataset names.")],
    output_dir: Annotated[Path, typer.Option(help="Writes train.jsonl, eval.jsonl and prepare.json here.")],
    format: str = "auto",
    eval_fraction: float = 0.1,
    max_pairs_per_prompt: int | None = None,
    seed: int = 0,
    on_bad_record: str = "error",
) -> None:
    """Dedupe, drop identical pairs, cap pairs per prompt and split train/eval by prompt (canonical JSONL)."""
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
    console.print_json(json.dumps({"stats": split.stats, "skipped": len(skipped)}))
    console.print(f"wrote {len(split.train)} train and {len(split.eval)} eval pairs to {output_dir}")
