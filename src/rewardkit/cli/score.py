"""`rewardkit score`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import (
    BatchSizeOption,
    EnsembleModeOption,
    LengthPenaltyOption,
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
from rewardkit.scoring.distributed import SHARD_SIZE, Launch, launch_device, launch_from_env, score_file_sharded
from rewardkit.scoring.files import score_file
from rewardkit.scoring.loading import load_scorer
from rewardkit.scoring.ray_scoring import score_with_ray


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
    length_penalty: LengthPenaltyOption = None,
    shard_size: Annotated[int | None, typer.Option(min=1, metavar="N", help=(
        "Score in shards of N records under OUTPUT.shards/, resumable by shard (under torchrun or accelerate "
        f"launch always, {SHARD_SIZE} unless given)."))] = None,
    ray: Annotated[bool, typer.Option("--ray", help=(
        "Score on Ray Data actors (a local Ray instance unless --ray-address); a .parquet output is Parquet."
    ))] = False,
    ray_address: Annotated[str | None, typer.Option(metavar="ADDR", help=(
        "With --ray: a running Ray cluster, e.g. auto or ray://head:10001."))] = None,
    num_workers: Annotated[int | None, typer.Option(min=1, metavar="K", help=(
        "With --ray: actors, each holding the model once (default 1)."))] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(min=0, metavar="G", help=(
        "With --ray: GPUs per actor (default 0: CPU)."))] = None,
) -> None:
    """Score prompt-response records with a trained model or ensemble.

    Records may also be conversations (messages), or a process model's step lists. An ensemble writes its members'
    combined z-score as `reward` and their spread as `uncertainty`. Each record says the `precision` it was scored in.

    Under torchrun or accelerate launch each process scores its share of the shards and rank 0 merges them; a
    killed run resumes by shard when rerun. --ray scores on Ray Data actors instead.
    """
    quiet_transformers()
    weights = dict(parse_weight(w) for w in weight) if weight else None
    options = {"batch_size": batch_size, "normalize": normalize, "attribute_weights": weights,
               "max_length": max_length, "long_pairs": long_pairs, "length_penalty": length_penalty}
    launch = launch_from_env()
    refuse_mixed_launch(launch, ray=ray, shard_size=shard_size,
                        ray_options={"--ray-address": ray_address, "--num-workers": num_workers,
                                     "--gpus-per-worker": gpus_per_worker})
    if ray:
        count = score_with_ray(model, input, output, num_workers=num_workers or 1, address=ray_address,
                               gpus_per_worker=gpus_per_worker or 0.0, precision=precision,
                               ensemble_mode=ensemble_mode, std_weight=std_weight, **options)
        summary = f"scored {count} records on {num_workers or 1} Ray workers{window_note(max_length, long_pairs)}"
    else:
        scorer = load_scorer(model, precision=precision, ensemble_mode=ensemble_mode, std_weight=std_weight,
                             device=launch_device(launch))  # each process of a launch on its own GPU
        resumed = ""
        if launch is None and shard_size is None:
            count = score_file(scorer, input, output, **options)
        else:
            run = score_file_sharded(scorer, model, input, output, launch=launch,
                                     shard_size=shard_size or SHARD_SIZE, **options)
            if launch is not None and launch.rank != 0:
                return  # rank 0 merged the shards and reports
            count = run.records
            resumed = f" ({run.resumed} of {run.shards} shards from an earlier run)" if run.resumed else ""
        summary = f"scored {count} records in {scorer.precision}{window_note(max_length, long_pairs)}{resumed}"
    if output == STDOUT:  # stdout holds the records
        err_console.print(summary, highlight=False)
    else:
        console.print(f"{summary} -> {output}")


def refuse_mixed_launch(launch: Launch | None, *, ray: bool, shard_size: int | None, ray_options: dict) -> None:
    """Ray splits the work itself: it runs as one process, without shards; its options need --ray."""
    if ray and launch is not None:
        raise ConfigError("--ray starts its own workers: run it as one process, not under torchrun or accelerate "
                          "launch")
    if ray and shard_size is not None:
        raise ConfigError("--shard-size is for torchrun, accelerate launch or one process; --ray splits the work "
                          "itself")
    given = [name for name, value in ray_options.items() if value is not None]
    if given and not ray:
        raise ConfigError(f"{', '.join(given)} apply to --ray; add --ray, or drop them")


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
