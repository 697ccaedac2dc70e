"""Task families: what one training example is, how it is encoded, its loss, and how it is evaluated.

    task = build_task(config.task)
    data = task.load(config.data, seed)                 # train and held-out records, with counts
    examples, dropped = task.encode(rm, data.train)     # token ids through the model's scoring spec
    loss_sum, correct = task.loss(model, rm, micro, device, share_prefix=False)   # sum of weight x loss
    evaluation = task.evaluate(rm, examples)            # metrics, the score early stopping follows, rewards

The recipe (`rewardkit.train`) divides `loss_sum` by the batch's total `task.weight`, so the loss of a global
batch is the same however it is split over processes and micro-batches.

    pairwise   PreferencePair    Bradley-Terry; Rao-Kupper or Davidson when annotated ties should train
    listwise   Ranking of K      Plackett-Luce, or Bradley-Terry over its pairs; each response computed once
    pointwise  RatedResponse     one output per named attribute, masked MSE (ratings) or BCE (verifiers)
    process    StepSolution      BCE at the separator token ending each step

(pointwise and process live in `rewardkit.pointwise`.)
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch

from rewardkit.config import DataConfig, TaskConfig
from rewardkit.data import (
    LoadedRecords,
    PreferencePair,
    load_preferences,
    prepare_preferences,
    prompt_key,
    split_by_prompt,
)
from rewardkit.labels import Ranking, load_rankings
from rewardkit.losses import (
    DEFAULT_DAVIDSON_NU,
    DEFAULT_RAO_KUPPER_THETA,
    bradley_terry_loss,
    davidson_loss,
    plackett_luce_loss,
    ranking_pairs_loss,
    rao_kupper_loss,
)
from rewardkit.metrics import preference_metrics
from rewardkit.model import RewardModel
from rewardkit.pairs import (
    EncodedComparison,
    comparison_rewards,
    encode_comparisons,
    evaluate_comparisons,
    group_rewards,
    score_comparisons,
)
from rewardkit.spec import EncodedPair

DEFAULT_TIE_STRENGTH = {"rao_kupper": DEFAULT_RAO_KUPPER_THETA, "davidson": DEFAULT_DAVIDSON_NU}


class NoTrainingData(ValueError):
    """The sources hold nothing the task can train on; the message says what was found."""


@dataclass
class TrainingData:
    train: list
    eval: list
    summary: dict


@dataclass
class Evaluation:
    metrics: dict
    score: float  # what early stopping maximizes (named by the task's `score_name`)
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


def build_task(config: TaskConfig, *, use_margin: bool = False, center_rewards_coefficient: float = 0.0) -> Task:
    if config.type == "pairwise":
        return PairwiseTask(config, use_margin=use_margin, center_rewards_coefficient=center_rewards_coefficient)
    if config.type == "listwise":
        return ListwiseTask(config)
    from rewardkit.pointwise import PointwiseTask, ProcessTask  # they import this module

    return PointwiseTask(config) if config.type == "pointwise" else ProcessTask(config)


def sample_records(records: list, limit: int | None, seed: int) -> list:
    """At most `limit` records, a seeded sample."""
    return random.Random(seed).sample(records, limit) if limit and len(records) > limit else records


def source_notes(loaded: list, kept: list, skipped: list, notes: dict, subset: str | None) -> dict:
    """What one source gave: records kept (after `max_pairs`), loaded, skipped as bad (the first 20 named)."""
    return {"subset": subset, "records": len(kept), "loaded": len(loaded), "skipped": len(skipped), **notes,
            "skip_reasons": [f"{s.location}: {s.reason}" for s in skipped[:20]]}


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


# ---------------------------------------------------------------------------------------------------- pairwise
class PairwiseTask:
    """Preference pairs. Rao-Kupper and Davidson add a tie outcome, so pairs annotated as ties (a source's
    `ties: keep`) pull both rewards together; Bradley-Terry leaves them out of training (counted), but they stay in
    the split and the held-out metrics, so both losses are compared on the same pairs."""

    unit = "pairs"
    score_name = "accuracy"

    def __init__(self, config: TaskConfig, *, use_margin: bool = False, center_rewards_coefficient: float = 0.0) -> None:
        self.loss_name, self.weight_per_prompt = config.loss, config.weight_per_prompt
        self.tie_strength = config.tie_strength or DEFAULT_TIE_STRENGTH.get(config.loss)
        self.use_margin, self.center_rewards_coefficient = use_margin, center_rewards_coefficient

    @property
    def trains_ties(self) -> bool:
        return self.loss_name != "bradley_terry"

    def load(self, data: DataConfig, seed: int) -> TrainingData:
        def loader(source) -> LoadedRecords:
            result = load_preferences(source.path, format=source.format, split=source.split,
                                      on_bad_record=data.on_bad_record, subset=source.subset, ties=source.ties,
                                      min_agreement=source.min_agreement, weight_by_agreement=source.weight_by_agreement)
            return LoadedRecords(result.pairs, result.skipped, result.notes)

        train_pairs, train_notes = load_sources(data.train, loader, seed)
        eval_notes, cap = {}, data.max_pairs_per_prompt
        if data.eval:
            eval_pairs, eval_notes = load_sources(data.eval, loader, seed)
            split = prepare_preferences(train_pairs, eval_fraction=0.0, max_pairs_per_prompt=cap, seed=seed)
            split.eval = eval_pairs
        else:
            split = prepare_preferences(train_pairs, eval_fraction=data.eval_fraction, max_pairs_per_prompt=cap, seed=seed)
        train = [p for p in split.train if self.trains_ties or not p.tie]  # ties stay in the split and the eval
        if not train:
            raise NoTrainingData("no usable training pairs: see `rewardkit data audit` for what the sources hold")
        train = with_prompt_weights(train) if self.weight_per_prompt else train
        summary = {"sources": {"train": train_notes, "eval": eval_notes}, "prepare": split.stats,
                   "train_records": len(train), "eval_records": len(split.eval),
                   "ties": {"train": sum(p.tie for p in train), "not_trained": len(split.train) - len(train),
                            "eval": sum(p.tie for p in split.eval)}}
        return TrainingData(train, split.eval, summary)

    def encode(self, rm: RewardModel, records: Sequence[PreferencePair]) -> tuple[list[EncodedComparison], int]:
        return encode_comparisons(rm, records)

    def weight(self, example: EncodedComparison) -> float:
        return 1.0 if example.pair.weight is None else example.pair.weight

    def loss(self, model, rm: RewardModel, micro: Sequence[EncodedComparison], device, *, share_prefix: bool):
        rewards_a, rewards_b = comparison_rewards(model, rm, micro, device, share_prefix=share_prefix)
        weight = torch.tensor([self.weight(c) for c in micro], device=device)
        tie = torch.tensor([c.pair.tie for c in micro], device=device)
        if self.loss_name == "bradley_terry":
            margin = torch.tensor([c.pair.margin or 0.0 for c in micro], device=device) if self.use_margin else None
            loss = bradley_terry_loss(rewards_a, rewards_b, margin=margin, weight=weight,
                                      center_rewards_coefficient=self.center_rewards_coefficient)
        elif self.loss_name == "rao_kupper":
            loss = rao_kupper_loss(rewards_a, rewards_b, tie, theta=self.tie_strength, weight=weight)
        else:
            loss = davidson_loss(rewards_a, rewards_b, tie, nu=self.tie_strength, weight=weight)
        correct = ((rewards_a > rewards_b) & ~tie).sum().detach()
        return loss * weight.sum(), correct

    def evaluate(self, rm: RewardModel, examples: Sequence[EncodedComparison], *, bootstrap: int = 1000) -> Evaluation:
        """Accuracy on decided pairs (`rewardkit.metrics.preference_metrics`); with ties, how far apart the model
        puts tied responses, against decided ones."""
        decided = [c for c in examples if not c.pair.tie]
        metrics, rewards = evaluate_comparisons(rm, decided, bootstrap=bootstrap)
        ties = [c for c in examples if c.pair.tie]
        if ties:
            metrics["ties"] = tie_metrics(rm, ties, rewards[: len(decided)], rewards[len(decided) :])
        return Evaluation(metrics, metrics["overall"]["accuracy"], rewards)


def with_prompt_weights(pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
    """Each pair's weight divided by the number of pairs of its prompt: every prompt then weighs what one pair
    did (InstructGPT trains on all K(K-1)/2 comparisons of a ranking as one batch element, for the same reason)."""
    per_prompt = Counter(prompt_key(p.prompt) for p in pairs)
    return [replace(p, weight=(p.weight or 1.0) / per_prompt[prompt_key(p.prompt)]) for p in pairs]


def tie_metrics(rm: RewardModel, ties: Sequence[EncodedComparison], chosen: Sequence[float], rejected: Sequence[float]) -> dict:
    """|reward difference| on pairs annotated as ties against decided pairs: a tie-aware model keeps it smaller."""
    tie_a, tie_b = score_comparisons(rm, ties)
    tie_gaps = np.abs(np.array(tie_a) - np.array(tie_b))
    decided_gaps = np.abs(np.array(chosen) - np.array(rejected))
    return {"n": len(ties), "mean_abs_difference_ties": float(tie_gaps.mean()),
            "mean_abs_difference_decided": float(decided_gaps.mean()) if len(decided_gaps) else None}


# ---------------------------------------------------------------------------------------------------- listwise
@dataclass(frozen=True)
class EncodedRanking:
    ranking: Ranking
    responses: tuple[EncodedPair, ...]  # best first; responses too long to fit are left out

    @property
    def width(self) -> int:
        return max(len(e.input_ids) for e in self.responses)


class ListwiseTask:
    """Rankings of K responses to one prompt, each response computed once per step: the Plackett-Luce likelihood
    of the whole order, or Bradley-Terry over the ranking's K(K-1)/2 pairs (each pair alike, or each prompt once)."""

    unit = "rankings"
    score_name = "accuracy"

    def __init__(self, config: TaskConfig) -> None:
        self.loss_name, self.weight_per_prompt = config.loss, config.weight_per_prompt

    def load(self, data: DataConfig, seed: int) -> TrainingData:
        return load_split_records(data, seed, load_rankings)

    def encode(self, rm: RewardModel, records: Sequence[Ranking]) -> tuple[list[EncodedRanking], int]:
        """Responses too long to fit are left out of their ranking (the order of the rest still holds); a ranking
        left with fewer than two responses is dropped and counted."""
        flat = [(r.prompt, response) for r in records for response in r.responses]
        encoded = iter(rm.spec.encode_batch(rm.tokenizer, [p for p, _ in flat], [x for _, x in flat]))
        kept, dropped = [], 0
        for ranking in records:
            responses = tuple(e for e in (next(encoded) for _ in ranking.responses) if e is not None)
            if len(responses) >= 2:
                kept.append(EncodedRanking(ranking, responses))
            else:
                dropped += 1
        return kept, dropped

    def weight(self, example: EncodedRanking) -> float:
        """The ranking's weight; for pairs counted alike, times its number of pairs."""
        k = len(example.responses)
        pairs = k * (k - 1) / 2 if self.loss_name == "bradley_terry" and not self.weight_per_prompt else 1.0
        return pairs * (1.0 if example.ranking.weight is None else example.ranking.weight)

    def loss(self, model, rm: RewardModel, micro: Sequence[EncodedRanking], device, *, share_prefix: bool):
        rewards, mask = group_rewards(model, rm, [r.responses for r in micro], device, share_prefix=share_prefix)
        weight = torch.tensor([self.weight(r) for r in micro], device=device)
        listwise = plackett_luce_loss if self.loss_name == "plackett_luce" else ranking_pairs_loss
        loss = listwise(rewards, mask, weight=weight)
        top = rewards.masked_fill(~mask, float("-inf")).argmax(-1)
        return loss * weight.sum(), (top == 0).sum().detach()

    def evaluate(self, rm: RewardModel, examples: Sequence[EncodedRanking], *, bootstrap: int = 1000) -> Evaluation:
        """Accuracy over every ordered pair of each ranking, and how often the best response is scored highest."""
        flat = [e for r in examples for e in r.responses]
        scores = iter(rm.score_encoded(flat))
        per_ranking = [[next(scores) for _ in r.responses] for r in examples]
        pairs = [(r, s, i, j) for r, s in zip(examples, per_ranking) for i in range(len(s)) for j in range(i + 1, len(s))]
        metrics = preference_metrics(
            [s[i] for _, s, i, _ in pairs], [s[j] for _, s, _, j in pairs],
            subsets=[r.ranking.subset for r, *_ in pairs],
            chosen_lengths=[r.responses[i].response_length for r, _, i, _ in pairs],
            rejected_lengths=[r.responses[j].response_length for r, _, _, j in pairs],
            bootstrap=bootstrap,
        )
        metrics["top1_accuracy"] = sum(max(range(len(s)), key=s.__getitem__) == 0 for s in per_ranking) / len(per_ranking)
        metrics["rankings"] = len(per_ranking)
        return Evaluation(metrics, metrics["overall"]["accuracy"], [x for s in per_ranking for x in s])
