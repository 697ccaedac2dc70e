"""What a judge is asked about: pairs of responses to one prompt, from any input `rewardkit judge` takes.

    items = load_items("pandalm-testset-v1.json")        # any preference format: one item per pair (human label kept)
    items = load_items("responses.jsonl")                # {"prompt", "responses": [2+]}: every pair of responses
    items = load_items("pool.jsonl")                     # a `rewardkit sample` pool: every pair of a prompt's samples

A labelled pair is shown in a seeded random orientation (a, b) so that "a" is not always the human's choice; the
human label is kept in that orientation ("a", "b" or "tie") with the annotators' votes (1 = a, 2 = b, 0 = tie).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rewardkit.data.importers import parse_prompt, parse_response, record_id_or_default, require_field
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import LoadResult, PreferencePair, Text
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError
from rewardkit.sampling.pool import FIELDS as POOL_FIELDS
from rewardkit.sampling.pool import group_by_prompt, read_pool

Side = Literal["a", "b", "tie"]


@dataclass(frozen=True)
class JudgeItem:
    """Two responses `a` and `b` to `prompt`; `human` and `votes` where the input had labels."""

    id: str
    prompt: Text
    a: Text
    b: Text
    subset: str | None = None
    human: Side | None = None
    votes: tuple[int, ...] | None = None


@dataclass
class LoadedItems:
    items: list[JudgeItem]
    kind: Literal["pairs", "responses", "pool"]
    notes: dict[str, int]
    votes: list[tuple[int, ...]]  # every voted record's votes (three-way splits included): inter-annotator agreement


def flipped(pair_id: str, seed: int) -> bool:
    """A coin flip fixed by the pair's id and the seed."""
    return hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[0] % 2 == 1


def item_from_pair(pair: PreferencePair, seed: int) -> JudgeItem:
    """`pair` in a seeded random orientation, its human label and votes turned with it."""
    human: Side = "tie" if pair.tie else "a"
    votes = pair.votes
    a, b = pair.chosen, pair.rejected
    if flipped(pair.id, seed):
        a, b, human = b, a, {"a": "b", "tie": "tie"}[human]
        votes = None if votes is None else tuple((0, 2, 1)[vote] for vote in votes)
    return JudgeItem(pair.id, pair.prompt, a, b, pair.subset, human, votes)


def first_record(source: str | Path) -> dict | None:
    """The first record of `source`, or None for a source rewardkit's readers cannot open (left to the loader)."""
    try:
        return next(iter(read_records(source)), (None, None))[1]
    except DataError:
        return None


def load_items(source: str | Path, *, format: str = "auto", seed: int = 0,
               on_bad_record: Literal["error", "skip"] = "error") -> LoadedItems:
    """The items of `source` (see the module docstring); `format` names a preference format instead of detecting."""
    record = first_record(source) if format == "auto" else None
    if record is not None and set(POOL_FIELDS) <= record.keys():
        return items_from_pool(source)
    if record is not None and "responses" in record:
        return items_from_responses(source)
    loaded: LoadResult = load_preferences(source, format=format, ties="keep", on_bad_record=on_bad_record)
    items = [item_from_pair(pair, seed) for pair in loaded.pairs]
    return LoadedItems(items, "pairs", loaded.notes, loaded.votes)


def all_pairs(item_id: str, prompt: Text, responses: list[Text], subset: str | None = None,
              names: list[int] | None = None) -> list[JudgeItem]:
    """Every pair i < j of `responses`, ids "{item_id}:{i}-{j}" (i, j from `names`, default the positions)."""
    names = names or list(range(len(responses)))
    return [JudgeItem(f"{item_id}:{names[i]}-{names[j]}", prompt, responses[i], responses[j], subset)
            for i, j in itertools.combinations(range(len(responses)), 2)]


def items_from_responses(source: str | Path) -> LoadedItems:
    items, records = [], 0
    for index, (location, record) in enumerate(read_records(source)):
        records += 1
        try:
            prompt = parse_prompt(require_field(record, "prompt"), "prompt")
            responses = require_field(record, "responses")
            if not isinstance(responses, list) or len(responses) < 2:
                raise DataError("field 'responses': expected a list of at least 2 responses")
            parsed = [parse_response(r, f"responses[{i}]") for i, r in enumerate(responses)]
            items += all_pairs(record_id_or_default(record, f"{Path(source).stem}-{index}"), prompt, parsed,
                               record.get("subset"))
        except DataError as err:
            raise DataError(f"{location}: {err}") from None
    return LoadedItems(items, "responses", {"records": records}, [])


def items_from_pool(source: str | Path) -> LoadedItems:
    groups = group_by_prompt(read_pool(source))
    items = [item for prompt_id, samples in groups.items()
             for item in all_pairs(prompt_id, samples[0].prompt, [s.response for s in samples],
                                  names=[s.sample_index for s in samples])]
    return LoadedItems(items, "pool", {"prompts": len(groups), "samples": sum(map(len, groups.values()))}, [])
