"""`rewardkit score`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import console, quiet_transformers, user_errors
from rewardkit.errors import ConfigError
from rewardkit.models.ensemble import RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.scoring.files import score_file


@user_errors
def score(
    model: Annotated[Path, typer.Option(help="Trained reward model or ensemble directory.")],
    input: Annotated[Path, typer.Option(help="JSONL with prompt + response, or messages.")],
    output: Annotated[Path, typer.Option(help="JSONL: the input fields plus reward.")],
    batch_size: int = 32,
    normalize: Annotated[bool, typer.Option(help="Also write the z-scored reward (spec normalization).")] = False,
    weight: Annotated[list[str] | None, typer.Option(help=(
        "Multi-attribute models: NAME=W weighs an attribute in the reward (repeatable; unnamed ones get 0)."
    ))] = None,
    ensemble_mode: Annotated[str | None, typer.Option(
        help="Ensembles: mean, min or mean-minus-std (default: the mode saved with the ensemble).")] = None,
    std_weight: Annotated[float | None, typer.Option(help="Ensembles: k in mean - k * std.")] = None,
) -> None:
    """Score prompt-response pairs (or conversations, or a process model's step lists) with a trained model, or
    with an ensemble (`reward` is the members' combined z-score, `uncertainty` their spread)."""
    quiet_transformers()
    weights = dict(parse_weight(w) for w in weight) if weight else None
    count = score_file(load_scorer(model, ensemble_mode, std_weight), input, output, batch_size=batch_size,
                       normalize=normalize, attribute_weights=weights)
    console.print(f"scored {count} records -> {output}")


def load_scorer(directory: Path, ensemble_mode: str | None, std_weight: float | None) -> RewardModel | RewardEnsemble:
    """The ensemble saved in `directory` (with the overrides), or its reward model."""
    if is_ensemble(directory):
        return RewardEnsemble.from_pretrained(directory, mode=ensemble_mode, std_weight=std_weight)
    if ensemble_mode is not None or std_weight is not None:
        raise ConfigError(f"--ensemble-mode and --std-weight apply to ensembles; {directory} is one reward model")
    return RewardModel.from_pretrained(directory)


def parse_weight(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        if not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise ConfigError(f"--weight {text!r}: expected NAME=NUMBER, e.g. verbosity=-0.5") from None
