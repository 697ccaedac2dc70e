"""Answers out: rewardkit pairs (trainable as they are), Label Studio tasks, Argilla records.

A pair per item with one or more labels (gold items left out: their answer was known): the majority side is
`chosen`, `votes` are in the pair's orientation (1 = chosen better, 2 = rejected better, 0 = tie), `agreement` is the
majority's share, a tie majority is `tie: true`, and `preference_strength` (1 slightly .. 3 much better) is the
rounded mean strength the majority gave. Items whose votes split evenly have no majority and are counted, not
written. The pairs load with `load_preferences(..., ties="keep")`, so a tie-aware loss trains on the ties and
`weight_by_agreement` / `min_agreement` read the votes.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence

from rewardkit.annotate.formats import Item
from rewardkit.annotate.store import Answer
from rewardkit.data.records import PreferencePair, majority

EXPORT_FORMATS = ("pairs", "label-studio", "argilla")
FLIPPED = (0, 2, 1)  # a vote seen from the other side


def export_pairs(items: Sequence[Item], answers: Sequence[Answer]) -> tuple[list[dict], Counter]:
    """(pair records, counts: exported, ties, no_majority, unlabelled, gold_left_out)."""
    by_item: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        if answer.vote is not None:
            by_item[answer.item_id].append(answer)
    records, notes = [], Counter()
    for item in items:
        if item.gold is not None:
            notes["gold_left_out"] += 1
            continue
        labelled = by_item.get(item.id, [])
        if not labelled:
            notes["unlabelled"] += 1
            continue
        winner, _ = majority([a.vote for a in labelled])
        if winner is None:
            notes["no_majority"] += 1
            continue
        records.append(item_pair(item, labelled, winner))
        notes["ties" if winner == 0 else "exported"] += 1
    return records, notes


def item_pair(item: Item, labelled: Sequence[Answer], winner: int) -> dict:
    first, second = item.responses
    votes = [a.vote for a in labelled]
    if winner == 2:
        first, second, votes = second, first, [FLIPPED[v] for v in votes]
    pair = PreferencePair(prompt=item.prompt, chosen=first, rejected=second, id=item.id, subset=item.subset,
                          tie=winner == 0, votes=tuple(votes))
    record = pair.to_dict() | {"votes": votes, "agreement": pair.agreement}
    strengths = [a.strength for a in labelled if a.vote == winner and a.strength is not None]
    if winner != 0 and strengths:
        record["preference_strength"] = round(statistics.fmean(strengths))
    return record


def label_studio_tasks(items: Sequence[Item], answers: Sequence[Answer]) -> list[dict]:
    """One task per item (the pairwise template's data: prompt, answer1, answer2) with an annotation per answer:
    a pairwise result {selected: left | right} in the item's orientation (left = answer1); ties and can't tell,
    which that tag cannot hold, as a choices result of the control "outcome"."""
    by_item = answers_by_item(answers)
    return [{"id": index + 1,
             "data": {"item_id": item.id, "prompt": item.prompt, "answer1": item.responses[0],
                      "answer2": item.responses[1], **({"subset": item.subset} if item.subset else {})},
             "annotations": [label_studio_annotation(a) for a in by_item.get(item.id, [])]}
            for index, item in enumerate(items)]


def label_studio_annotation(answer: Answer) -> dict:
    if answer.vote in (1, 2):
        result = {"from_name": "comparison", "to_name": "answer1", "type": "pairwise",
                  "value": {"selected": "left" if answer.vote == 1 else "right"}}
    else:
        result = {"from_name": "outcome", "to_name": "prompt", "type": "choices",
                  "value": {"choices": ["tie" if answer.choice == "tie" else "cant_tell"]}}
    return {"completed_by": answer.annotator, "lead_time": answer.seconds, "result": [result],
            "meta": {"strength": answer.strength, "comment": answer.comment}}


def argilla_records(items: Sequence[Item], answers: Sequence[Answer]) -> list[dict]:
    """Argilla records of a ranking question "ranking" over response_1 and response_2: each answer a response
    ranking both (a tie ranks them equal); can't tell is a discarded response."""
    by_item = answers_by_item(answers)
    return [{"id": item.id,
             "fields": {"prompt": item.prompt, "response_1": item.responses[0], "response_2": item.responses[1]},
             "metadata": {"subset": item.subset} if item.subset else {},
             "responses": {"ranking": [argilla_response(a) for a in by_item.get(item.id, [])]}}
            for item in items]


def argilla_response(answer: Answer) -> dict:
    if answer.vote is None:
        return {"user_id": answer.annotator, "status": "discarded", "value": None}
    ranks = {0: (1, 1), 1: (1, 2), 2: (2, 1)}[answer.vote]
    return {"user_id": answer.annotator, "status": "submitted",
            "value": [{"value": "response_1", "rank": ranks[0]}, {"value": "response_2", "rank": ranks[1]}]}


def answers_by_item(answers: Sequence[Answer]) -> dict[str, list[Answer]]:
    """Kept answers per item, skips left out."""
    table: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        if answer.choice != "skip":
            table[answer.item_id].append(answer)
    return table
