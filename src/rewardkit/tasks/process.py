"""Process reward models: step-labelled solutions, BCE on the logit at the separator token ending each step."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rewardkit.config import DataConfig, TaskConfig
from rewardkit.data.labels import load_steps
from rewardkit.data.records import LoadedRecords, StepSolution
from rewardkit.metrics.labels import (
    AGGREGATES,
    first_error_index,
    pairwise_accuracy_within_groups,
    processbench_metrics,
)
from rewardkit.models.reward_model import RewardModel, to_device
from rewardkit.tasks.base import Evaluation, TrainingData, load_split_records
from rewardkit.tasks.losses import masked_bce_loss
from rewardkit.tasks.pointwise import EncodedLabels, labelled_accuracy, pad

STEP_THRESHOLD = 0.5  # a step is predicted wrong when P(right so far) falls below this


class ProcessTask:
    """A process reward model: P(the solution is right so far) at the end of every step."""

    unit = "solutions"
    score_name = "f1"

    def __init__(self, config: TaskConfig) -> None:
        self.last_step_only = config.last_step_only

    def load(self, data: DataConfig, seed: int) -> TrainingData:
        return load_split_records(data, seed, self.read)

    def read(self, path: str, **options) -> LoadedRecords:
        return load_steps(path, **options)

    def encode(self, rm: RewardModel, records: Sequence[StepSolution]) -> tuple[list[EncodedLabels], int]:
        encoded = rm.spec.encode_steps(rm.tokenizer, [r.prompt for r in records], [r.steps for r in records])
        kept = []
        for record, e in zip(records, encoded, strict=True):
            labelled = [label is not None for label in record.labels]
            if self.last_step_only:
                labelled = [False] * (len(labelled) - 1) + labelled[-1:]
            if e is not None and any(labelled):
                kept.append(EncodedLabels(record, e, tuple(label or 0.0 for label in record.labels), tuple(labelled)))
        return kept, len(records) - len(kept)

    def weight(self, example: EncodedLabels) -> float:
        """Labelled steps: the loss is a mean over every supervised step of the batch."""
        return float(sum(example.labelled))

    def loss(self, model, rm: RewardModel, micro: Sequence[EncodedLabels], device, *, share_prefix: bool):
        batch, index = rm.collate_steps([e.encoded for e in micro])
        logits = model(**to_device(batch, device), score_index=index.to(device))  # (b, k_max)
        k_max = logits.shape[1]
        targets = torch.tensor([pad(e.targets, k_max, 0.0) for e in micro], device=device)
        mask = torch.tensor([pad(e.labelled, k_max, False) for e in micro], device=device)
        weight = torch.tensor([self.weight(e) for e in micro], device=device)
        loss = masked_bce_loss(logits, targets, mask, weight=weight)
        return loss * weight.sum(), labelled_accuracy(logits, targets, mask)

    def evaluate(self, rm: RewardModel, examples: Sequence[EncodedLabels], *, bootstrap: int = 1000) -> Evaluation:
        """ProcessBench's first-error metrics, step-level accuracy, and how well each aggregate of the step
        probabilities (min, product, last, mean) tells all-correct solutions from the others (AUC)."""
        probabilities = rm.step_probabilities([e.encoded for e in examples])
        metrics = process_metrics([e.record for e in examples], probabilities)
        predictions = [{"id": e.record.id, "subset": e.record.subset, "first_error": e.record.first_error,
                        "predicted_first_error": first_error_index(p, STEP_THRESHOLD), "labels": e.record.labels,
                        "step_probabilities": p} for e, p in zip(examples, probabilities, strict=True)]
        score = metrics["processbench"]["f1"] if metrics.get("processbench") else None
        return Evaluation(metrics, score, None, predictions)


def process_metrics(records: Sequence[StepSolution], probabilities: Sequence[list[float] | None]) -> dict:
    """Metrics of step probabilities against step labels (records whose solution did not fit are counted)."""
    scored = [(r, p) for r, p in zip(records, probabilities, strict=True) if p is not None]
    steps = [(p > STEP_THRESHOLD) == (label > 0.5)
             for r, ps in scored for p, label in zip(ps, r.labels, strict=True) if label is not None]
    metrics: dict = {"solutions": len(scored), "dropped_too_long": len(records) - len(scored),
                     "step_accuracy": sum(steps) / len(steps) if steps else None, "steps": len(steps)}
    known = [(r, p) for r, p in scored if r.first_error is not None]
    if known:
        metrics["processbench"] = processbench_metrics([first_error_index(p, STEP_THRESHOLD) for _, p in known],
                                                       [r.first_error for r, _ in known])
        final_correct = [float(r.first_error == -1) for r, _ in known]
        metrics["aggregate_auc"] = {  # P(a right solution's aggregate > a wrong one's): pairs within one group
            name: pairwise_accuracy_within_groups([f(p) for _, p in known], final_correct, [0] * len(known))[
                "accuracy_half_ties"] for name, f in AGGREGATES.items()}
    return metrics
