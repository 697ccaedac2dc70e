"""A content-addressed, append-only cache of judge answers: one JSON line per answered request, fsynced.

    cache = JudgeCache("runs/judge/cache.jsonl")
    key = request_key(judge="hf:smollm2-135m", kind="compare", template=..., principle=..., prompt=..., ...)
    cache.get(key)                     # None, or {"key", "verdict": {...}} / {"key", "text"} / {"key", "error"}
    cache.put({"key": key, "verdict": verdict.to_dict()})

A key is the SHA-256 of everything the answer depends on (judge, kind, template, principle, prompt, the responses
in the order shown). A run killed mid-write leaves at most a torn last line: it is cut off on open, and its request
asked again. A failure is stored as `{"key", "error", "attempts"}`; a later success for the key replaces it (the
last line of a key wins). A malformed line before the last is corruption, not a crash, and a DataError.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rewardkit.errors import DataError
from rewardkit.io import json_line


def request_key(**parts) -> str:
    """SHA-256 (hex) of `parts` as canonical JSON."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JudgeCache:
    """The cache file at `path` (created on first `put`); all of it is read on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        self.torn_lines = 0
        if self.path.exists():
            self.load()

    def load(self) -> None:
        data = self.path.read_bytes()
        complete = data[:data.rfind(b"\n") + 1]
        if len(complete) < len(data):  # a write cut short by a kill: drop it so the next append starts clean
            self.torn_lines = 1
            with open(self.path, "r+b") as file:
                file.truncate(len(complete))
                os.fsync(file.fileno())
        for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
            if line.strip():
                entry = self.parse(line, number)
                self.entries[entry["key"]] = entry

    def parse(self, line: str, number: int) -> dict:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{self.path}:{number}: malformed cache entry: {err.msg}; the cache is corrupt (not a "
                            "torn last write): move it away to start over") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise DataError(f"{self.path}:{number}: a cache entry is an object with a 'key'")
        return entry

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, entry: dict) -> None:
        self.put_many([entry])

    def put_many(self, entries: list[dict]) -> None:
        """Append `entries` and fsync before returning: once this returns they survive a kill."""
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write("".join(json_line(entry) for entry in entries))
            file.flush()
            os.fsync(file.fileno())
        self.entries.update((entry["key"], entry) for entry in entries)

    def failures(self) -> int:
        return sum("error" in entry for entry in self.entries.values())
