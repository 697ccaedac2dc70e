"""Loading and saving preference pairs: `load_preferences` reads files or the hub, `save_preferences` writes jsonl.

    result = load_preferences("hh-rlhf-harmless-base-test.jsonl.gz", on_bad_record="skip")
    result.pairs, result.skipped, result.notes, result.votes     # a `LoadResult` (rewardkit.data.records)
    save_preferences(result.pairs, "runs/data/pairs.jsonl")      # canonical jsonl, loads back as format "pairs"

Sources: `.jsonl`, `.jsonl.gz`, `.json` (an array, or an object with one list field), `.json.gz`, `.parquet`,
`.csv`, `-` (JSON lines on stdin), or else a Hugging Face hub dataset name (read as `rewardkit.data.sources` says:
strict JSON, a BOM allowed). Empty replies are valid pairs (`audit_preferences` counts them). Formats, picked by
`format="auto"` from the first record's fields (checked in this order):

    sharegpt  conversations [{from, value}], chosen, rejected
    pandalm   instruction, input, response1, response2, annotator1..3 (strict majority, votes kept; splits dropped)
    ranked    instruction, input, history, output [best, ..., worst] (expanded to every ordered pair)
    pairs     prompt | messages, chosen, rejected (TRL standard/conversational, RewardBench, this module's own);
              optional tie, votes, preference_strength (HelpSteer2-Preference 1..3 or Llama 2 strings -> margin)
    implicit  chosen, rejected: full transcripts sharing a prefix (HH-RLHF text, or message lists)

and, checked before all of them, `rewardbench2` (RewardBench 2: prompt text, chosen [texts], rejected [texts]):
each record is a best-of-n prompt, kept in `groups`, whose every chosen x rejected pair is in `pairs`.

Voted pairs carry their votes (1 = chosen better, 2 = rejected better, 0 = tie). `load_preferences` drops tie pairs
unless `ties="keep"`, drops pairs whose agreement (share of votes for the most-voted option) is below
`min_agreement`, can scale weights by agreement (`weight_by_agreement`), and returns every voted item's votes
(three-way splits and ties included) in `LoadResult.votes`. `save_preferences` writes each pair's `to_dict()`, one
per line (plain `.jsonl`, not gzip).

Auditing a loaded dataset (duplicates, length baseline, Fleiss' kappa over `LoadResult.votes`) is in
`rewardkit.data.audit` (`audit_preferences`); train/eval splits by prompt are in `rewardkit.data.split`
(`prepare_preferences`, `split_by_prompt`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from rewardkit.data.importers import DETECTION, IMPORTERS, Voting, voting_importers
from rewardkit.data.records import BestOfGroup, LoadResult, PreferencePair, majority
from rewardkit.data.rewardbench2 import REWARDBENCH2, REWARDBENCH2_DETECTION, group_pairs, import_best_of_group
from rewardkit.data.sources import load_records
from rewardkit.errors import ConfigError
from rewardkit.io import write_jsonl_atomic

PREFERENCE_DETECTION = [*REWARDBENCH2_DETECTION, *DETECTION]


# the record type each format reads
PREFERENCE_RECORD_TYPES = {**dict.fromkeys(IMPORTERS, PreferencePair), REWARDBENCH2: BestOfGroup}


def load_preferences(
    source: str | Path, *, format: str = "auto", split: str = "train",
    on_bad_record: Literal["error", "skip"] = "error", subset: str | None = None, subset_field: str | None = None,
    ties: Literal["drop", "keep"] = "drop", min_agreement: float = 0.0, weight_by_agreement: bool = False,
) -> LoadResult:
    """Read every record of `source` into `PreferencePair`s (and RewardBench 2 prompts into `groups`) with one
    importer (see the module docstring).

    Ids are the record's `id`, else "{file stem}-{record index}". `subset` overrides every pair's subset;
    `subset_field` names the record field to read each pair's subset from instead.
    `on_bad_record="error"` raises the first bad record's `DataError`; "skip" lists it in `skipped`.
    Errors about the whole source (missing, unreadable, no records) always raise.

    Voted data: tie pairs are dropped (counted as `ties_dropped`) unless `ties="keep"`; pairs whose agreement is
    below `min_agreement` are dropped (`below_min_agreement`); `weight_by_agreement` multiplies each voted pair's
    weight by its agreement. Kept pairs short of unanimity are counted as "kept_with_K_of_N_votes".
    """
    if ties not in ("drop", "keep"):
        raise ConfigError(f"ties must be 'drop' or 'keep', not {ties!r}")
    if not 0 <= min_agreement <= 1:
        raise ConfigError(f"min_agreement must be in [0, 1], not {min_agreement}")
    voting = Voting(keep_ties=ties == "keep")
    importers = {REWARDBENCH2: import_best_of_group, **voting_importers(voting)}
    loaded = load_records(source, importers, PREFERENCE_DETECTION, PREFERENCE_RECORD_TYPES, format=format, split=split,
                          on_bad_record=on_bad_record, subset=subset, subset_field=subset_field)
    groups = [record for record in loaded.records if isinstance(record, BestOfGroup)]
    pairs = [pair for group in groups for pair in group_pairs(group)] if groups else loaded.records
    notes = Counter(loaded.notes)
    pairs = _filter_by_agreement(pairs, notes, min_agreement, weight_by_agreement)
    return LoadResult(pairs=pairs, skipped=loaded.skipped, notes=dict(notes), votes=voting.tables, groups=groups)


def _filter_by_agreement(
    pairs: list[PreferencePair], notes: Counter, min_agreement: float, weight_by_agreement: bool,
) -> list[PreferencePair]:
    """Voted pairs at or above `min_agreement`, reweighted by their agreement when asked; drops are counted."""
    kept = []
    for pair in pairs:
        if pair.agreement is not None:
            if pair.agreement < min_agreement:
                notes["below_min_agreement"] += 1
                continue
            top = majority(pair.votes)[1]
            if top < len(pair.votes):
                notes[f"kept_with_{top}_of_{len(pair.votes)}_votes"] += 1
            if weight_by_agreement:
                pair = dataclasses.replace(pair, weight=(1.0 if pair.weight is None else pair.weight) * pair.agreement)
        kept.append(pair)
    return kept


def save_preferences(pairs: Iterable[PreferencePair], path: str | Path) -> None:
    """Write canonical jsonl (one `to_dict()` per line) atomically; it loads back as format "pairs"."""
    if str(path).endswith(".gz"):
        raise ConfigError(f"{path}: save_preferences writes plain .jsonl, not gzip")
    write_jsonl_atomic(path, (pair.to_dict() for pair in pairs))
