"""`rewardkit score`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import (
    BatchSizeOption,
    EnsembleModeOption,
    LongPairsOption,
    MaxLengthOption,
    PrecisionOption,
    StdWeightOption,
    console,
    err_console,
    quiet_transformers,
    user_errors,
)
from rewardkit.errors import ConfigError
from rewardkit.io import STDOUT
from rewardkit.models.reward_model import SCORING_BATCH_SIZE
from rewardkit.models.spec import LongResponses
from rewardkit.scoring.files import score_file
from rewardkit.scoring.loading import load_scorer


@user_errors
def score(
    model: Annotated[Path, typer.Option(metavar="DIR", help="Trained reward model or ensemble directory.")],
    input: Annotated[str, typer.Option(
        metavar="FILE", help="JSONL with prompt + response, or messages; - reads stdin.")],
    output: Annotated[str, typer.Option(
        metavar="FILE", help="JSONL: the input fields plus reward; - writes stdout.")],
    batch_size: BatchSizeOption = SCORING_BATCH_SIZE,
    normalize: Annotated[bool, typer.Option(
        "--normalize", help="Also write the z-scored reward (the spec's normalization).")] = False,
    weight: Annotated[list[str] | None, typer.Option(metavar="NAME=W", help=(
        "Multi-attribute models: weigh attribute NAME by W in the reward (repeatable; unnamed ones get 0)."
    ))] = None,
    ensemble_mode: EnsembleModeOption = None,
    std_weight: StdWeightOption = None,
    max_length: MaxLengthOption = None,
    long_pairs: LongPairsOption = "drop",
    precision: PrecisionOption = "auto",
) -> None:
    """Score prompt-response records with a trained model or ensemble.

    Records may also be conversations (messages), or a process model's step lists. An ensemble writes its members'
    combined z-score as `reward` and their spread as `uncertainty`. Each record says the `precision` it was scored in.
    """
    quiet_transformers()
    weights = dict(parse_weight(w) for w in weight) if weight else None
    scorer = load_scorer(model, precision=precision, ensemble_mode=ensemble_mode, std_weight=std_weight)
    count = score_file(scorer, input, output, batch_size=batch_size,
                       normalize=normalize, attribute_weights=weights, max_length=max_length, long_pairs=long_pairs)
    summary = f"scored {count} records in {scorer.precision}{window_note(max_length, long_pairs)}"
    if output == STDOUT:  # stdout holds the records
        err_console.print(summary, highlight=False)
    else:
        console.print(f"{summary} -> {output}")


def window_note(max_length: int | None, long_pairs: LongResponses) -> str:
    """The run-time window, when one was asked for: " (max_length N, long pairs truncated)"."""
    parts = ([f"max_length {max_length}"] if max_length is not None else []) + (
        ["long pairs truncated"] if long_pairs == "truncate" else [])
    return f" ({', '.join(parts)})" if parts else ""


def parse_weight(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = math.nan
    if not name or not math.isfinite(weight):
        raise ConfigError(f"--weight {text!r}: expected NAME=NUMBER, e.g. verbosity=-0.5")
    return name, weight
