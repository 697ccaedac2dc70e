"""What every verb shares: the consoles, the error boundary, and the options several verbs take."""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from transformers.utils import logging

from rewardkit.data.preferences import PREFERENCE_RECORD_TYPES
from rewardkit.errors import ConfigError, RewardkitError
from rewardkit.models.ensemble import EnsembleMode
from rewardkit.models.spec import LongResponses
from rewardkit.precision import Precision

# results go to stdout, never hard-wrapped (so `rewardkit data audit F > audit.json` is the JSON; a table piped to a
# file keeps its natural width); errors and warnings go to stderr, one unwrapped line each
console = Console(soft_wrap=True, markup=False, width=None if sys.stdout.isatty() else 10_000)
err_console = Console(stderr=True, soft_wrap=True)

PreferenceFormat = Literal[("auto", *PREFERENCE_RECORD_TYPES)]  # "auto" detects it from the first record
Overrides = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="Override a config field, e.g. train.epochs=2 (repeatable).")]
FormatOption = Annotated[PreferenceFormat, typer.Option(
    help="The records' layout; auto detects it from the first record.")]
OnBadRecordOption = Annotated[Literal["error", "skip"], typer.Option(
    help="error: stop at the first bad record; skip: count it and go on.")]
BatchSizeOption = Annotated[int, typer.Option(min=1, metavar="N", help="Pairs per forward pass.")]
SeedOption = Annotated[int, typer.Option(min=0, metavar="N", help="Random seed.")]
EnsembleModeOption = Annotated[EnsembleMode | None, typer.Option(
    help="Ensembles: how the members' z-scores combine (default: the mode saved with the ensemble).")]
StdWeightOption = Annotated[float | None, typer.Option(
    min=0, metavar="K", help="Ensembles: k in mean - k * std (default: the one saved with the ensemble).")]


def print_json(obj) -> None:
    """`obj` as strict JSON on stdout (a NaN or infinity is a bug and raises, as in `rewardkit.io`)."""
    console.print_json(data=obj, ensure_ascii=False, allow_nan=False)


def user_errors(command):
    """Turn the errors a user can act on (`RewardkitError`) into one red line and exit code 1; any other
    exception is a bug and keeps its traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RewardkitError as err:
            err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
            raise typer.Exit(1) from None

    return run


def warn(message: str) -> None:
    """One yellow `warning:` line on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)


def refuse_ensemble_options(ensemble_mode: str | None, std_weight: float | None, *, has_ensemble: bool,
                            why_not: str) -> None:
    """--ensemble-mode and --std-weight change how ensembles combine; with no ensemble to combine they are a
    ConfigError (`why_not` says why there is none), not silently ignored."""
    if not has_ensemble and (ensemble_mode is not None or std_weight is not None):
        raise ConfigError(f"--ensemble-mode and --std-weight apply to ensembles; {why_not}")


def quiet_transformers() -> None:
    logging.set_verbosity_error()
    logging.disable_progress_bar()


MaxLengthOption = Annotated[int | None, typer.Option(min=1, metavar="N", help=(
    "Tokens per pair instead of the model's saved max_length, up to its backbone's position limit."))]
LongPairsOption = Annotated[LongResponses, typer.Option(help=(
    "A response alone longer than max_length: drop the pair, or truncate it (keep the response's start, flagged "
    "'truncated')."))]
LengthPenaltyOption = Annotated[float | None, typer.Option(min=0, metavar="L", help=(
    "Score reward - L * the response's tokens (as the model tokenizes it); each record keeps reward_raw, "
    "length_penalty and response_tokens."))]
PrecisionOption = Annotated[Precision, typer.Option(help=(
    "bf16 weights or fp32; auto: bf16 where the hardware is fast at it (CUDA, CPUs with AMX / AVX512-BF16)."))]
