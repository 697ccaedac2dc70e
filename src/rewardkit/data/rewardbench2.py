"""RewardBench 2 (allenai/reward-bench-2): `prompt`, `chosen: [str]`, `rejected: [str, ...]`, `subset`, `id`.

Each record is one best-of-n prompt (`BestOfGroup`), the format "rewardbench2" of
`rewardkit.data.preferences.load_preferences` (detected ahead of the pair formats); `group_pairs` gives its every
chosen x rejected pair."""

from __future__ import annotations

from collections import Counter

from rewardkit.data.importers import Detection, optional_subset, record_id_or_default, require_field, string_field
from rewardkit.data.records import BestOfGroup, PreferencePair
from rewardkit.errors import DataError

REWARDBENCH2 = "rewardbench2"


TIES_SUBSET = "Ties"  # RewardBench 2's subset with several correct answers, scored by its own rule


def is_best_of_n(record: dict) -> bool:
    """RewardBench 2 layout: a text prompt and lists of text completions for chosen and rejected."""
    return isinstance(record.get("prompt"), str) and all(
        isinstance(record.get(name), list) and all(isinstance(text, str) for text in record[name])
        for name in ("chosen", "rejected")
    )


def _completions(record: dict, name: str) -> list[str]:
    texts = require_field(record, name)
    if not isinstance(texts, list) or not texts:
        raise DataError(f"field '{name}': expected a non-empty list of completions")
    return [string_field(text, f"{name}[{i}]") for i, text in enumerate(texts)]


def import_best_of_group(record: dict, default_id: str | None, notes: Counter) -> list[dict]:
    """The fields of one `BestOfGroup`."""
    return [{"id": record_id_or_default(record, default_id), "subset": optional_subset(record),
             "prompt": string_field(require_field(record, "prompt"), "prompt"),
             "chosen": _completions(record, "chosen"), "rejected": _completions(record, "rejected")}]


REWARDBENCH2_DETECTION: Detection = [(is_best_of_n, REWARDBENCH2)]


def group_pairs(group: BestOfGroup) -> list[PreferencePair]:
    """Every chosen x rejected pair of a best-of-n prompt, with ids "{id}/c{i}-r{j}"."""
    return [
        PreferencePair(prompt=group.prompt, chosen=chosen, rejected=rejected, id=f"{group.id}/c{i}-r{j}",
                       subset=group.subset)
        for i, chosen in enumerate(group.chosen)
        for j, rejected in enumerate(group.rejected)
    ]
