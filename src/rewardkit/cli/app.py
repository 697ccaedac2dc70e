"""`rewardkit <verb>`: a thin layer over the library. Each command parses, calls one function, prints.

Errors a user can fix (`rewardkit.errors.RewardkitError`: bad data, bad config, a model that does not fit) print
one clear line and exit 1; a usage error (an unknown option, a value out of its range) prints click's `Error:` line
and exits 2; anything else is a bug and keeps its traceback.

The verbs load lazily: `rewardkit --help` lists them from `VERBS` without importing their modules (nor torch), and
`rewardkit.cli.<module>` is imported only when its verb runs or its own help is asked.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command

import rewardkit

# plain click help: it wraps at the terminal's width instead of cutting option names; add_completion: top level only
SETTINGS: dict[str, Any] = {"rich_markup_mode": None, "add_completion": False}


@dataclass(frozen=True)
class Verb:
    """The command `rewardkit.cli.<module>.<function>`; `summary` (for listings) is its docstring's first line."""

    module: str
    function: str
    summary: str


VERBS = {
    "train": Verb("train", "train", "Train a reward model from a YAML config."),
    "demo": Verb("train", "demo", "Train and evaluate a model on the bundled data (CPU, minutes)."),
    "eval": Verb("evaluate", "evaluate_command", "Evaluate reward models on preference files; write a report."),
    "score": Verb("score", "score", "Score prompt-response records with a trained model or ensemble."),
    "serve": Verb("serve", "serve", "Serve reward models over HTTP."),
    "export": Verb("export", "export", "Export a trained model as a hub-ready directory."),
    "sample": Verb("sample", "sample", "Sample N responses per prompt from a policy into a pool."),
    "bon": Verb("bon", "bon", "Pick the best of N responses per prompt with a reward model."),
    "overopt": Verb("overopt", "overopt", "Measure overoptimization: proxy vs gold reward over best-of-n."),
    "judge": Verb("judge", "judge", "Label preference pairs with an AI judge against principles."),
}


DATA_VERBS = {
    "audit": Verb("data", "data_audit", "Audit preference data: duplicates, length bias, agreement."),
    "prepare": Verb("data", "data_prepare", "Dedupe, cap pairs per prompt and split train/eval by prompt."),
}


def load_verb(name: str, verb: Verb) -> TyperCommand:
    """The verb's real command, its module imported now."""
    single = typer.Typer(**SETTINGS)
    single.command(name)(getattr(importlib.import_module(f"rewardkit.cli.{verb.module}"), verb.function))
    return get_command(single)


class LazyGroup(TyperGroup):
    """A group listing `verbs` by their summaries; a verb's module is imported only when it is resolved to run."""

    verbs: ClassVar[dict[str, Verb]] = VERBS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        listed = {name: TyperCommand(name, help=verb.summary) for name, verb in self.verbs.items()}
        self.commands = listed | dict(self.commands)

    def resolve_command(self, ctx, args: list[str]):
        """The command to run: a verb's real one (imported now) in place of its listing."""
        name, command, rest = super().resolve_command(ctx, args)
        if name in self.verbs:
            command = load_verb(name, self.verbs[name])
        return name, command, rest


class DataGroup(LazyGroup):
    """`rewardkit data <verb>`."""

    verbs = DATA_VERBS


ANNOTATE_VERBS = {
    "serve": Verb("annotate", "annotate_serve", "Serve the pairwise annotation app."),
    "add-user": Verb("annotate", "annotate_add_user", "Add an annotator and print their token."),
    "stats": Verb("annotate", "annotate_stats", "Agreement and per-annotator statistics."),
    "export": Verb("annotate", "annotate_export", "Export answers as preference pairs (or Label Studio / Argilla)."),
    "import": Verb("annotate", "annotate_import", "Import Label Studio or Argilla records as items."),
}


class AnnotateGroup(LazyGroup):
    """`rewardkit annotate <verb>`."""

    verbs = ANNOTATE_VERBS


def show_version(value: bool) -> None:
    """The eager --version option: print it and stop."""
    if value:
        typer.echo(f"rewardkit {rewardkit.__version__}")
        raise typer.Exit()


app = typer.Typer(cls=LazyGroup, no_args_is_help=True, rich_markup_mode=None)
data_app = typer.Typer(cls=DataGroup, no_args_is_help=True, help="Inspect and prepare preference data.", **SETTINGS)
app.add_typer(data_app, name="data")
annotate_app = typer.Typer(cls=AnnotateGroup, no_args_is_help=True, help="Collect human preferences in a browser.",
                           **SETTINGS)
app.add_typer(annotate_app, name="annotate")


VersionOption = Annotated[bool, typer.Option(
    "--version", is_eager=True, callback=show_version, help="Print rewardkit's version and exit.")]


@app.callback()
def main(version: VersionOption = False) -> None:
    """Reward modeling for LLM alignment: preference data in, reward model out."""
