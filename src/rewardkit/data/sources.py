"""Reading records from files, stdin or the hub, each located for error messages, through one importer.

Sources: `.jsonl`, `.jsonl.gz`, `.json` (an array, or an object with one list field), `.json.gz`, `.parquet`,
`.csv`, `-` (or `/dev/stdin`: JSON lines on standard input), or else a Hugging Face hub dataset name. Text files may
start with a UTF-8 BOM. JSON is read strictly: a key given twice in an object, `NaN`, `Infinity` and numbers out
of float range are bad records, not silently kept. `load_records` is the one loop that decodes, imports and either
raises a bad record's `DataError("FILE:LINE: field 'chosen': missing")` ("<stdin>:LINE" for stdin, "FILE row N"
for parquet, csv and hub rows, N counted from 0) or, with `on_bad_record="skip"`, lists it as a `SkippedRecord`.
Every loader of `rewardkit.data` goes through it."""

from __future__ import annotations

import bisect
import codecs
import csv
import gzip
import io
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from rewardkit.data.importers import Detection, Importer, detect_format, optional_key
from rewardkit.data.records import LoadedRecords, SkippedRecord
from rewardkit.errors import ConfigError, DataError

STDIN = ("-", "/dev/stdin")


@dataclass(frozen=True)
class _Record:
    location: str  # "FILE:LINE", "<stdin>:LINE" or "FILE row N"
    index: int  # position among the source's records, for default ids
    value: Any  # a decoded record, or the raw text (bytes for a JSON line) of one JSON record, decoded by `_decode`


def _duplicate(keys: Iterable[str]) -> str | None:
    """The first key that comes a second time, or None."""
    seen = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def _unique_object(pairs: list[tuple[str, Any]]) -> dict:
    key = _duplicate(key for key, _ in pairs)
    if key is not None:
        raise DataError(f"duplicate key '{key}' (JSON would keep only its last value)")
    return dict(pairs)


def _refuse_constant(name: str) -> NoReturn:
    raise DataError(f"{name} is not valid JSON (no NaN or infinite numbers)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise DataError(f"number {text} is out of range (no NaN or infinite numbers)")
    return number


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        raise DataError(f"integer of {len(text)} digits is too long") from None


class _Decoder(json.JSONDecoder):
    """A JSON decoder for which nesting too deep for Python is a `JSONDecodeError`, like any other malformed JSON."""

    def raw_decode(self, s: str, idx: int = 0) -> tuple[Any, int]:
        try:
            return super().raw_decode(s, idx)
        except RecursionError:
            raise json.JSONDecodeError("nested too deeply", s, idx) from None


# Records: a key given twice, NaN, Infinity, a float out of range or an integer too long to read raise `DataError`
# (a bad record); nesting too deep for Python is malformed JSON.
STRICT_JSON = _Decoder(object_pairs_hook=_unique_object, parse_constant=_refuse_constant, parse_float=_finite_float,
                       parse_int=_integer)


# Structure only (every number becomes its length, nothing is refused): where a value ends, which fields are lists.
SHAPE_JSON = _Decoder(parse_constant=len, parse_float=len, parse_int=len)


def _decode(record: _Record) -> dict:
    value = record.value
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"not valid UTF-8 (byte {value[error.start]:#04x} at column {error.start + 1})") from error
    if isinstance(value, str):
        try:
            value = STRICT_JSON.decode(value)
        except json.JSONDecodeError as error:
            raise DataError(f"malformed JSON: {error.msg} (column {error.colno})") from error
    if not isinstance(value, dict):
        raise DataError(f"expected a record (JSON object), got {type(value).__name__}")
    return value


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _read_text(path: Path) -> str:
    """The whole file (gunzipped) as text, without a leading BOM."""
    try:
        with _open_binary(path) as file:
            data = file.read().removeprefix(codecs.BOM_UTF8)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read: {error}") from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte {data[error.start]:#04x})") from error


def _json_lines(where: str, lines: Iterable[bytes]) -> Iterator[_Record]:
    """One record per non-blank line (a BOM before the first is dropped); each is decoded on its own, so a bad line
    is a bad record."""
    index = 0
    for number, line in enumerate(lines, start=1):
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if line.strip():
            yield _Record(f"{where}:{number}", index, line)
            index += 1


def _read_jsonl(path: Path) -> Iterator[_Record]:
    try:
        with _open_binary(path) as lines:
            yield from _json_lines(str(path), lines)
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read: {error}") from error


SPACE = re.compile(r"[ \t\n\r]*")


def _line_locator(path: Path, text: str) -> Callable[[int], str]:
    """position in `text` -> "FILE:LINE"."""
    newlines = [match.start() for match in re.finditer("\n", text)]
    return lambda position: f"{path}:{bisect.bisect_left(newlines, position) + 1}"


def _array_element(text: str, position: int) -> tuple[Any, int]:
    """(the element at `position`, where it ends); an element JSON does not allow is kept as its raw text, so that
    `_decode` makes it a bad record."""
    try:
        return STRICT_JSON.raw_decode(text, position)
    except DataError:
        end = SHAPE_JSON.raw_decode(text, position)[1]
        return text[position:end], end


def _json_array(text: str, start: int, where: Callable[[int], str]) -> Generator[_Record, None, int]:
    """The elements of the array opening at `start`, each located by the line it starts on; returns where the
    array ends. Malformed JSON ends the file: no later element can be found."""
    position, index = SPACE.match(text, start + 1).end(), 0
    while not text.startswith("]", position):
        if index:
            if not text.startswith(",", position):
                raise DataError(f"{where(position)}: malformed JSON: expected ',' or ']' after a record")
            position = SPACE.match(text, position + 1).end()
        try:
            value, end = _array_element(text, position)
        except json.JSONDecodeError as error:
            raise DataError(f"{where(error.pos)}: malformed JSON: {error.msg}") from error
        yield _Record(where(position), index, value)
        position, index = SPACE.match(text, end).end(), index + 1
    return position + 1


def _field_starts(text: str, start: int, where: Callable[[int], str]) -> dict[str, int]:
    """Where each field's value begins in the well-formed, non-empty JSON object opening at `start`; a key given
    twice is an error."""
    starts, position = {}, start
    while text[position] != "}":  # at the "{" or the "," before a field
        key, position = json.decoder.scanstring(text, SPACE.match(text, position + 1).end() + 1)
        if key in starts:
            raise DataError(f"{where(position)}: duplicate key '{key}' (JSON would keep only its last value)")
        starts[key] = SPACE.match(text, SPACE.match(text, position).end() + 1).end()  # past the ":"
        position = SPACE.match(text, SHAPE_JSON.raw_decode(text, starts[key])[1]).end()
    return starts


def _read_json(path: Path) -> Iterator[_Record]:
    """A JSON array of records, an object whose one list field holds them, or JSON lines named .json."""
    text = _read_text(path)
    where = _line_locator(path, text)
    start = SPACE.match(text).end()
    if text.startswith("[", start):
        end = yield from _json_array(text, start, where)
        if SPACE.match(text, end).end() != len(text):
            raise DataError(f"{where(end)}: malformed JSON: extra data after the array")
    elif start < len(text):
        yield from _json_object(path, text, start, where)


def _json_object(path: Path, text: str, start: int, where: Callable[[int], str]) -> Iterator[_Record]:
    """The records of the one list field of the JSON object opening at `start`, or JSON lines when the file
    holds several values."""
    try:
        shape = SHAPE_JSON.decode(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            yield from _read_jsonl(path)
            return
        raise DataError(f"{where(error.pos)}: malformed JSON: {error.msg}") from error
    lists = [key for key, value in shape.items() if isinstance(value, list)] if isinstance(shape, dict) else []
    if len(lists) != 1:
        raise DataError(f"{path}: expected a JSON array of records, or an object with exactly one list field")
    yield from _json_array(text, _field_starts(text, start, where)[lists[0]], where)


def _refuse_duplicate_column(where: str, names: Iterable[str]) -> None:
    name = _duplicate(names)
    if name is not None:
        raise DataError(f"{where}: duplicate column '{name}'")


def _rows(where: str, rows: Iterable[dict]) -> Iterator[_Record]:
    for index, row in enumerate(rows):
        yield _Record(f"{where} row {index}", index, row)


def _read_csv(path: Path) -> Iterator[_Record]:
    """Every cell is a string (no type guessing), so `chosen` = "42" stays text."""
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        _refuse_duplicate_column(f"{path}:1", reader.fieldnames or [])
        yield from _rows(str(path), reader)
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {error}") from error


def _read_parquet(path: Path) -> Iterator[_Record]:
    import pyarrow.parquet  # lazy: heavy, and only parquet sources need it

    try:
        file = pyarrow.parquet.ParquetFile(path)
        _refuse_duplicate_column(str(path), file.schema_arrow.names)
        yield from _rows(str(path), (row for batch in file.iter_batches() for row in batch.to_pylist()))
    except DataError:
        raise
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise DataError(f"{path}: cannot read parquet: {error}") from error


def _read_hub(name: str, split: str) -> Iterator[_Record]:
    import datasets  # lazy: heavy (imports pyarrow, fsspec, the hub client), only hub sources need it

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
    """(stem for default ids, records). `-` and `/dev/stdin` are JSON lines on stdin. A str that is not an existing
    path and does not look like one (no data-file suffix, no leading ".", "/" or "~") is a hub dataset name; an
    existing path must be a regular file."""
    if str(source) in STDIN:
        return "stdin", _json_lines("<stdin>", sys.stdin.buffer)
    path = Path(source).expanduser()
    suffix = _file_suffix(path.name)
    if path.is_file():
        if suffix is None:
            raise DataError(f"{path}: unsupported file type; expected one of {', '.join(FILE_READERS)}")
        return path.name[: -len(suffix)], FILE_READERS[suffix](path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give a data file")
    if path.exists():
        raise DataError(f"{path}: not a file (a pipe, device or socket); give a data file, or - for stdin")
    looks_like_path = isinstance(source, Path) or suffix is not None or str(source).startswith((".", "/", "~"))
    if looks_like_path:
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
