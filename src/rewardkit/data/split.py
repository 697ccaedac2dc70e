"""Train/eval splits by prompt (no prompt on both sides), with deduplication and a cap of pairs per prompt.

    split = prepare_preferences(result.pairs, eval_fraction=0.1)
    train, held_out = split_by_prompt(ratings, eval_fraction=0.1, seed=0)   # any record type with a prompt"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from rewardkit.data.audit import _pair_key
from rewardkit.data.records import PreferencePair, PreparedSplit, prompt_key
from rewardkit.errors import ConfigError

Item = TypeVar("Item")


def _cap(group: list[Item], cap: int, seed: int, key: str) -> list[Item]:
    """At most `cap` pairs of one prompt, chosen by a generator seeded with (seed, prompt): order-independent."""
    if len(group) <= cap:
        return group
    keep = sorted(random.Random(f"{seed}:{key}").sample(range(len(group)), cap))
    return [group[i] for i in keep]


def _eval_prompts(groups: dict[str, list], eval_fraction: float, seed: int) -> set[str]:
    """Prompts in hash order until eval holds >= eval_fraction of records; the last prompt always trains."""
    target = eval_fraction * sum(len(group) for group in groups.values())
    ordered = sorted(groups, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
    chosen, count = set(), 0
    for key in ordered[:-1]:
        if count >= target:
            break
        chosen.add(key)
        count += len(groups[key])
    return chosen


def _split_key(item: Any) -> str:
    """What keeps records together in a split: their `group` when they have one, else their prompt."""
    group = getattr(item, "group", None)
    return prompt_key(item.prompt) if group is None else group


def _grouped(items: Iterable[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(_split_key(item), []).append(item)
    return groups


def _split_groups(groups: dict[str, list[Item]], eval_fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"eval_fraction must be in [0, 1), not {eval_fraction}")
    eval_keys = _eval_prompts(groups, eval_fraction, seed)
    train = [item for key, group in groups.items() if key not in eval_keys for item in group]
    return train, [item for key, group in groups.items() if key in eval_keys for item in group]


def split_by_prompt(records: Iterable[Item], eval_fraction: float, seed: int = 0) -> tuple[list[Item], list[Item]]:
    """(train, eval) of any records with a `prompt` (or a `group`, which then decides): no prompt or group is on
    both sides, eval holds about `eval_fraction` of the records, and the same input and seed give the same split.
    Output is grouped by prompt, in order of first appearance."""
    return _split_groups(_grouped(records), eval_fraction, seed)


def prepare_preferences(
    pairs: Sequence[PreferencePair], *, eval_fraction: float = 0.1,
    max_pairs_per_prompt: int | None = None, seed: int = 0,
) -> PreparedSplit:
    """Dedupe, drop chosen == rejected, cap pairs per prompt, then split train/eval by prompt.

    No prompt lands on both sides. Output is grouped by prompt, in order of first appearance; the same input and
    seed give the same split.
    """
    if max_pairs_per_prompt is not None and max_pairs_per_prompt < 1:
        raise ConfigError(f"max_pairs_per_prompt must be at least 1, not {max_pairs_per_prompt}")
    unique: dict[tuple[str, str, str], PreferencePair] = {}
    for pair in pairs:
        unique.setdefault(_pair_key(pair), pair)
    distinct = [pair for pair in unique.values() if pair.chosen != pair.rejected]
    groups = _grouped(distinct)
    if max_pairs_per_prompt is not None:
        groups = {key: _cap(group, max_pairs_per_prompt, seed, key) for key, group in groups.items()}
    train, held_out = _split_groups(groups, eval_fraction, seed)
    eval_prompts = len({prompt_key(pair.prompt) for pair in held_out})
    stats = {
        "input_pairs": len(pairs),
        "duplicates_removed": len(pairs) - len(unique),
        "identical_dropped": len(unique) - len(distinct),
        "capped_dropped": len(distinct) - len(train) - len(held_out),
        "train_pairs": len(train),
        "eval_pairs": len(held_out),
        "train_prompts": len(groups) - eval_prompts,
        "eval_prompts": eval_prompts,
    }
    return PreparedSplit(train=train, eval=held_out, stats=stats)
