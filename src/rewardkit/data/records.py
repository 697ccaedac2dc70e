"""The record types every stage passes on: preference pairs, rankings, rated responses, step-labelled
solutions, RewardBench 2 prompts, and what loading them returns (records, counted skips, notes)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


Text = str | list[Message]  # plain text, or chat messages


def majority(votes: Sequence[int]) -> tuple[int | None, int]:
    """(the most-voted option, None when several share the top count; that count)."""
    (top, count), *others = Counter(votes).most_common()
    return (None if others and others[0][1] == count else top), count


@dataclass(frozen=True)
class PreferencePair:
    """`chosen` is preferred over `rejected` as a reply to `prompt`.

    Importers keep the three texts one kind: when any is messages, a plain prompt becomes a user message and
    plain replies become assistant messages. Replies in message form hold only assistant messages. With `tie` the
    two replies are equally good (their order is arbitrary); `votes` are each annotator's vote in the pair's
    orientation: 1 = chosen better, 2 = rejected better, 0 = tie.
    """

    prompt: Text
    chosen: Text
    rejected: Text
    id: str
    subset: str | None = None
    margin: float | None = None
    weight: float | None = None
    tie: bool = False
    votes: tuple[int, ...] | None = None

    @property
    def agreement(self) -> float | None:
        """Share of the votes for the most-voted option; None without votes."""
        return majority(self.votes)[1] / len(self.votes) if self.votes else None

    def to_dict(self) -> dict:
        """The canonical JSON record (format "pairs"); optional fields left at their default are left out."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {key: value for key, value in dataclasses.asdict(self).items() if value != defaults[key]}


@dataclass
class SkippedRecord:
    location: str  # "FILE:LINE" or "FILE row N"
    reason: str

    def __str__(self) -> str:
        """"FILE:LINE: reason", as the error the record would have raised."""
        return f"{self.location}: {self.reason}"


@dataclass(frozen=True)
class BestOfGroup:
    """One RewardBench 2 prompt: its correct completions (`chosen`) and incorrect ones (`rejected`)."""

    id: str
    subset: str | None
    prompt: str
    chosen: list[str]
    rejected: list[str]


@dataclass
class LoadResult:
    pairs: list[PreferencePair]
    skipped: list[SkippedRecord]  # records dropped with on_bad_record="skip"
    notes: dict[str, int]  # counted events: records, no_shared_prefix, ties_dropped, expanded_ranked_pairs...
    votes: list[tuple[int, ...]] = field(default_factory=list)  # every voted item's votes, dropped ones included
    groups: list[BestOfGroup] = field(default_factory=list)  # RewardBench 2 prompts; their pairs are in `pairs`


@dataclass
class LoadedRecords:
    records: list  # PreferencePair, or a record type of `rewardkit.data.labels`
    skipped: list[SkippedRecord]
    notes: dict[str, int]


@dataclass
class PreparedSplit:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    stats: dict[str, int]


class PairEncoder(Protocol):
    """What the audit needs from a tokenizer-bound scoring spec."""

    max_length: int

    def length(self, prompt: Text, response: Text) -> int:
        """Tokens of the rendered pair before truncation."""

    def encode(self, prompt: Text, response: Text) -> list[int] | None:
        """Token ids after truncation; None when the response alone does not fit."""


def prompt_key(prompt: Text) -> str:
    """Canonical string of a prompt (or any Text): the text itself, or the messages as sorted-key JSON."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Ranking:
    """`responses` to `prompt`, best first (all text, or all messages like `PreferencePair`)."""

    prompt: Text
    responses: list[Text]
    id: str
    subset: str | None = None
    weight: float | None = None


@dataclass(frozen=True)
class RatedResponse:
    """Pointwise labels of one response; a missing attribute is simply absent from `labels`. Responses sharing a
    `group` answer the same question and are compared (best-of-N); `answer` is the response's final answer."""

    prompt: Text
    response: Text
    labels: dict[str, float]
    id: str
    subset: str | None = None
    group: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class StepSolution:
    """A solution split into steps, each labelled 1.0 (right), 0.0 (wrong), a probability between, or None
    (unknown). `first_error` is the index of the first wrong step, -1 when all are right, None when unknown."""

    prompt: Text
    steps: list[str]
    labels: list[float | None]
    id: str
    subset: str | None = None
    first_error: int | None = None
