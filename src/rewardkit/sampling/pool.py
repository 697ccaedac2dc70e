"""The pool: N sampled responses per prompt, one JSON line per sample, in the order they were generated.

    {"prompt_id": "3f2a9c0d1e4b5a67",          str: the prompt record's id, else a hash of the prompt
     "prompt": "What is 2 + 3?",                str, or chat messages [{"role": ..., "content": ...}, ...]
     "sample_index": 0,                         int in 0 .. N-1: which of the prompt's N samples this is
     "response": "2 + 3 = 5.",                  str: the generated text (special tokens stripped)
     "tokens": 9,                               int: generated tokens (EOS included when it was generated)
     "finish_reason": "stop",                   "stop" (the policy ended it) or "length" (max_new_tokens hit)
     "sampler": {"kind": "local", "model": "smollm2-135m", "temperature": 1.0, "top_p": 1.0,
                 "max_new_tokens": 256, "seed": 0, "precision": "fp32"},
     "reference": "5"}                          any other field: copied from the prompt record (e.g. a math answer)

`sampler` holds every parameter that defines the distribution the samples come from (for an endpoint: kind
"endpoint", model, temperature, top_p, max_new_tokens, seed); it is the same on every line, so a pool is N draws
per prompt from one distribution. Not in it: N itself (a rerun with a larger -n extends the pool), the batch size,
the endpoint's URL.

Written append-only by `PoolWriter`: each prompt's samples are one write, flushed and fsynced, so a killed run
loses at most the prompt it was working on. Reopening a pool to resume cuts a torn last line away, refuses
(ConfigError) a pool whose sampler differs from the command's, and reports what is already there so it is not
generated again.

`read_pool` refuses bad lines (DataError "POOL:LINE: field 'tokens': ...") and, by default, duplicated
(prompt_id, sample_index) pairs: two samples under one index would weigh that draw twice in a best-of-n estimate.
`scan_pool` keeps the first of each and lists the duplicates, for callers that count and report them instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewardkit.data.importers import parse_prompt, wrong_type
from rewardkit.data.records import Text
from rewardkit.errors import ConfigError, DataError
from rewardkit.io import json_line

FinishReason = Literal["stop", "length"]
FINISH_REASONS = ("stop", "length")
FIELDS = ("prompt_id", "prompt", "sample_index", "response", "tokens", "finish_reason", "sampler")
SampleKey = tuple[str, int]  # (prompt_id, sample_index)


@dataclass(frozen=True)
class PoolSample:
    """One line of a pool; `extra` holds the fields copied from the prompt record (e.g. "reference")."""

    prompt_id: str
    prompt: Text
    sample_index: int
    response: str
    tokens: int
    finish_reason: FinishReason
    sampler: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> SampleKey:
        return self.prompt_id, self.sample_index

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        return {**{name: record[name] for name in FIELDS}, **record["extra"]}


@dataclass(frozen=True)
class Duplicate:
    """A line whose (prompt_id, sample_index) an earlier line (`first_line`) already has."""

    line: int
    first_line: int
    prompt_id: str
    sample_index: int


@dataclass(frozen=True)
class PoolScan:
    """A pool's samples (the first line of each (prompt_id, sample_index)) and the later lines that repeat one."""

    samples: list[PoolSample]
    duplicates: list[Duplicate]


def parse_sample(record: Any) -> PoolSample:
    """A pool line's object as a `PoolSample`; a missing or wrong field raises DataError naming it."""
    if not isinstance(record, dict):
        raise wrong_type("(line)", "a JSON object", record)
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise DataError(f"field '{missing[0]}': missing")
    prompt = parse_prompt(record["prompt"], "prompt")
    finish_reason = record["finish_reason"]
    if finish_reason not in FINISH_REASONS:
        raise DataError(f"field 'finish_reason': expected 'stop' or 'length', got {finish_reason!r}")
    return PoolSample(
        prompt_id=typed(record, "prompt_id", str), prompt=prompt,
        sample_index=counting_number(record, "sample_index"), response=typed(record, "response", str),
        tokens=counting_number(record, "tokens"), finish_reason=finish_reason, sampler=typed(record, "sampler", dict),
        extra={name: value for name, value in record.items() if name not in FIELDS},
    )


def typed(record: dict, name: str, kind: type) -> Any:
    value = record[name]
    if not isinstance(value, kind):
        raise wrong_type(name, {str: "a string", dict: "an object"}[kind], value)
    return value


def counting_number(record: dict, name: str) -> int:
    """A non-negative integer (a bool is not one)."""
    value = record[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DataError(f"field '{name}': expected a non-negative integer, got {value!r}")
    return value


def scan_pool(path: str | Path) -> PoolScan:
    """Every sample of the pool at `path`, the first of each (prompt_id, sample_index) kept and the repeats listed.

    A bad line (not JSON, a missing or wrong field, a line not ending in a newline: a killed writer's torn last
    line) or a sampler that differs from the first line's raises DataError "PATH:LINE: ...".
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pool file")
    samples: list[PoolSample] = []
    duplicates: list[Duplicate] = []
    first_lines: dict[SampleKey, int] = {}
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            sample = parse_line(path, number, raw)
            if samples and sample.sampler != samples[0].sampler:
                difference = sampler_difference(samples[0].sampler, sample.sampler)
                raise DataError(f"{path}:{number}: field 'sampler': {difference} as on line "
                                f"{first_lines[samples[0].key]}; a pool holds the samples of one sampler")
            if sample.key in first_lines:
                duplicates.append(Duplicate(number, first_lines[sample.key], *sample.key))
            else:
                first_lines[sample.key] = number
                samples.append(sample)
    return PoolScan(samples, duplicates)


def parse_line(path: Path, number: int, raw: bytes) -> PoolSample:
    where = f"{path}:{number}"
    if not raw.endswith(b"\n"):
        raise DataError(f"{where}: the last line is cut short (a killed run); rerun `rewardkit sample` with the same "
                        "options to repair and finish the pool")
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: not a JSON line ({err})") from None
    try:
        return parse_sample(record)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None


def read_pool(path: str | Path) -> list[PoolSample]:
    """The pool's samples in file order. Duplicated (prompt_id, sample_index) pairs are a DataError that counts them
    and names the first; use `scan_pool` to keep the first of each and report the count instead."""
    scan = scan_pool(path)
    if scan.duplicates:
        first = scan.duplicates[0]
        raise DataError(
            f"{path}:{first.line}: {len(scan.duplicates)} duplicated (prompt_id, sample_index) pair(s); the first: "
            f"({first.prompt_id!r}, {first.sample_index}) is also at line {first.first_line}")
    return scan.samples


def group_by_prompt(samples: Iterable[PoolSample]) -> dict[str, list[PoolSample]]:
    """prompt_id -> its samples by sample_index, prompts in order of first appearance."""
    groups: dict[str, list[PoolSample]] = {}
    for sample in samples:
        groups.setdefault(sample.prompt_id, []).append(sample)
    return {prompt_id: sorted(group, key=lambda s: s.sample_index) for prompt_id, group in groups.items()}


def sampler_difference(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """The first parameter on which two samplers differ: "temperature 0.7, not 1.0"."""
    for name in sorted(expected.keys() | found.keys()):
        if expected.get(name) != found.get(name):
            return f"{name} {found.get(name)!r}, not {expected.get(name)!r}"
    return "the same sampler"


def cut_torn_tail(path: Path, block: int = 1 << 16) -> int:
    """Truncate a last line with no newline (a write a kill interrupted); the bytes cut (0 when none)."""
    with path.open("rb+") as f:
        end = position = f.seek(0, os.SEEK_END)
        keep = 0
        while position > 0:
            start = max(0, position - block)
            f.seek(start)
            newline = f.read(position - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        if keep < end:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return end - keep


class PoolWriter:
    """Appends prompt groups to a pool for one sampler; opening an existing pool resumes it.

        with PoolWriter(path, sampler) as pool:
            for prompt in prompts:
                todo = [i for i in range(n) if (prompt_id, i) not in pool.done]
                pool.write_group(samples)  # one write, flushed and fsynced
    """

    def __init__(self, path: str | Path, sampler: dict[str, Any]) -> None:
        self.path, self.sampler = Path(path), sampler
        self.done: set[SampleKey] = set()
        self.torn_bytes = 0
        self._file = None

    def __enter__(self) -> PoolWriter:
        if self.path.is_file():
            self.torn_bytes = cut_torn_tail(self.path)
            self.done = {sample.key for sample in self.existing_samples()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def existing_samples(self) -> list[PoolSample]:
        """The samples already in the pool; a pool of another sampler is a ConfigError naming the difference."""
        samples = read_pool(self.path)
        if samples and samples[0].sampler != self.sampler:
            raise ConfigError(
                f"{self.path} was sampled with {sampler_difference(self.sampler, samples[0].sampler)} as asked now: "
                "rerun with the pool's parameters to resume it, or write a new pool with --output")
        return samples

    def write_group(self, samples: Sequence[PoolSample]) -> None:
        """Append one prompt's samples in one write, then flush and fsync."""
        for sample in samples:
            if sample.sampler != self.sampler:
                raise ValueError("a sample of another sampler")
            if sample.key in self.done:
                raise ValueError(f"sample {sample.key} is already in the pool")
        self._file.write("".join(json_line(sample.to_dict()) for sample in samples).encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.update(sample.key for sample in samples)
