"""Preference data: one record type, loading from files or the hub, an audit and a train/eval split.

    result = load_preferences("hh-rlhf-harmless-base-test.jsonl.gz", on_bad_record="skip")
    audit = audit_preferences(result.pairs, votes=result.votes)  # duplicates, length baseline, agreement...
    split = prepare_preferences(result.pairs, eval_fraction=0.1)
    save_preferences(split.train, "runs/data/train.jsonl")       # canonical jsonl, loads back as format "pairs"

Sources: `.jsonl`, `.jsonl.gz`, `.json` (an array, or an object with one list field), `.json.gz`, `.parquet`,
`.csv`, or else a Hugging Face hub dataset name. Formats, picked by `format="auto"` from the first record's fields
(checked in this order):

    sharegpt  conversations [{from, value}], chosen, rejected
    pandalm   instruction, input, response1, response2, annotator1..3 (strict majority, votes kept; splits dropped)
    ranked    instruction, input, history, output [best, ..., worst] (expanded to every ordered pair)
    pairs     prompt | messages, chosen, rejected (TRL standard/conversational, RewardBench, this module's own);
              optional tie, votes, preference_strength (HelpSteer2-Preference 1..3 or Llama 2 strings -> margin)
    implicit  chosen, rejected: full transcripts sharing a prefix (HH-RLHF text, or message lists)

Voted pairs carry their votes (1 = chosen better, 2 = rejected better, 0 = tie). `load_preferences` drops tie pairs
unless `ties="keep"`, drops pairs below `min_agreement`, can scale weights by agreement, and returns every voted
item's votes (three-way splits and ties included) for `audit_preferences`' Fleiss' kappa.

The layouts are converted in `rewardkit.importers`; this module reads sources and locates errors (`load_records`,
which the loaders of `rewardkit.labels` share). A bad record raises
`DataError("FILE:LINE: field 'chosen': empty response")` ("FILE row N" for parquet, csv and hub rows, N counted
from 0; "FILE key[N]" for an object-wrapped .json); with `on_bad_record="skip"` it is listed in
`LoadResult.skipped` instead.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import gzip
import hashlib
import io
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from rewardkit.importers import (
    DETECTION,
    IMPORTERS,
    DataError,
    Detection,
    Importer,
    Message,
    Text,
    Voting,
    detect_format,
    majority,
    voting_importers,
)
from rewardkit.io import write_jsonl_atomic

__all__ = [
    "DataError", "LoadResult", "LoadedRecords", "Message", "PairEncoder", "PreferencePair", "PreparedSplit",
    "SkippedRecord", "Text", "audit_preferences", "fleiss_kappa", "load_preferences", "load_records",
    "prepare_preferences", "prompt_key", "read_records", "save_preferences", "split_by_prompt",
]


@dataclass(frozen=True)
class PreferencePair:
    """`chosen` is preferred over `rejected` as a reply to `prompt`.

    Importers keep the three texts one kind: when any is messages, a plain prompt becomes a user message and
    plain replies become assistant messages. Replies in message form hold only assistant messages. With `tie` the
    two replies are equally good (their order is arbitrary); `votes` are each annotator's vote in the pair's
    orientation: 1 = chosen better, 2 = rejected better, 0 = tie.
    """

    prompt: Text
    chosen: Text
    rejected: Text
    id: str
    subset: str | None = None
    margin: float | None = None
    weight: float | None = None
    tie: bool = False
    votes: tuple[int, ...] | None = None

    @property
    def agreement(self) -> float | None:
        """Share of the votes for the most-voted option; None without votes."""
        return majority(self.votes)[1] / len(self.votes) if self.votes else None

    def to_dict(self) -> dict:
        """The canonical JSON record (format "pairs"); optional fields left at their default are left out."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {key: value for key, value in dataclasses.asdict(self).items() if value != defaults[key]}

    @classmethod
    def from_dict(cls, record: dict) -> PreferencePair:
        """Inverse of `to_dict` (`id` required); raises `DataError` naming the bad field."""
        return cls(**IMPORTERS["pairs"](record, None, Counter(), Voting(keep_ties=True))[0])


@dataclass
class SkippedRecord:
    location: str  # "FILE:LINE" or "FILE row N"
    reason: str


@dataclass
class LoadResult:
    pairs: list[PreferencePair]
    skipped: list[SkippedRecord]  # records dropped with on_bad_record="skip"
    notes: dict[str, int]  # counted events: records, no_shared_prefix, ties_dropped, expanded_ranked_pairs...
    votes: list[tuple[int, ...]] = field(default_factory=list)  # every voted item's votes, dropped ones included


@dataclass
class LoadedRecords:
    records: list  # PreferencePair, or a record type of `rewardkit.labels`
    skipped: list[SkippedRecord]
    notes: dict[str, int]


@dataclass
class PreparedSplit:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    stats: dict[str, int]


class PairEncoder(Protocol):
    """What the audit needs from a tokenizer-bound scoring spec."""

    max_length: int

    def length(self, prompt: Text, response: Text) -> int:
        """Tokens of the rendered pair before truncation."""

    def encode(self, prompt: Text, response: Text) -> list[int] | None:
        """Token ids after truncation; None when the response alone does not fit."""


# --------------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Record:
    location: str  # "FILE:LINE", "FILE row N" or "FILE key[N]"
    index: int  # position among the source's records, for default ids
    value: Any  # a decoded record, or the raw bytes of one JSON line (decoded by `_decode`)


def _decode(record: _Record) -> dict:
    value = record.value
    if isinstance(value, bytes):
        try:
            value = json.loads(value.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise DataError(f"not valid UTF-8 (byte {value[error.start]:#04x} at column {error.start + 1})") from error
        except json.JSONDecodeError as error:
            raise DataError(f"malformed JSON: {error.msg} (column {error.colno})") from error
    if not isinstance(value, dict):
        raise DataError(f"expected a record (JSON object), got {type(value).__name__}")
    return value


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _read_text(path: Path) -> str:
    try:
        with _open_binary(path) as file:
            data = file.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read: {error}") from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte {data[error.start]:#04x})") from error


def _read_jsonl(path: Path) -> Iterator[_Record]:
    """One record per non-blank line; each line is decoded on its own, so a bad line is a bad record."""
    index = 0
    try:
        with _open_binary(path) as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _Record(f"{path}:{number}", index, line)
                    index += 1
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read: {error}") from error


SPACE = re.compile(r"[ \t\n\r]*")


def _json_array(path: Path, text: str, start: int) -> Iterator[_Record]:
    """The elements of the array opening at `start`, each located by the line it starts on."""
    newlines = [match.start() for match in re.finditer("\n", text)]

    def where(position: int) -> str:
        return f"{path}:{bisect.bisect_left(newlines, position) + 1}"

    decoder = json.JSONDecoder()
    position, index = SPACE.match(text, start + 1).end(), 0
    while not text.startswith("]", position):
        if index:
            if not text.startswith(",", position):
                raise DataError(f"{where(position)}: malformed JSON: expected ',' or ']' after a record")
            position = SPACE.match(text, position + 1).end()
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{where(error.pos)}: malformed JSON: {error.msg}") from error
        yield _Record(where(position), index, value)
        position, index = SPACE.match(text, end).end(), index + 1
    if SPACE.match(text, position + 1).end() != len(text):
        raise DataError(f"{where(position)}: malformed JSON: extra data after the array")


def _read_json(path: Path) -> Iterator[_Record]:
    """A JSON array of records, an object whose one list field holds them, or JSON lines named .json."""
    text = _read_text(path)
    start = SPACE.match(text).end()
    if text.startswith("[", start):
        yield from _json_array(path, text, start)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            yield from _read_jsonl(path)
            return
        raise DataError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from error
    lists = [key for key, value in data.items() if isinstance(value, list)] if isinstance(data, dict) else []
    if len(lists) != 1:
        raise DataError(f"{path}: expected a JSON array of records, or an object with exactly one list field")
    for index, value in enumerate(data[lists[0]]):
        yield _Record(f"{path} {lists[0]}[{index}]", index, value)


def _rows(where: str, rows: Iterable[dict]) -> Iterator[_Record]:
    for index, row in enumerate(rows):
        yield _Record(f"{where} row {index}", index, row)


def _read_csv(path: Path) -> Iterator[_Record]:
    """Every cell is a string (no type guessing), so `chosen` = "42" stays text."""
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        yield from _rows(str(path), reader)
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {error}") from error


def _read_parquet(path: Path) -> Iterator[_Record]:
    import pyarrow.parquet

    try:
        batches = pyarrow.parquet.ParquetFile(path).iter_batches()
        yield from _rows(str(path), (row for batch in batches for row in batch.to_pylist()))
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise DataError(f"{path}: cannot read parquet: {error}") from error


def _read_hub(name: str, split: str) -> Iterator[_Record]:
    import datasets

    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as error:  # the hub client raises many types; each means "cannot load"
        raise DataError(f"{name}: cannot load split '{split}' from the Hugging Face hub: {error}") from error
    yield from _rows(f"{name}[{split}]", rows)


FILE_READERS: dict[str, Callable[[Path], Iterator[_Record]]] = {
    ".jsonl": _read_jsonl,
    ".jsonl.gz": _read_jsonl,
    ".json": _read_json,
    ".json.gz": _read_json,
    ".parquet": _read_parquet,
    ".csv": _read_csv,
}


def _file_suffix(name: str) -> str | None:
    return next((suffix for suffix in FILE_READERS if name.lower().endswith(suffix)), None)


def _open_source(source: str | Path, split: str) -> tuple[str, Iterator[_Record]]:
    """(stem for default ids, records). A str that is not an existing path and does not look like one
    (no data-file suffix, no leading ".", "/" or "~") is a hub dataset name; a directory goes to the hub loader."""
    path = Path(source).expanduser()
    suffix = _file_suffix(path.name)
    if path.is_file():
        if suffix is None:
            raise DataError(f"{path}: unsupported file type; expected one of {', '.join(FILE_READERS)}")
        return path.name[: -len(suffix)], FILE_READERS[suffix](path)
    looks_like_path = isinstance(source, Path) or suffix is not None or str(source).startswith((".", "/", "~"))
    if looks_like_path and not path.exists():
        raise DataError(f"{source}: no such file")
    return f"{path.name}-{split}", _read_hub(str(source), split)


# --------------------------------------------------------------------------------------------- load and save


def load_records(
    source: str | Path, importers: Mapping[str, Importer], detection: Detection, build: Callable[..., Any], *,
    format: str = "auto", split: str = "train", on_bad_record: Literal["error", "skip"] = "error",
    subset: str | None = None,
) -> LoadedRecords:
    """Every record of `source` through one importer (`format`, else detected from the first record's fields), each
    of its field dicts made into `build(**fields)`; the record types all have `subset`, which `subset` overrides.

    Default ids are "{file stem}-{record index}". `on_bad_record="error"` raises the first bad record's `DataError`
    located "FILE:LINE: ..."; "skip" lists it in `skipped`. Errors about the whole source (missing, unreadable,
    no records) always raise.
    """
    if format != "auto" and format not in importers:
        raise DataError(f"{source}: unknown format '{format}'; expected one of {['auto', *importers]}")
    if on_bad_record not in ("error", "skip"):
        raise ValueError(f"on_bad_record must be 'error' or 'skip', not {on_bad_record!r}")
    stem, records = _open_source(source, split)
    importer = importers.get(format)
    result, notes = LoadedRecords(records=[], skipped=[], notes={}), Counter()
    for record in records:
        notes["records"] += 1
        try:
            value = _decode(record)
            importer = importer or importers[detect_format(value, detection, importers)]
            result.records += [build(**fields) for fields in importer(value, f"{stem}-{record.index}", notes)]
        except DataError as error:
            if on_bad_record == "error":
                raise DataError(f"{record.location}: {error}") from error
            result.skipped.append(SkippedRecord(record.location, str(error)))
    if not notes["records"]:
        raise DataError(f"{source}: no records")
    if subset is not None:
        result.records = [dataclasses.replace(item, subset=subset) for item in result.records]
    result.notes = dict(notes)
    return result


def load_preferences(
    source: str | Path, *, format: str = "auto", split: str = "train",
    on_bad_record: Literal["error", "skip"] = "error", subset: str | None = None,
    ties: Literal["drop", "keep"] = "drop", min_agreement: float = 0.0, weight_by_agreement: bool = False,
) -> LoadResult:
    """Read every record of `source` into `PreferencePair`s with one importer (see the module docstring).

    Ids are the record's `id`, else "{file stem}-{record index}". `subset` overrides every pair's subset.
    `on_bad_record="error"` raises the first bad record's `DataError`; "skip" lists it in `skipped`.
    Errors about the whole source (missing, unreadable, no records) always raise.

    Voted data: tie pairs are dropped (counted as `ties_dropped`) unless `ties="keep"`; pairs whose agreement is
    below `min_agreement` are dropped (`below_min_agreement`); `weight_by_agreement` multiplies each voted pair's
    weight by its agreement. Kept pairs short of unanimity are counted as "kept_with_K_of_N_votes".
    """
    if ties not in ("drop", "keep"):
        raise ValueError(f"ties must be 'drop' or 'keep', not {ties!r}")
    if not 0 <= min_agreement <= 1:
        raise ValueError(f"min_agreement must be in [0, 1], not {min_agreement}")
    voting = Voting(keep_ties=ties == "keep")
    loaded = load_records(source, voting_importers(voting), DETECTION, PreferencePair, format=format, split=split,
                          on_bad_record=on_bad_record, subset=subset)
    notes = Counter(loaded.notes)
    pairs = _filter_by_agreement(loaded.records, notes, min_agreement, weight_by_agreement)
    return LoadResult(pairs=pairs, skipped=loaded.skipped, notes=dict(notes), votes=voting.tables)


def _filter_by_agreement(
    pairs: list[PreferencePair], notes: Counter, min_agreement: float, weight_by_agreement: bool,
) -> list[PreferencePair]:
    """Voted pairs at or above `min_agreement`, reweighted by their agreement when asked; drops are counted."""
    kept = []
    for pair in pairs:
        if pair.agreement is not None:
            if pair.agreement < min_agreement:
                notes["below_min_agreement"] += 1
                continue
            top = majority(pair.votes)[1]
            if top < len(pair.votes):
                notes[f"kept_with_{top}_of_{len(pair.votes)}_votes"] += 1
            if weight_by_agreement:
                pair = dataclasses.replace(pair, weight=(1.0 if pair.weight is None else pair.weight) * pair.agreement)
        kept.append(pair)
    return kept


def read_records(source: str | Path, split: str = "train") -> Iterator[tuple[str, dict]]:
    """(location, record) for every raw record of any source, for inputs in other layouts (e.g. `score_file`)."""
    for record in _open_source(source, split)[1]:
        try:
            yield record.location, _decode(record)
        except DataError as error:
            raise DataError(f"{record.location}: {error}") from error


def save_preferences(pairs: Iterable[PreferencePair], path: str | Path) -> None:
    """Write canonical jsonl (one `to_dict()` per line) atomically; it loads back as format "pairs"."""
    if str(path).endswith(".gz"):
        raise ValueError(f"{path}: save_preferences writes plain .jsonl, not gzip")
    write_jsonl_atomic(path, (pair.to_dict() for pair in pairs))


# ------------------------------------------------------------------------------------------ audit and split


def prompt_key(prompt: Text) -> str:
    """Canonical string of a prompt (or any Text): the text itself, or the messages as sorted-key JSON."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def _pair_key(pair: PreferencePair) -> tuple[str, str, str]:
    return prompt_key(pair.prompt), prompt_key(pair.chosen), prompt_key(pair.rejected)


def _plain(response: Text) -> str:
    return response if isinstance(response, str) else "\n".join(message["content"] for message in response)


def _percentile(ordered: list[int], q: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else None


def _length_baseline(pairs: Sequence[PreferencePair]) -> dict:
    """How often the chosen reply is longer: the accuracy of "pick the longer one" when ties count as misses."""
    differences = [len(_plain(pair.chosen)) - len(_plain(pair.rejected)) for pair in pairs]
    chosen_longer = sum(difference > 0 for difference in differences)
    equal = sum(difference == 0 for difference in differences)
    return {
        "length_unit": "chars",
        "chosen_longer": chosen_longer,
        "rejected_longer": len(pairs) - chosen_longer - equal,
        "equal_length": equal,
        "chosen_longer_rate": chosen_longer / len(pairs) if pairs else None,
        "equal_length_rate": equal / len(pairs) if pairs else None,
    }


def _token_audit(pairs: Sequence[PreferencePair], encoder: PairEncoder) -> dict:
    lengths = [(encoder.length(p.prompt, p.chosen), encoder.length(p.prompt, p.rejected)) for p in pairs]
    encoded = [(encoder.encode(p.prompt, p.chosen), encoder.encode(p.prompt, p.rejected)) for p in pairs]
    ordered = sorted(length for both in lengths for length in both)
    return {
        "max_length": encoder.max_length,
        "length_percentiles": {"p50": _percentile(ordered, 50), "p90": _percentile(ordered, 90),
                               "p99": _percentile(ordered, 99), "max": ordered[-1] if ordered else None},
        "over_length_pairs": sum(max(both) > encoder.max_length for both in lengths),
        "dropped_pairs": sum(chosen is None or rejected is None for chosen, rejected in encoded),
        "identical_after_truncation": sum(
            chosen is not None and chosen == rejected and pair.chosen != pair.rejected
            for pair, (chosen, rejected) in zip(pairs, encoded)
        ),
    }


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa of an items x categories table of vote counts, every item with the same number (>= 2) of
    raters. ValueError when that does not hold, or when every vote falls in one category (kappa undefined)."""
    raters = {sum(row) for row in table}
    if len(raters) != 1 or min(raters) < 2:
        raise ValueError(f"Fleiss' kappa needs items with the same number (at least 2) of raters, not {sorted(raters)}")
    (n,) = raters
    observed = sum(sum(count * (count - 1) for count in row) / (n * (n - 1)) for row in table) / len(table)
    expected = sum((sum(column) / (n * len(table))) ** 2 for column in zip(*table))
    if expected == 1:
        raise ValueError("Fleiss' kappa is undefined when every vote falls in one category")
    return (observed - expected) / (1 - expected)


def _agreement_audit(items: Sequence[Sequence[int]]) -> dict:
    """Majority strength, ties, splits, mean agreement and Fleiss' kappa (categories 1, 2, 0) of voted items."""
    outcomes = [majority(votes) for votes in items]
    shares = Counter((top, len(votes)) for votes, (_, top) in zip(items, outcomes))
    try:
        kappa = fleiss_kappa([[votes.count(option) for option in (1, 2, 0)] for votes in items])
    except ValueError:
        kappa = None
    return {
        "items_with_votes": len(items),
        "majority_strength": {f"{top}/{n}": count
                              for (top, n), count in sorted(shares.items(), key=lambda item: -item[0][0] / item[0][1])},
        "tie_majority": sum(winner == 0 for winner, _ in outcomes),
        "no_majority": sum(winner is None for winner, _ in outcomes),
        "mean_agreement": sum(top / len(votes) for votes, (_, top) in zip(items, outcomes)) / len(items),
        "fleiss_kappa": kappa,
    }


def audit_preferences(
    pairs: Sequence[PreferencePair], encoder: PairEncoder | None = None,
    votes: Sequence[Sequence[int]] | None = None,
) -> dict:
    """Data problems and baselines as a JSON-able dict; token statistics (under "tokens") need an encoder.

    Voted items get an "agreement" section: pass `votes` (`LoadResult.votes`, which keeps the items that loading
    dropped, like ties and three-way splits), else the pairs' own votes are used. Its Fleiss' kappa (categories
    first better, second better, tie) is None when undefined or when items have different numbers of votes.
    """
    copies = Counter(_pair_key(pair) for pair in pairs)
    per_prompt = Counter(prompt_key(pair.prompt) for pair in pairs)
    report = {
        "pairs": len(pairs),
        "subsets": dict(Counter(pair.subset or "(none)" for pair in pairs)),
        "duplicate_pairs": sum(count - 1 for count in copies.values()),
        "repeated_prompts": sum(count > 1 for count in per_prompt.values()),
        "pairs_with_repeated_prompts": sum(count for count in per_prompt.values() if count > 1),
        "identical_pairs": sum(pair.chosen == pair.rejected for pair in pairs),
        **_length_baseline(pairs),
    }
    if encoder is not None:
        report["tokens"] = _token_audit(pairs, encoder)
    items = [pair.votes for pair in pairs if pair.votes] if votes is None else votes
    if items:
        report["agreement"] = _agreement_audit(items)
    return report


Item = TypeVar("Item")


def _cap(group: list[Item], cap: int, seed: int, key: str) -> list[Item]:
    """At most `cap` pairs of one prompt, chosen by a generator seeded with (seed, prompt): order-independent."""
    if len(group) <= cap:
        return group
    keep = sorted(random.Random(f"{seed}:{key}").sample(range(len(group)), cap))
    return [group[i] for i in keep]


def _eval_prompts(groups: dict[str, list], eval_fraction: float, seed: int) -> set[str]:
    """Prompts in hash order until eval holds >= eval_fraction of records; the last prompt always trains."""
    target = eval_fraction * sum(len(group) for group in groups.values())
    ordered = sorted(groups, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    chosen, count = set(), 0
    for key in ordered[:-1]:
        if count >= target:
            break
        chosen.add(key)
        count += len(groups[key])
    return chosen


def _split_key(item: Any) -> str:
    """What keeps records together in a split: their `group` when they have one, else their prompt."""
    group = getattr(item, "group", None)
    return prompt_key(item.prompt) if group is None else group


def _grouped(items: Iterable[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(_split_key(item), []).append(item)
    return groups


def _split_groups(groups: dict[str, list[Item]], eval_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), not {eval_fraction}")
    eval_keys = _eval_prompts(groups, eval_fraction, seed)
    train = [item for key, group in groups.items() if key not in eval_keys for item in group]
    return train, [item for key, group in groups.items() if key in eval_keys for item in group]


def split_by_prompt(records: Iterable[Item], eval_fraction: float, seed: int = 0) -> tuple[list[Item], list[Item]]:
    """(train, eval) of any records with a `prompt` (or a `group`, which then decides): no prompt or group is on
    both sides, eval holds about `eval_fraction` of the records, and the same input and seed give the same split.
    Output is grouped by prompt, in order of first appearance."""
    return _split_groups(_grouped(records), eval_fraction, seed)


def prepare_preferences(
    pairs: Sequence[PreferencePair], *, eval_fraction: float = 0.1,
    max_pairs_per_prompt: int | None = None, seed: int = 0,
) -> PreparedSplit:
    """Dedupe, drop chosen == rejected, cap pairs per prompt, then split train/eval by prompt.

    No prompt lands on both sides. Output is grouped by prompt, in order of first appearance; the same input and
    seed give the same split.
    """
    if max_pairs_per_prompt is not None and max_pairs_per_prompt < 1:
        raise ValueError(f"max_pairs_per_prompt must be at least 1, not {max_pairs_per_prompt}")
    unique: dict[tuple[str, str, str], PreferencePair] = {}
    for pair in pairs:
        unique.setdefault(_pair_key(pair), pair)
    distinct = [pair for pair in unique.values() if pair.chosen != pair.rejected]
    groups = _grouped(distinct)
    if max_pairs_per_prompt is not None:
        groups = {key: _cap(group, max_pairs_per_prompt, seed, key) for key, group in groups.items()}
    train, held_out = _split_groups(groups, eval_fraction, seed)
    eval_prompts = len({prompt_key(pair.prompt) for pair in held_out})
    stats = {
        "input_pairs": len(pairs),
        "duplicates_removed": len(pairs) - len(unique),
        "identical_dropped": len(unique) - len(distinct),
        "capped_dropped": len(distinct) - len(train) - len(held_out),
        "train_pairs": len(train),
        "eval_pairs": len(held_out),
        "train_prompts": len(groups) - eval_prompts,
        "eval_prompts": eval_prompts,
    }
    return PreparedSplit(train=train, eval=held_out, stats=stats)
