"""Rated responses: one output per named attribute (HelpSteer/SteerLM-style ratings, or a verifier's
`correct`), masked MSE for ratings or BCE for 0/1 labels; a missing label trains nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardkit.config import DataConfig, TaskConfig
from rewardkit.data.labels import load_ratings
from rewardkit.data.records import LoadedRecords, RatedResponse, StepSolution
from rewardkit.metrics.labels import best_of_n_metrics, pairwise_accuracy_within_groups, regression_metrics
from rewardkit.models.reward_model import RewardModel, to_device
from rewardkit.models.spec import EncodedPair
from rewardkit.tasks.base import Evaluation, TrainingData, load_split_records
from rewardkit.tasks.losses import masked_bce_loss, masked_mse_loss


@dataclass(frozen=True)
class EncodedLabels:
    """One response (or solution) encoded, with its labels: per attribute, or per step."""

    record: RatedResponse | StepSolution
    encoded: EncodedPair  # with step_positions for a solution
    targets: tuple[float, ...]  # 0 where missing
    labelled: tuple[bool, ...]

    @property
    def width(self) -> int:
        return len(self.encoded.input_ids)


class PointwiseTask:
    """Named attributes per response, each learned by its own output."""

    unit = "responses"

    def __init__(self, config: TaskConfig) -> None:
        self.attributes, self.loss_name = list(config.attributes), config.loss
        self.score_name = "accuracy" if config.loss == "bce" else "pearson"

    def load(self, data: DataConfig, seed: int) -> TrainingData:
        return load_split_records(data, seed, self.read)

    def read(self, path: str, **options) -> LoadedRecords:
        return load_ratings(path, attributes=self.attributes, **options)

    def encode(self, rm: RewardModel, records: Sequence[RatedResponse]) -> tuple[list[EncodedLabels], int]:
        encoded = rm.spec.encode_batch(rm.tokenizer, [r.prompt for r in records], [r.response for r in records])
        kept = [EncodedLabels(r, e, tuple(r.labels.get(a, 0.0) for a in self.attributes),
                             tuple(a in r.labels for a in self.attributes))
                for r, e in zip(records, encoded, strict=True)
                if e is not None and any(a in r.labels for a in self.attributes)]
        return kept, len(records) - len(kept)

    def weight(self, example: EncodedLabels) -> float:
        return 1.0

    def loss(self, model, rm: RewardModel, micro: Sequence[EncodedLabels], device, *, share_prefix: bool):
        batch = rm.collate([e.encoded for e in micro])
        outputs = model(**to_device(batch, device)).reshape(len(micro), -1)  # (b, A)
        targets = torch.tensor([e.targets for e in micro], device=device)
        mask = torch.tensor([e.labelled for e in micro], device=device)
        if self.loss_name == "bce":
            return masked_bce_loss(outputs, targets, mask) * len(micro), labelled_accuracy(outputs, targets, mask)
        return masked_mse_loss(outputs, targets, mask) * len(micro), None

    def evaluate(self, rm: RewardModel, examples: Sequence[EncodedLabels], *, bootstrap: int = 1000) -> Evaluation:
        """Per attribute: regression metrics (for BCE on the probability), ordering accuracy among responses to
        the same prompt, and for a `correct` attribute with groups, best-of-n selection against majority vote."""
        outputs = rm.outputs_encoded([e.encoded for e in examples])
        metrics: dict = {"attributes": {}, "n": len(examples)}
        for a, name in enumerate(self.attributes):
            rows = [(e, out[a]) for e, out in zip(examples, outputs, strict=True) if e.labelled[a]]
            if not rows:
                continue
            predictions = [probability(v) if self.loss_name == "bce" else v for _, v in rows]
            targets = [e.targets[a] for e, _ in rows]
            found = regression_metrics(predictions, targets)
            found["within_prompt_accuracy"] = pairwise_accuracy_within_groups(
                predictions, targets, [e.record.group or str(e.record.prompt) for e, _ in rows])
            if self.loss_name == "bce":
                right = sum((p > 0.5) == (t > 0.5) for p, t in zip(predictions, targets, strict=True))
                found["accuracy"] = right / len(rows)
            metrics["attributes"][name] = found
        if "correct" in self.attributes:
            groups = candidate_groups(examples, [out[self.attributes.index("correct")] for out in outputs])
            if groups:
                metrics["best_of_n"] = best_of_n_metrics(groups, bootstrap=bootstrap)
        rewards = rm.combine(outputs)
        values = [m[self.score_name] for m in metrics["attributes"].values() if m.get(self.score_name) is not None]
        names = self.attributes
        predictions = [{"id": e.record.id, "subset": e.record.subset, "group": e.record.group,
                        "labels": e.record.labels, "outputs": dict(zip(names, out, strict=True)), "reward": reward}
                       for e, out, reward in zip(examples, outputs, rewards, strict=True)]
        return Evaluation(metrics, sum(values) / len(values) if values else None, rewards, predictions)


def labelled_accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed over examples: the share of each one's labelled entries whose logit sign matches its 0/1 target."""
    right = ((logits > 0) == (targets > 0.5)) & mask  # (b, k)
    return (right.float().sum(-1) / mask.sum(-1).clamp(min=1)).sum().detach()


def probability(logit: float) -> float:
    return torch.sigmoid(torch.tensor(logit)).item()


def candidate_groups(examples: Sequence[EncodedLabels], scores: Sequence[float]) -> list[list[tuple]]:
    """(score, correct, answer) of the candidate responses of each group (a question's sampled solutions), for
    best-of-n selection; groups with one candidate choose nothing and are left out."""
    groups: dict[str, list] = {}
    for e, score in zip(examples, scores, strict=True):
        if e.record.group is not None and "correct" in e.record.labels:
            groups.setdefault(e.record.group, []).append((score, e.record.labels["correct"] > 0.5, e.record.answer))
    return [g for g in groups.values() if len(g) > 1]


def pad(values: Sequence, width: int, fill) -> list:
    return [*values, *[fill] * (width - len(values))]
