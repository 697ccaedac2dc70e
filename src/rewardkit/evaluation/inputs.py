"""The preference files `rewardkit eval` reads: pairs, and RewardBench 2 prompts with their pairs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import BestOfGroup, PreferencePair, SkippedRecord
from rewardkit.errors import DataError

DATA_SUFFIXES = (".gz", ".jsonl", ".json", ".csv", ".parquet")  # stripped, in this order, to name a file's subset


@dataclass
class EvalData:
    pairs: list[PreferencePair]
    groups: list[BestOfGroup] = field(default_factory=list)  # RewardBench 2 prompts; their pairs are in `pairs`
    skipped: list[SkippedRecord] = field(default_factory=list)  # records skipped as bad


def load_eval_data(files: Sequence[str], *, subset_field: str | None = None, format: str = "auto",
                   on_bad_record: Literal["error", "skip"] = "error") -> EvalData:
    """Pairs (and RewardBench 2 prompts) of every file (`load_preferences`). Subsets: each record's `subset`, or
    its `subset_field`; without `subset_field`, pairs of several files lacking one take the file's name. Pair ids
    are made unique across files ("#2", "#3" appended to repeats) so predictions can be joined by id."""
    data = EvalData(pairs=[])
    for file in files:
        part = load_preferences(file, format=format, on_bad_record=on_bad_record, subset_field=subset_field)
        if not part.pairs:
            reason = (f" (skipped {len(part.skipped)} bad records, the first: {part.skipped[0]})"
                      if part.skipped else "")
            raise DataError(f"{file}: no usable preference pairs{reason}; check it with `rewardkit data audit {file}`")
        if subset_field is None and len(files) > 1:
            part.pairs = [pair if pair.subset else replace(pair, subset=file_stem(file)) for pair in part.pairs]
        data.pairs += part.pairs
        data.groups += part.groups
        data.skipped += part.skipped
    if subset_field is not None and not any(pair.subset for pair in data.pairs):
        raise DataError(f"no record in {', '.join(files)} has a field '{subset_field}'; "
                        "pass the name of the field that holds each record's subset, or leave out --subset-field")
    data.pairs = with_unique_ids(data.pairs)
    return data


def file_stem(file: str) -> str:
    name = Path(file).name
    for suffix in DATA_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def with_unique_ids(pairs: list[PreferencePair]) -> list[PreferencePair]:
    seen: Counter = Counter()
    unique = []
    for pair in pairs:
        seen[pair.id] += 1
        unique.append(pair if seen[pair.id] == 1 else replace(pair, id=f"{pair.id}#{seen[pair.id]}"))
    return unique
