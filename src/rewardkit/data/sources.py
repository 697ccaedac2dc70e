"""Reading records from files or the hub, each located for error messages, through one importer.

Sources: `.jsonl`, `.jsonl.gz`, `.json` (an array, or an object with one list field), `.json.gz`, `.parquet`,
`.csv`, or else a Hugging Face hub dataset name. `load_records` is the one loop that decodes, imports and either
raises a bad record's `DataError("FILE:LINE: field 'chosen': empty response")` ("FILE row N" for parquet, csv
and hub rows, N counted from 0; "FILE key[N]" for an object-wrapped .json) or, with `on_bad_record="skip"`,
lists it as a `SkippedRecord`. Every loader of `rewardkit.data` goes through it."""

from __future__ import annotations

import bisect
import csv
import gzip
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rewardkit.data.importers import Detection, Importer, detect_format, optional_key
from rewardkit.data.records import LoadedRecords, SkippedRecord
from rewardkit.errors import ConfigError, DataError


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


def load_records(
    source: str | Path, importers: Mapping[str, Importer], detection: Detection,
    build: Callable[..., Any] | Mapping[str, Callable[..., Any]], *, format: str = "auto", split: str = "train",
    on_bad_record: Literal["error", "skip"] = "error", subset: str | None = None, subset_field: str | None = None,
) -> LoadedRecords:
    """Every record of `source` through one importer (`format`, else detected from the first record), each of its
    field dicts made into `build(**fields)` (`build[format]` when the record type depends on the format). The record
    types all have `subset`: `subset` sets it for every record, else `subset_field` names the field of the record
    to read it from instead of the importer's.

    Default ids are "{file stem}-{record index}". `on_bad_record="error"` raises the first bad record's `DataError`
    located "FILE:LINE: ..."; "skip" lists it in `skipped`. Errors about the whole source (missing, unreadable,
    no records) always raise.
    """
    if format != "auto" and format not in importers:
        raise DataError(f"{source}: unknown format '{format}'; expected one of {['auto', *importers]}")
    if on_bad_record not in ("error", "skip"):
        raise ConfigError(f"on_bad_record must be 'error' or 'skip', not {on_bad_record!r}")
    stem, records = _open_source(source, split)
    result, notes, name = LoadedRecords(records=[], skipped=[], notes={}), Counter(), format
    for record in records:
        notes["records"] += 1
        try:
            value = _decode(record)
            name = detect_format(value, detection, importers) if name == "auto" else name
            make = build[name] if isinstance(build, Mapping) else build
            override = _subset_override(value, subset, subset_field)
            result.records += [make(**(fields | override))
                               for fields in importers[name](value, f"{stem}-{record.index}", notes)]
        except DataError as error:
            if on_bad_record == "error":
                raise DataError(f"{record.location}: {error}") from error
            result.skipped.append(SkippedRecord(record.location, str(error)))
    if not notes["records"]:
        raise DataError(f"{source}: no records")
    result.notes = dict(notes)
    return result


def _subset_override(record: dict, subset: str | None, subset_field: str | None) -> dict:
    """{"subset": ...} replacing what the importer found, or {} to keep it."""
    if subset is not None:
        return {"subset": subset}
    return {} if subset_field is None else {"subset": optional_key(record, subset_field)}


def read_records(source: str | Path, split: str = "train") -> Iterator[tuple[str, dict]]:
    """(location, record) for every raw record of any source, for inputs in other layouts (e.g. `score_file`)."""
    for record in _open_source(source, split)[1]:
        try:
            yield record.location, _decode(record)
        except DataError as error:
            raise DataError(f"{record.location}: {error}") from error
