"""A labelling round end to end, for the CLI: load items into the store, order them, report, export.

    store = AnnotationStore("round1.sqlite")
    add_items_from(store, "pool.jsonl", gold="gold.jsonl")        # items, then gold items spread among them
    token = store.add_annotator("ana")
    serve(create_app(store, guidelines=..., overlap=2))            # rewardkit annotate serve
    report = stats(store); print(stats_text(report))               # rewardkit annotate stats
    export_answers(store, "pairs.jsonl")                           # rewardkit annotate export
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from rewardkit.annotate.agreement import agreement_report
from rewardkit.annotate.export import EXPORT_FORMATS, argilla_records, export_pairs, label_studio_tasks
from rewardkit.annotate.formats import load_gold, load_items
from rewardkit.annotate.store import AnnotationStore
from rewardkit.errors import ConfigError
from rewardkit.io import finite_or_none, write_json_atomic, write_jsonl_atomic


def add_items_from(store: AnnotationStore, data: str | Path | None, *, format: str = "auto",
                   gold: str | Path | None = None) -> dict[str, int]:
    """Load `data`'s items (and `gold`'s) into `store`; counts of what the sources held and what was new."""
    notes: Counter = Counter()
    if data is not None:
        loaded = load_items(data, format)
        notes.update({f"data_{key}": value for key, value in loaded.notes.items()})
        notes["items_added"] += store.add_items(loaded.items)
    if gold is not None:
        notes["gold_added"] += store.add_items(load_gold(gold))
        store.spread_gold()
    if not store.items():
        raise ConfigError(f"{store.path} holds no items: pass --data")
    return dict(notes)


def stats(store: AnnotationStore) -> dict:
    """The agreement report of every kept answer (`rewardkit.annotate.agreement.agreement_report`)."""
    gold = {item.id: item.gold for item in store.items() if item.gold is not None}
    return finite_or_none(agreement_report(store.answers(), gold, store.annotators()))


def number(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def stats_text(report: dict) -> str:
    """The report as aligned plain text."""
    head = (f"{'annotator':<14}{'answered':>9}{'skipped':>8}{'ties':>6}{'cant':>6}{'left%':>7}{'tie%':>6}"
            f"{'s/item':>8}{'gold acc':>10}")
    lines = [head]
    for name, row in report["annotators"].items():
        left = number(row["left_rate"] * 100, 0) if row["left_rate"] is not None else "-"
        tie = number(row["tie_rate"] * 100, 0) if row["tie_rate"] is not None else "-"
        gold = f"{number(row['gold_accuracy'], 2)} ({row['gold_answered']})"
        lines.append(f"{name:<14}{row['answered']:>9}{row['skipped']:>8}{row['tie']:>6}{row['cant_tell']:>6}"
                     f"{left:>7}{tie:>6}{number(row['median_seconds'], 1):>8}{gold:>10}")
    lines.append("")
    for pair in report["pairs"]:
        first, second = pair["annotators"]
        lines.append(f"Cohen's kappa {first} / {second}: {number(pair['cohen_kappa'])} on {pair['items']} shared "
                     f"items (raw agreement {number(pair['agreement'])})")
    overall = report["overall"]
    lines.append(f"Fleiss' kappa: {number(overall['fleiss_kappa'])}   Krippendorff's alpha (nominal): "
                 f"{number(overall['krippendorff_alpha'])}   over {overall['items_with_2plus']} items with 2+ labels "
                 f"({overall['items_labelled']} labelled)")
    return "\n".join(lines)


def export_answers(store: AnnotationStore, output: str | Path, format: str = "pairs") -> dict[str, int]:
    """Write the answers as `format` (pairs JSONL, Label Studio JSON tasks, Argilla JSON records) to `output`."""
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {format!r}; expected one of {list(EXPORT_FORMATS)}")
    items, answers = store.items(), store.answers()
    if format == "pairs":
        records, notes = export_pairs(items, answers)
        write_jsonl_atomic(output, records)
        return dict(notes)
    records = (label_studio_tasks if format == "label-studio" else argilla_records)(items, answers)
    write_json_atomic(output, records)
    return {"records": len(records)}
