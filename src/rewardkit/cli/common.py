"""What every verb shares: the console, the error boundary, the `--set` option."""

from __future__ import annotations

import functools
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from transformers.utils import logging

from rewardkit.errors import RewardkitError

console = Console()
# errors and warnings go to stderr, one unwrapped line each, so `rewardkit ... > out.json` stays a clean result
err_console = Console(stderr=True, soft_wrap=True)
Overrides = Annotated[list[str] | None,
                      typer.Option("--set", help="Override a config field: key=value (repeatable).")]


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


def quiet_transformers() -> None:
    logging.set_verbosity_error()
    logging.disable_progress_bar()
