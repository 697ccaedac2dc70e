"""Rankings of K responses: Plackett-Luce, or Bradley-Terry over their pairs; each response computed once."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardkit.config import DataConfig, TaskConfig
from rewardkit.data.labels import load_rankings
from rewardkit.data.records import Ranking
from rewardkit.metrics.preference import comparison_metrics
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import EncodedPair
from rewardkit.tasks.base import Evaluation, TrainingData, load_split_records
from rewardkit.tasks.comparisons import group_rewards, scored_comparison
from rewardkit.tasks.losses import plackett_luce_loss, ranking_pairs_loss


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
        scored = [scored_comparison(s[i], s[j], r.ranking.subset, r.responses[i], r.responses[j])
                  for r, s in zip(examples, per_ranking, strict=True)
                  for i, j in itertools.combinations(range(len(s)), 2)]
        metrics = comparison_metrics(scored, bootstrap=bootstrap)
        top_first = sum(max(range(len(s)), key=s.__getitem__) == 0 for s in per_ranking)
        metrics["top1_accuracy"] = top_first / len(per_ranking)
        metrics["rankings"] = len(per_ranking)
        return Evaluation(metrics, metrics["overall"]["accuracy"], [x for s in per_ranking for x in s])
