"""RewardBench 2 (allenai/reward-bench-2): `prompt`, `chosen: [str]`, `rejected: [str, ...]`, `subset`, `id`.

Each record is one best-of-n prompt (`BestOfGroup`); `group_pairs` gives its every chosen x rejected pair."""

from __future__ import annotations

from dataclasses import dataclass

from rewardkit.data.records import PreferencePair
from rewardkit.errors import DataError

REWARDBENCH2 = "rewardbench2"


TIES_SUBSET = "Ties"  # RewardBench 2's subset with several correct answers, scored by its own rule


@dataclass(frozen=True)
class BestOfGroup:
    """One RewardBench 2 prompt: its correct completions (`chosen`) and incorrect ones (`rejected`)."""

    id: str
    subset: str | None
    prompt: str
    chosen: list[str]
    rejected: list[str]


def is_best_of_n(record: dict | None) -> bool:
    """RewardBench 2 layout: a text prompt and lists of text completions for chosen and rejected."""
    return isinstance(record, dict) and isinstance(record.get("prompt"), str) and all(
        isinstance(record.get(name), list) and all(isinstance(text, str) for text in record[name])
        for name in ("chosen", "rejected")
    )


def best_of_group(record: dict, default_id: str, subset_field: str) -> BestOfGroup:
    prompt = record.get("prompt")
    if not isinstance(prompt, str):
        raise DataError("field 'prompt': expected a string")
    subset = record.get(subset_field)
    return BestOfGroup(id=str(record.get("id", default_id)), subset=None if subset is None else str(subset),
                       prompt=prompt, chosen=completions(record, "chosen"), rejected=completions(record, "rejected"))


def completions(record: dict, name: str) -> list[str]:
    texts = record.get(name)
    if not isinstance(texts, list) or not texts:
        raise DataError(f"field '{name}': expected a non-empty list of completions")
    if not all(isinstance(text, str) and text.strip() for text in texts):
        raise DataError(f"field '{name}': every completion must be non-blank text")
    return texts


def group_pairs(group: BestOfGroup) -> list[PreferencePair]:
    """Every chosen x rejected pair of a best-of-n prompt, with ids "{id}/c{i}-r{j}"."""
    return [
        PreferencePair(prompt=group.prompt, chosen=chosen, rejected=rejected, id=f"{group.id}/c{i}-r{j}",
                       subset=group.subset)
        for i, chosen in enumerate(group.chosen)
        for j, rejected in enumerate(group.rejected)
    ]
