"""The preference files `rewardkit eval` reads: pairs, and RewardBench 2 prompts with their pairs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

from rewardkit.data.importers import IMPORTERS, detect_format
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import PreferencePair
from rewardkit.data.rewardbench2 import REWARDBENCH2, BestOfGroup, best_of_group, group_pairs, is_best_of_n
from rewardkit.data.sources import read_records
from rewardkit.errors import ConfigError, DataError

FORMATS = ("auto", REWARDBENCH2, *IMPORTERS)


DATA_SUFFIXES = (".gz", ".jsonl", ".json", ".csv", ".parquet")  # stripped, in this order, to name a file's subset


@dataclass
class EvalData:
    pairs: list[PreferencePair]
    groups: list[BestOfGroup] = field(default_factory=list)  # RewardBench 2 prompts; their pairs are in `pairs`
    skipped: list[str] = field(default_factory=list)  # "location: reason" of records skipped as bad


def load_eval_data(files: Sequence[str], *, subset_field: str | None = None, format: str = "auto",
                   on_bad_record: Literal["error", "skip"] = "error") -> EvalData:
    """Pairs (and RewardBench 2 prompts) of every file, with subsets as the module docstring says; pair ids are
    made unique across files ("#2", "#3" appended to repeats) so predictions can be joined by id."""
    if format not in FORMATS:
        raise DataError(f"unknown format '{format}'; expected one of {list(FORMATS)}")
    if on_bad_record not in ("error", "skip"):
        raise ConfigError(f"on_bad_record must be 'error' or 'skip', not {on_bad_record!r}")
    data = EvalData(pairs=[])
    for file in files:
        part = load_file(file, subset_field, format, on_bad_record)
        if not part.pairs:
            reason = f" (skipped {len(part.skipped)} bad records, the first: {part.skipped[0]})" if part.skipped else ""
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


def load_file(file: str, subset_field: str | None, format: str, on_bad_record: str) -> EvalData:
    if format == REWARDBENCH2 or (format == "auto" and is_best_of_n(first_record(file))):
        groups, skipped = parse_records(file, on_bad_record, lambda record, index: [
            best_of_group(record, f"{file_stem(file)}-{index}", subset_field or "subset")])
        return EvalData(pairs=[pair for group in groups for pair in group_pairs(group)], groups=groups, skipped=skipped)
    if subset_field in (None, "subset"):
        loaded = load_preferences(file, format=format, on_bad_record=on_bad_record)
        return EvalData(pairs=loaded.pairs, skipped=[f"{s.location}: {s.reason}" for s in loaded.skipped])
    pairs, skipped = parse_records(file, on_bad_record, lambda record, index: import_with_subset(
        record, f"{file_stem(file)}-{index}", subset_field, format))
    return EvalData(pairs=pairs, skipped=skipped)


Item = TypeVar("Item")


def parse_records(file: str, on_bad_record: str,
                  parse: Callable[[dict, int], list[Item]]) -> tuple[list[Item], list[str]]:
    """`parse(record, index)` over the raw records of `file`; a bad record raises or is listed as skipped."""
    items, skipped = [], []
    for index, (location, record) in enumerate(read_records(file)):
        try:
            items += parse(record, index)
        except DataError as error:
            if on_bad_record == "error":
                raise DataError(f"{location}: {error}") from error
            skipped.append(f"{location}: {error}")
    return items, skipped


def import_with_subset(record: dict, default_id: str, subset_field: str, format: str) -> list[PreferencePair]:
    """The record's pairs through its importer, with `subset_field`'s value as their subset.

    (`load_preferences` reads only the field named `subset`; this reads another one.)"""
    value = record.get(subset_field)
    importer = IMPORTERS[detect_format(record) if format == "auto" else format]
    relabelled = {**record, "subset": None if value is None else str(value)}
    return [PreferencePair(**fields) for fields in importer(relabelled, default_id, Counter())]


def first_record(file: str) -> dict | None:
    """The first record, or None when there is none or it is unreadable (the importers then report it)."""
    try:
        return next((record for _, record in read_records(file)), None)
    except DataError:
        return None


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
