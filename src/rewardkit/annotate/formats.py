"""Items to annotate, read from any layout rewardkit imports, and answers written back out.

An `Item` is a prompt with two responses (`responses[0]` is "response 1"). Sources:

    pairs, ranked, ...  any `rewardkit.data` preference format (a ranking expands to every pair i < j)
    pool                `rewardkit sample` JSONL: prompt_id, prompt, sample_index, response; each prompt's samples,
                        by sample_index, paired off (0 with 1, 2 with 3, ...; an odd last sample is counted)
    label-studio        Label Studio tasks {data: {prompt, answer1, answer2}} (its pairwise template)
    argilla             Argilla records {fields: {prompt, response_1, response_2}, responses: {ranking: [...]}}

Votes are in the item's orientation: 1 = response 1 better, 2 = response 2 better, 0 = tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rewardkit.data.importers import optional_key, optional_subset, parse_prompt, parse_response, require_field
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import PreferencePair, Text
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError
from rewardkit.sampling.pool import group_by_prompt, read_pool

ITEM_FORMATS = ("auto", "pairs", "pool", "label-studio", "argilla")
POOL_FIELDS = {"prompt_id", "prompt", "sample_index", "response"}
LABEL_STUDIO_SIDES = (("answer1", "answer2"), ("text1", "text2"))
ARGILLA_PROMPTS = ("prompt", "instruction", "input")
ARGILLA_SIDES = (("response_1", "response_2"), ("response1", "response2"))


@dataclass(frozen=True)
class Item:
    """A prompt and two responses to compare; `gold` is the known answer of a gold item (a vote), else None."""

    id: str
    prompt: Text
    responses: tuple[Text, Text]
    subset: str | None = None
    gold: int | None = None


@dataclass
class LoadedItems:
    items: list[Item]
    notes: dict[str, int]


def load_items(source: str | Path, format: str = "auto") -> LoadedItems:
    """The items of `source`; `format` "auto" tells a pool, Label Studio or Argilla file by its first record's
    fields, and reads anything else as preference pairs."""
    if format not in ITEM_FORMATS:
        raise DataError(f"{source}: unknown item format {format!r}; expected one of {list(ITEM_FORMATS)}")
    if format == "auto":
        format = detect_item_format(source)
    if format == "pool":
        return pool_items(source)
    if format == "label-studio":
        return located(source, label_studio_item)
    if format == "argilla":
        return located(source, argilla_item)
    result = load_preferences(source, ties="keep")
    return LoadedItems([item_from_pair(pair) for pair in result.pairs], result.notes)


def detect_item_format(source: str | Path) -> str:
    _, first = next(iter(read_records(source)), (None, {}))
    if POOL_FIELDS <= first.keys():
        return "pool"
    if isinstance(first.get("data"), dict) and "prompt" not in first:
        return "label-studio"
    if isinstance(first.get("fields"), dict):
        return "argilla"
    return "pairs"


def item_from_pair(pair: PreferencePair, *, gold: bool = False) -> Item:
    """The pair as an item (chosen is response 1); as a gold item its answer is chosen, or a tie."""
    return Item(pair.id, pair.prompt, (pair.chosen, pair.rejected), pair.subset,
                gold=(0 if pair.tie else 1) if gold else None)


def load_gold(source: str | Path) -> list[Item]:
    """Gold items from preference pairs: chosen is the right answer (a tie pair's is a tie)."""
    return [item_from_pair(pair, gold=True) for pair in load_preferences(source, ties="keep").pairs]


def located(source: str | Path, read_one) -> LoadedItems:
    """`read_one(record, default id)` over every record, a bad one's `DataError` prefixed with its location."""
    items = []
    for index, (location, record) in enumerate(read_records(source)):
        try:
            items.append(read_one(record, f"{Path(str(source)).stem}-{index}"))
        except DataError as error:
            raise DataError(f"{location}: {error}") from error
    if not items:
        raise DataError(f"{source}: no records")
    return LoadedItems(items, {"records": len(items)})


def pool_items(source: str | Path) -> LoadedItems:
    """A sample pool's responses (`rewardkit.sampling.pool.read_pool`), paired off within each prompt in
    sample_index order."""
    groups = group_by_prompt(read_pool(source))
    items, unpaired = [], 0
    for prompt_id, group in groups.items():
        unpaired += len(group) % 2
        for first, second in zip(group[::2], group[1::2], strict=False):
            items.append(Item(f"{prompt_id}:{first.sample_index}-{second.sample_index}", first.prompt,
                              (first.response, second.response)))
    if not items:
        raise DataError(f"{source}: no prompt has two samples to compare")
    return LoadedItems(items, {"prompts": len(groups), "pairs": len(items), "unpaired_samples": unpaired})


def two_sides(data: dict, sides: tuple[tuple[str, str], ...], where: str) -> tuple[Text, Text]:
    for first, second in sides:
        if first in data:
            return (parse_response(require_field(data, first, where), f"{where}.{first}"),
                    parse_response(require_field(data, second, where), f"{where}.{second}"))
    raise DataError(f"field '{where}': expected responses {' / '.join(' and '.join(s) for s in sides)}")


def label_studio_item(record: dict, default_id: str) -> Item:
    """A Label Studio task of the pairwise template: data {prompt, answer1, answer2} (or text1, text2)."""
    data = require_field(record, "data")
    if not isinstance(data, dict):
        raise DataError("field 'data': expected an object")
    prompt = parse_prompt(require_field(data, "prompt", "data"), "data.prompt")
    item_id = optional_key(data, "item_id") or optional_key(record, "id") or default_id
    return Item(item_id, prompt, two_sides(data, LABEL_STUDIO_SIDES, "data"), optional_subset(data))


def argilla_item(record: dict, default_id: str) -> Item:
    """An Argilla record of a ranking question over two responses: fields {prompt, response_1, response_2}."""
    fields = require_field(record, "fields")
    if not isinstance(fields, dict):
        raise DataError("field 'fields': expected an object")
    name = next((key for key in ARGILLA_PROMPTS if key in fields), "prompt")
    prompt = parse_prompt(require_field(fields, name, "fields"), f"fields.{name}")
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return Item(optional_key(record, "id") or default_id, prompt, two_sides(fields, ARGILLA_SIDES, "fields"),
                optional_subset(metadata))
