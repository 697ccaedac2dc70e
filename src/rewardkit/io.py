"""Atomic file writes: a reader never sees a half-written file, and a crash never leaves one behind.

Every JSON file rewardkit writes is strict JSON (`allow_nan=False`): a NaN or infinity that reaches a writer is a
bug and raises, never a `NaN` token that strict parsers refuse. Undefined metrics are written as null
(`finite_or_none`). `check_output_file` / `check_output_dir` refuse an unusable output path before any work.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rewardkit.errors import ConfigError

STDOUT = "-"  # an output path meaning standard output (`score_file`)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _current_umask()  # read once: os.umask is process-wide, so reading it later would race with threads


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes the file private; give it the usual permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_line(record) -> str:
    """One strict JSON line (no NaN / Infinity), newline included."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_jsonl_atomic(path: str | Path, records: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(map(json_line, records)))


def write_jsonl(output: str | Path, records: Iterable[dict]) -> None:
    """JSON lines to `output` atomically, or to standard output when `output` is "-"."""
    if str(output) == STDOUT:
        sys.stdout.writelines(map(json_line, records))
        sys.stdout.flush()
    else:
        write_jsonl_atomic(output, records)


def finite_or_none(obj):
    """`obj` with every NaN or infinite float (an undefined metric) replaced by None, in nested dicts and lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(value) for value in obj]
    return obj


def check_output_file(path: str | Path) -> None:
    """Refuse, before any work, an output file that is a directory or whose folder cannot be written or made."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory: give a file path")
    check_creatable(path.parent, what=f"output {path}")


def check_output_dir(path: str | Path) -> None:
    """Refuse, before any work, an output directory that is a file or cannot be written or made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output directory {path} is a file: give a directory")
    check_creatable(path, what=f"output directory {path}")


def check_creatable(directory: Path, *, what: str) -> None:
    """`directory` exists and is writable, or its nearest existing parent is a writable directory."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {existing} is not writable")
