"""`rewardkit bon`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rewardkit.cli.common import LengthPenaltyOption, PrecisionOption, console, quiet_transformers, user_errors, warn
from rewardkit.optimization.bon import best_of_n

StepAggregateOption = Annotated[Literal["min", "last", "product"], typer.Option(
    help="Process reward models: how a response's step probabilities become one score.")]


@user_errors
def bon(
    pool: Annotated[Path, typer.Option(metavar="POOL", help="Pool JSONL from `rewardkit sample`.")],
    model: Annotated[Path, typer.Option(metavar="DIR", help="Reward model, verifier, PRM or ensemble directory.")],
    output: Annotated[Path, typer.Option(metavar="FILE", help="JSONL: each prompt's best sample plus its reward.")],
    objective: Annotated[Literal["mean", "min", "mean-std"] | None, typer.Option(
        help="Ensembles: combine the members' z-scores by mean, min or mean - L * std (default: the saved mode).")
    ] = None,
    std_weight: Annotated[float | None, typer.Option(
        min=0, metavar="L", help="Ensembles: L in mean - L * std (default: the saved std weight).")] = None,
    pairs: Annotated[Path | None, typer.Option(
        metavar="FILE", help="Also write best-vs-worst preference pairs (for `rewardkit train`).")] = None,
    step_aggregate: StepAggregateOption = "min",
    precision: PrecisionOption = "auto",
    length_penalty: LengthPenaltyOption = None,
) -> None:
    """Pick the best of N responses per prompt with a reward model.

    Scores every sample through the one scoring path (a decoder computes each prompt once for its N responses).
    Samples the model cannot score (longer than its max_length) are counted and never picked.
    """
    quiet_transformers()
    summary = best_of_n(pool, model, output, objective=objective, std_weight=std_weight, pairs_output=pairs,
                        step_aggregate=step_aggregate, precision=precision, length_penalty=length_penalty)
    console.print(f"best of {summary.samples} samples for {summary.written} of {summary.prompts} prompts "
                  f"({summary.precision}) -> {output}")
    if pairs is not None:
        console.print(f"{summary.pairs} best-vs-worst pairs -> {pairs}"
                      + (f" ({summary.pairs_skipped_equal_scores} prompts skipped: best and worst score the same)"
                         if summary.pairs_skipped_equal_scores else ""))
    if summary.unscored_samples:
        warn(f"{summary.unscored_samples} samples could not be scored (longer than the model's max_length); "
             f"{summary.prompts_without_scored_sample} prompts had none scored and are not in the output")
    if summary.duplicated_samples:
        warn(f"{summary.duplicated_samples} repeated (prompt_id, sample_index) lines in the pool: the first of "
             "each was used")
