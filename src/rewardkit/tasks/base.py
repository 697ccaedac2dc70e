"""Task families: what one training example is, how it is encoded, its loss, and how it is evaluated.

    task = build_task(config.task)
    data = task.load(config.data, seed)                 # train and held-out records, with counts
    examples, dropped = task.encode(rm, data.train)     # token ids through the model's scoring spec
    loss_sum, correct = task.loss(model, rm, micro, device, share_prefix=False)   # sum of weight x loss
    evaluation = task.evaluate(rm, examples)            # metrics, the score early stopping follows, rewards

The recipe (`rewardkit.training.recipe`) divides `loss_sum` by the batch's total `task.weight`, so the loss of a global
batch is the same however it is split over processes and micro-batches.

    pairwise   PreferencePair    Bradley-Terry; Rao-Kupper or Davidson when annotated ties should train
    listwise   Ranking of K      Plackett-Luce, or Bradley-Terry over its pairs; each response computed once
    pointwise  RatedResponse     one output per named attribute, masked MSE (ratings) or BCE (verifiers)
    process    StepSolution      BCE at the separator token ending each step
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from rewardkit.config import DataConfig
from rewardkit.data.split import split_by_prompt
from rewardkit.errors import DataError
from rewardkit.models.reward_model import RewardModel


class NoTrainingData(DataError):
    """The sources hold nothing the task can train on; the message says what was found."""


@dataclass
class TrainingData:
    train: list
    eval: list
    summary: dict


@dataclass
class Evaluation:
    metrics: dict
    score: float | None  # what early stopping maximizes (named by the task's `score_name`); None: undefined
    rewards: list[float] | None  # every held-out reward, for the spec's normalization; None: not meaningful
    predictions: list[dict] = field(default_factory=list)  # one line per example (label tasks), for predictions.jsonl


class Task(Protocol):
    unit: str  # what one example is, for logs ("pairs", "rankings", ...)
    score_name: str

    def load(self, data: DataConfig, seed: int) -> TrainingData: ...

    def encode(self, rm: RewardModel, records: Sequence) -> tuple[list, int]: ...

    def weight(self, example) -> float: ...

    def loss(self, model, rm: RewardModel, micro: Sequence, device, *, share_prefix: bool
             ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def evaluate(self, rm: RewardModel, examples: Sequence, *, bootstrap: int = 1000) -> Evaluation: ...


def sample_records(records: list, limit: int | None, seed: int) -> list:
    """At most `limit` records, a seeded sample."""
    return random.Random(seed).sample(records, limit) if limit and len(records) > limit else records


def source_notes(loaded: list, kept: list, skipped: list, notes: dict, subset: str | None) -> dict:
    """What one source gave: records kept (after `max_pairs`), loaded, skipped as bad (the first 20 named)."""
    return {"subset": subset, "records": len(kept), "loaded": len(loaded), "skipped": len(skipped), **notes,
            "skip_reasons": [str(s) for s in skipped[:20]]}


def load_sources(sources, loader, seed: int) -> tuple[list, dict]:
    """Every source's records through `loader(source)` (a `LoadedRecords`), each cut to its `max_pairs` by a seeded
    sample; and what each source gave (`source_notes`), by path."""
    records, notes = [], {}
    for source in sources:
        result = loader(source)
        kept = sample_records(result.records, source.max_pairs, seed)
        notes[source.path] = source_notes(result.records, kept, result.skipped, result.notes, source.subset)
        records += kept
    return records, notes


def load_split_records(data: DataConfig, seed: int, read) -> TrainingData:
    """Records of every source through `read(path, format=, split=, on_bad_record=, subset=)`; eval sources are
    held out, else a by-prompt split."""
    def loader(source):
        return read(source.path, format=source.format, split=source.split, on_bad_record=data.on_bad_record,
                    subset=source.subset)

    train, train_notes = load_sources(data.train, loader, seed)
    held_out, eval_notes = load_sources(data.eval, loader, seed)
    if not data.eval:
        train, held_out = split_by_prompt(train, data.eval_fraction, seed)
    if not train:
        raise NoTrainingData("no usable training records: see `rewardkit data audit` for what the sources hold")
    return TrainingData(train, held_out, {"sources": {"train": train_notes, "eval": eval_notes},
                                          "train_records": len(train), "eval_records": len(held_out)})
