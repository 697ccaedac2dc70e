"""`rewardkit export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import console, quiet_transformers, user_errors
from rewardkit.models.export import export_model


@user_errors
def export(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="Trained reward model directory.")],
    out: Annotated[Path, typer.Option(metavar="DIR", help="Where to write the hub-ready model.")],
    bake_normalization: Annotated[bool, typer.Option(
        "--bake-normalization", help="Fold the stored mean/std into the score head (z-scored rewards).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR when it exists and is not empty.")] = False,
) -> None:
    """Export a trained model as a hub-ready directory.

    TRL and vLLM then score it as rewardkit does. DIR holds the weights, the tokenizer with a chat template that
    renders text as rewardkit does, a regression config, scoring_spec.json and a model card (README.md).
    """
    quiet_transformers()
    written = export_model(model, out, bake_normalization=bake_normalization, force=force)
    console.print(f"exported {model} -> {written}")
