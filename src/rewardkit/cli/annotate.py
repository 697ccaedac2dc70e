"""`rewardkit annotate serve | add-user | stats | export | import`: a labelling round over one SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rewardkit.annotate.pages import DEFAULT_GUIDELINES
from rewardkit.annotate.rounds import add_items_from, export_answers, stats, stats_text
from rewardkit.annotate.store import AnnotationStore
from rewardkit.cli.common import BatchSizeOption, PrecisionOption, console, err_console, user_errors, warn
from rewardkit.errors import ConfigError
from rewardkit.io import check_output_file, write_json_atomic
from rewardkit.models.reward_model import SCORING_BATCH_SIZE

DbOption = Annotated[Path, typer.Option(metavar="FILE", help="The round's SQLite database (created if missing).")]
ItemFormat = Literal["auto", "pairs", "pool", "label-studio", "argilla"]
ItemFormatOption = Annotated[ItemFormat, typer.Option(
    help="The items' layout; auto tells a sample pool, Label Studio or Argilla file, else reads pairs.")]


def is_loopback(host: str) -> bool:
    from rewardkit.cli.serve import is_loopback as loopback  # the one check `rewardkit serve` uses

    return loopback(host)


def read_guidelines(path: Path | None) -> str:
    if path is None:
        return DEFAULT_GUIDELINES
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--guidelines {path}: cannot read: {error}") from error


@user_errors
def annotate_serve(
    db: DbOption,
    data: Annotated[str | None, typer.Option(metavar="FILE", help=(
        "Items: preference pairs, a ranking, a `rewardkit sample` pool, Label Studio or Argilla records "
        "(added to the database; omit to serve what it holds)."))] = None,
    format: ItemFormatOption = "auto",
    gold: Annotated[str | None, typer.Option(metavar="FILE", help=(
        "Gold pairs (chosen is the right answer) mixed in for every annotator and scored."))] = None,
    guidelines: Annotated[Path | None, typer.Option(metavar="FILE", help=(
        "Markdown guidelines shown first (default: built-in general guidelines)."))] = None,
    overlap: Annotated[int, typer.Option(min=1, metavar="K", help="Annotators per item.")] = 1,
    select_with: Annotated[Path | None, typer.Option(metavar="DIR", help=(
        "A reward model or ensemble: serve first the items it is least certain about."))] = None,
    batch_size: BatchSizeOption = SCORING_BATCH_SIZE,
    precision: PrecisionOption = "auto",
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Interface to listen on (loopback by default).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="Port to listen on.")] = 8400,
) -> None:
    """Serve the pairwise annotation app.

    Annotators log in with the token `rewardkit annotate add-user` printed; every answer is committed to --db
    before the page moves on, so the server can be stopped (or killed) and restarted at any time.
    """
    import uvicorn

    from rewardkit.annotate.app import create_app

    text = read_guidelines(guidelines)
    store = AnnotationStore(db)
    notes = add_items_from(store, data, format=format, gold=gold)
    if select_with is not None:
        order_with_model(store, select_with, batch_size, precision)
    if not store.annotators():
        warn(f"no annotators yet: add one with `rewardkit annotate add-user --db {db} --name NAME`")
    if not is_loopback(host):
        warn(f"listening on {host}: tokens and answers travel unencrypted; put a TLS proxy in front")
    added = ", ".join(f"{key} {value}" for key, value in notes.items())
    err_console.print(f"{len(store.items())} items ({added}); overlap {overlap}; http://{host}:{port}/",
                      highlight=False)
    uvicorn.run(create_app(store, guidelines=text, overlap=overlap), host=host, port=port, log_level="warning")


def order_with_model(store: AnnotationStore, directory: Path, batch_size: int, precision: str) -> None:
    """--select-with: the items least certain to the model first (imported here: torch only when asked)."""
    from rewardkit.annotate.selection import order_by_model
    from rewardkit.cli.common import quiet_transformers
    from rewardkit.scoring.loading import load_scorer

    quiet_transformers()
    scorer = load_scorer(directory, precision=precision)
    count = order_by_model(store, scorer, batch_size=batch_size)
    err_console.print(f"ordered {count} items by {directory}'s certainty, least certain first ({scorer.precision})",
                      highlight=False)


@user_errors
def annotate_add_user(
    db: DbOption,
    name: Annotated[str, typer.Option(metavar="NAME", help="The annotator's name (shown in stats).")],
) -> None:
    """Add an annotator and print their token.

    Only a hash of the token is stored: give it to the annotator now; it cannot be shown again.
    """
    token = AnnotationStore(db).add_annotator(name)
    console.print(token)
    err_console.print(f"added {name}: they log in with the token above", highlight=False)


@user_errors
def annotate_stats(
    db: DbOption,
    output: Annotated[Path | None, typer.Option(metavar="FILE", help="Also write the statistics as JSON.")] = None,
) -> None:
    """Agreement and per-annotator statistics.

    Per annotator: answers, skips, ties, can't tell, side bias (share of A/B picks on the left), tie rate, median
    seconds per item and gold accuracy; Cohen's kappa per pair, Fleiss' kappa and Krippendorff's alpha over all.
    """
    if output is not None:
        check_output_file(output)
    report = stats(existing_store(db))
    console.print(stats_text(report), highlight=False)
    if output is not None:
        write_json_atomic(output, report)
        err_console.print(f"-> {output}", highlight=False)


@user_errors
def annotate_export(
    db: DbOption,
    output: Annotated[Path, typer.Option(metavar="FILE", help="Where to write the records.")],
    format: Annotated[Literal["pairs", "label-studio", "argilla"], typer.Option(help=(
        "pairs: rewardkit JSONL (votes, agreement, tie, preference_strength); label-studio / argilla: JSON."))
    ] = "pairs",
) -> None:
    """Export answers as preference pairs (or Label Studio / Argilla).

    Pairs train as they are: `ties: keep` with a tie-aware loss, `weight_by_agreement` or `min_agreement`.
    """
    check_output_file(output)
    notes = export_answers(existing_store(db), output, format)
    console.print(f"{', '.join(f'{key} {value}' for key, value in notes.items()) or 'nothing'} -> {output}",
                  highlight=False)


@user_errors
def annotate_import(
    db: DbOption,
    input: Annotated[str, typer.Option(metavar="FILE", help="Label Studio tasks or Argilla records (JSON/JSONL).")],
    format: Annotated[Literal["auto", "label-studio", "argilla"], typer.Option(
        help="The records' layout; auto tells them by their fields.")] = "auto",
) -> None:
    """Import Label Studio or Argilla records as items.

    Existing items are kept; a record whose id is already stored with other texts is refused.
    """
    store = AnnotationStore(db)
    notes = add_items_from(store, input, format=format)
    console.print(f"added {notes.get('items_added', 0)} items -> {db} ({len(store.items())} in all)",
                  highlight=False)


def existing_store(db: Path) -> AnnotationStore:
    if not db.is_file():
        raise ConfigError(f"--db {db}: no such database (create it with `rewardkit annotate serve --data ...`)")
    return AnnotationStore(db)
