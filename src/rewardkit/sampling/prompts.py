"""The prompts to sample from, read from any source `rewardkit.data` reads, in one of three layouts (detected from
the first record):

    prompts      {"prompt": str | messages, "prompt_id"?: str, ...}  or  {"messages": [...], ...}; every other
                 field (e.g. "reference") is copied onto each of the prompt's samples
    gsm8k        {"question": str, "answer": "... #### 18"}: the question is the prompt, "18" its "reference"
    preferences  any layout `load_preferences` imports: the pairs' prompts, each once

A prompt's id is its "prompt_id", else a hash of the prompt (stable across runs and machines). A prompt repeated
under one id is counted and sampled once; one id given to two different prompts is a DataError.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardkit.data.importers import optional_key, parse_prompt, require_field, string_field
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import Text, prompt_key
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError
from rewardkit.sampling.pool import FIELDS

GSM8K_ANSWER_MARK = "####"
PREFERENCE_FIELDS = {"chosen", "rejected", "conversations", "response1", "output"}


@dataclass(frozen=True)
class PromptRecord:
    """A prompt to sample from; `extra` is copied onto each of its samples."""

    prompt_id: str
    prompt: Text
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptSet:
    """The distinct prompts of a source, and how many records repeated one already read."""

    prompts: list[PromptRecord]
    repeated: int
    layout: str


def prompt_hash(prompt: Text) -> str:
    """A stable id for a prompt: the first 16 hex digits of the SHA-256 of its canonical text."""
    return hashlib.sha256(prompt_key(prompt).encode("utf-8")).hexdigest()[:16]


def load_prompts(source: str | Path, *, limit: int | None = None) -> PromptSet:
    """The distinct prompts of `source` (the first `limit` of them when given), in file order."""
    records = read_records(source)
    first = next(records, None)
    if first is None:
        raise DataError(f"{source}: no records")
    layout = detect_layout(first[1])
    records = itertools.chain([first], records)
    if layout == "preferences":
        prompts: Iterable[tuple[str, PromptRecord]] = preference_prompts(source)
    else:
        prompts = located_prompts(records, gsm8k_prompt if layout == "gsm8k" else prompt_record)
    return distinct(prompts, limit, layout)


def detect_layout(record: Any) -> str:
    if not isinstance(record, dict):
        return "prompts"  # prompt_record says what is wrong with it
    if "question" in record and isinstance(record.get("answer"), str):
        return "gsm8k"
    if PREFERENCE_FIELDS & record.keys() or not {"prompt", "messages"} & record.keys():
        return "preferences"
    return "prompts"


def located_prompts(records: Iterable[tuple[str, dict]], parse) -> Iterator[tuple[str, PromptRecord]]:
    for location, record in records:
        try:
            yield location, parse(record)
        except DataError as err:
            raise DataError(f"{location}: {err}") from None


def prompt_record(record: Any) -> PromptRecord:
    if not isinstance(record, dict):
        raise DataError(f"expected a prompt object {{prompt, prompt_id?, ...}}, got {type(record).__name__}")
    name = "prompt" if "prompt" in record else "messages"
    prompt = parse_prompt(require_field(record, name), name)
    extra = {key: value for key, value in record.items() if key not in (name, "prompt_id")}
    reserved = sorted(FIELDS & extra.keys())
    if reserved:
        raise DataError(f"field '{reserved[0]}': a pool field of its own; rename it in the prompts file")
    return PromptRecord(optional_key(record, "prompt_id") or prompt_hash(prompt), prompt, extra)


def gsm8k_prompt(record: dict) -> PromptRecord:
    question = string_field(require_field(record, "question"), "question")
    answer = string_field(require_field(record, "answer"), "answer")
    if GSM8K_ANSWER_MARK not in answer:
        raise DataError(f"field 'answer': no final '{GSM8K_ANSWER_MARK} <number>' to take the reference from")
    reference = answer.rsplit(GSM8K_ANSWER_MARK, 1)[1].strip().replace(",", "")
    return PromptRecord(prompt_hash(question), question, {"reference": reference})


def preference_prompts(source: str | Path) -> Iterator[tuple[str, PromptRecord]]:
    for pair in load_preferences(source, ties="keep").pairs:
        yield f"{source} pair {pair.id}", PromptRecord(prompt_hash(pair.prompt), pair.prompt)


def distinct(prompts: Iterable[tuple[str, PromptRecord]], limit: int | None, layout: str) -> PromptSet:
    """Each prompt once; one id for two different prompts is a DataError naming both places."""
    seen: dict[str, tuple[str, PromptRecord]] = {}
    repeated = 0
    for location, record in prompts:
        if record.prompt_id in seen:
            first_location, first = seen[record.prompt_id]
            if prompt_key(first.prompt) != prompt_key(record.prompt):
                raise DataError(f"{location}: prompt_id {record.prompt_id!r} is also {first_location}'s, "
                                "another prompt; give each prompt its own id")
            repeated += 1
        elif limit is None or len(seen) < limit:
            seen[record.prompt_id] = location, record
    return PromptSet([record for _, record in seen.values()], repeated, layout)
