"""Preference pairs: Bradley-Terry, or Rao-Kupper and Davidson when annotated ties should train.

With a length head (ODIN, `task.length_head`) the model has two outputs, quality and length; the pair loss reads
their sum, and ODIN's length and orthogonality losses keep length out of the quality head, the one that is scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from rewardkit.config import DataConfig, TaskConfig
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import LoadedRecords, PreferencePair, prompt_key
from rewardkit.data.split import prepare_preferences
from rewardkit.models.backbones import head_linear
from rewardkit.models.reward_model import RewardModel, to_device
from rewardkit.tasks.base import Evaluation, NoTrainingData, TrainingData, load_sources
from rewardkit.tasks.comparisons import (
    EncodedComparison,
    comparison_rewards,
    encode_comparisons,
    evaluate_comparisons,
    group_rewards,
    score_comparisons,
)
from rewardkit.tasks.losses import (
    DEFAULT_DAVIDSON_NU,
    DEFAULT_RAO_KUPPER_THETA,
    bradley_terry_loss,
    davidson_loss,
    odin_length_loss,
    orthogonality_loss,
    rao_kupper_loss,
)

DEFAULT_TIE_STRENGTH = {"rao_kupper": DEFAULT_RAO_KUPPER_THETA, "davidson": DEFAULT_DAVIDSON_NU}


class PairwiseTask:
    """Preference pairs. Rao-Kupper and Davidson add a tie outcome, so pairs annotated as ties (a source's
    `ties: keep`) pull both rewards together; Bradley-Terry leaves them out of training (counted), but they stay in
    the split and the held-out metrics, so both losses are compared on the same pairs."""

    unit = "pairs"
    score_name = "accuracy"

    def __init__(self, config: TaskConfig, *, use_margin: bool = False,
                 center_rewards_coefficient: float = 0.0) -> None:
        self.loss_name, self.weight_per_prompt = config.loss, config.weight_per_prompt
        self.tie_strength = config.tie_strength or DEFAULT_TIE_STRENGTH.get(config.loss)
        self.use_margin, self.center_rewards_coefficient = use_margin, center_rewards_coefficient
        self.length_head = config.length_head

    @property
    def trains_ties(self) -> bool:
        return self.loss_name != "bradley_terry"

    def load(self, data: DataConfig, seed: int) -> TrainingData:
        def loader(source) -> LoadedRecords:
            result = load_preferences(source.path, format=source.format, split=source.split,
                                      on_bad_record=data.on_bad_record, subset=source.subset, ties=source.ties,
                                      min_agreement=source.min_agreement,
                                      weight_by_agreement=source.weight_by_agreement)
            return LoadedRecords(result.pairs, result.skipped, result.notes)

        train_pairs, train_notes = load_sources(data.train, loader, seed)
        eval_notes, cap = {}, data.max_pairs_per_prompt
        if data.eval:
            eval_pairs, eval_notes = load_sources(data.eval, loader, seed)
            split = prepare_preferences(train_pairs, eval_fraction=0.0, max_pairs_per_prompt=cap, seed=seed)
            split.eval = eval_pairs
        else:
            split = prepare_preferences(train_pairs, eval_fraction=data.eval_fraction, max_pairs_per_prompt=cap,
                                        seed=seed)
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
        if self.length_head is not None:
            return self.odin_loss(model, rm, micro, device, share_prefix=share_prefix)
        rewards_a, rewards_b = comparison_rewards(model, rm, micro, device, share_prefix=share_prefix)
        loss, correct, weight = self.pair_loss(rewards_a, rewards_b, micro, device)
        return loss * weight.sum(), correct

    def odin_loss(self, model, rm: RewardModel, micro: Sequence[EncodedComparison], device, *, share_prefix: bool):
        """The pair loss of quality + length, plus ODIN's length loss over the micro-batch's responses and the
        orthogonality loss of the two head rows; accuracy counts the quality head (the one scored)."""
        outputs = pair_outputs(model, rm, micro, device, share_prefix=share_prefix)  # (b, 2, 2): pair, side, head
        quality, length_reward = outputs[..., 0], outputs[..., 1]  # (b, 2) each
        rewards = quality + length_reward
        loss, _, weight = self.pair_loss(rewards[:, 0], rewards[:, 1], micro, device)
        lengths = torch.tensor([[c.chosen.response_length, c.rejected.response_length] for c in micro],
                               device=device, dtype=torch.float32)
        head = head_linear(rm.model).weight  # (2, d)
        loss = (loss + self.length_head.length_weight * odin_length_loss(quality, length_reward, lengths)
                + self.length_head.orthogonality_weight * orthogonality_loss(head[0], head[1]))
        tie = torch.tensor([c.pair.tie for c in micro], device=device)
        correct = ((quality[:, 0] > quality[:, 1]) & ~tie).sum().detach()
        return loss * weight.sum(), correct

    def pair_loss(self, rewards_a: torch.Tensor, rewards_b: torch.Tensor, micro: Sequence[EncodedComparison],
                  device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The configured pair loss (a weighted mean), the decided pairs ranked right, and the weights (b,)."""
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
        return loss, correct, weight

    def evaluate(self, rm: RewardModel, examples: Sequence[EncodedComparison], *, bootstrap: int = 1000) -> Evaluation:
        """Accuracy on decided pairs (`rewardkit.metrics.preference.preference_metrics`); with ties, how far apart
        the model puts tied responses, against decided ones."""
        decided = [c for c in examples if not c.pair.tie]
        metrics, rewards = evaluate_comparisons(rm, decided, bootstrap=bootstrap)
        ties = [c for c in examples if c.pair.tie]
        if ties:
            metrics["ties"] = tie_metrics(rm, ties, rewards[: len(decided)], rewards[len(decided) :])
        return Evaluation(metrics, metrics["overall"]["accuracy"], rewards)


def pair_outputs(model: torch.nn.Module, rm: RewardModel, micro: Sequence[EncodedComparison], device, *,
                 share_prefix: bool) -> torch.Tensor:
    """Every output of a multi-output model for both sides of each pair, (b, 2, outputs): chosen then rejected,
    from one forward (prefix-shared rows for decoders with `share_prefix`)."""
    if share_prefix:
        outputs, _ = group_rewards(model, rm, [(c.chosen, c.rejected) for c in micro], device, share_prefix=True)
        return outputs
    batch = rm.collate([e for c in micro for e in (c.chosen, c.rejected)])
    return model(**to_device(batch, device)).view(len(micro), 2, -1)


def with_prompt_weights(pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
    """Each pair's weight divided by the number of pairs of its prompt: every prompt then weighs what one pair
    did (InstructGPT trains on all K(K-1)/2 comparisons of a ranking as one batch element, for the same reason)."""
    per_prompt = Counter(prompt_key(p.prompt) for p in pairs)
    return [replace(p, weight=(p.weight or 1.0) / per_prompt[prompt_key(p.prompt)]) for p in pairs]


def tie_metrics(rm: RewardModel, ties: Sequence[EncodedComparison], chosen: Sequence[float],
                rejected: Sequence[float]) -> dict:
    """|reward difference| on pairs annotated as ties against decided pairs: a tie-aware model keeps it smaller."""
    tie_a, tie_b = score_comparisons(rm, ties)
    tie_gaps = np.abs(np.array(tie_a) - np.array(tie_b))
    decided_gaps = np.abs(np.array(chosen) - np.array(rejected))
    return {"n": len(ties), "mean_abs_difference_ties": float(tie_gaps.mean()),
            "mean_abs_difference_decided": float(decided_gaps.mean()) if len(decided_gaps) else None}
