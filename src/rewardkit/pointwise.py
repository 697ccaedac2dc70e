"""Task families trained from labels on single responses, not comparisons (see `rewardkit.tasks`).

    pointwise  RatedResponse: one output per named attribute (HelpSteer/SteerLM-style ratings, or a verifier's
               `correct`), masked MSE for ratings or BCE for 0/1 labels; a missing label trains nothing
    process    StepSolution: a process reward model, BCE on the logit at the separator token ending each step
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rewardkit.config import DataConfig, TaskConfig
from rewardkit.data import LoadedRecords, read_records
from rewardkit.label_metrics import (
    best_of_n_metrics,
    first_error_index,
    pairwise_accuracy_within_groups,
    processbench_metrics,
    regression_metrics,
)
from rewardkit.labels import RATING_DETECTION, RatedResponse, StepSolution, load_ratings, load_steps
from rewardkit.losses import masked_bce_loss, masked_mse_loss
from rewardkit.model import RewardModel
from rewardkit.spec import EncodedPair, ScoringSpec
from rewardkit.tasks import Evaluation, TrainingData, build_task, load_split_records

STEP_THRESHOLD = 0.5  # a step is predicted wrong when P(right so far) falls below this


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
                for r, e in zip(records, encoded) if e is not None and any(a in r.labels for a in self.attributes)]
        return kept, len(records) - len(kept)

    def weight(self, example: EncodedLabels) -> float:
        return 1.0

    def loss(self, model, rm: RewardModel, micro: Sequence[EncodedLabels], device, *, share_prefix: bool):
        batch = rm.collate([e.encoded for e in micro])
        outputs = model(**{k: v.to(device) for k, v in batch.items()}).reshape(len(micro), -1)  # (b, A)
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
            rows = [(e, out[a]) for e, out in zip(examples, outputs) if e.labelled[a]]
            if not rows:
                continue
            predictions = [probability(v) if self.loss_name == "bce" else v for _, v in rows]
            targets = [e.targets[a] for e, _ in rows]
            found = regression_metrics(predictions, targets)
            found["within_prompt_accuracy"] = pairwise_accuracy_within_groups(
                predictions, targets, [e.record.group or str(e.record.prompt) for e, _ in rows])
            if self.loss_name == "bce":
                found["accuracy"] = sum((p > 0.5) == (t > 0.5) for p, t in zip(predictions, targets)) / max(len(rows), 1)
            metrics["attributes"][name] = found
        if "correct" in self.attributes:
            groups = candidate_groups(examples, [out[self.attributes.index("correct")] for out in outputs])
            if groups:
                metrics["best_of_n"] = best_of_n_metrics(groups, bootstrap=bootstrap)
        rewards = rm.combine(outputs)
        values = [m[self.score_name] for m in metrics["attributes"].values() if m.get(self.score_name) is not None]
        names = self.attributes
        predictions = [{"id": e.record.id, "subset": e.record.subset, "group": e.record.group,
                        "labels": e.record.labels, "outputs": dict(zip(names, out)), "reward": reward}
                       for e, out, reward in zip(examples, outputs, rewards)]
        return Evaluation(metrics, sum(values) / len(values) if values else float("nan"), rewards, predictions)


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
    for e, score in zip(examples, scores):
        if e.record.group is not None and "correct" in e.record.labels:
            groups.setdefault(e.record.group, []).append((score, e.record.labels["correct"] > 0.5, e.record.answer))
    return [g for g in groups.values() if len(g) > 1]


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
        for record, e in zip(records, encoded):
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
        logits = model(**{k: v.to(device) for k, v in batch.items()}, score_index=index.to(device))  # (b, k_max)
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
                        "step_probabilities": p} for e, p in zip(examples, probabilities)]
        score = metrics["processbench"]["f1"] if metrics.get("processbench") else float("nan")
        return Evaluation(metrics, score, None, predictions)


def pad(values: Sequence, width: int, fill) -> list:
    return [*values, *[fill] * (width - len(values))]


AGGREGATES = {
    "min": min,
    "product": lambda p: float(torch.tensor(p, dtype=torch.float64).prod()),
    "last": lambda p: p[-1],
    "mean": lambda p: sum(p) / len(p),
}


def process_metrics(records: Sequence[StepSolution], probabilities: Sequence[list[float] | None]) -> dict:
    """Metrics of step probabilities against step labels (records whose solution did not fit are counted)."""
    scored = [(r, p) for r, p in zip(records, probabilities) if p is not None]
    steps = [(p > STEP_THRESHOLD) == (label > 0.5) for r, ps in scored for p, label in zip(ps, r.labels) if label is not None]
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


# ---------------------------------------------------------------------------------------------- rewardkit eval
def evaluates_labels(spec: ScoringSpec, rating_files: bool) -> bool:
    """Whether `rewardkit eval` scores a model against labels: a process model always does; a pointwise model
    does on rating / outcome files (`is_rating_file`; on preference files its weighted scalar is evaluated as any
    reward is)."""
    return spec.task == "process" or (spec.task == "pointwise" and rating_files)


def is_rating_file(file: str) -> bool:
    first = next((record for _, record in read_records(file)), {})
    return any(fields <= first.keys() for fields, _ in RATING_DETECTION)


def evaluate_label_files(rm: RewardModel, files: Sequence[str], *, on_bad_record: str = "error",
                         bootstrap: int = 1000) -> tuple[dict, list[dict]]:
    """The metrics of the task the model was trained as (`PointwiseTask.evaluate` or `ProcessTask.evaluate`) on
    label files, with the records skipped as bad and those too long for the model counted; and the predictions."""
    spec = rm.spec
    task = build_task(TaskConfig(type=spec.task, loss=spec.loss, attributes=spec.attributes or ["reward"]))
    records, skipped = [], 0
    for file in files:
        loaded = task.read(file, on_bad_record=on_bad_record)
        records += loaded.records
        skipped += len(loaded.skipped)
    examples, dropped = task.encode(rm, records)
    if not examples:
        raise ValueError(f"no record of {', '.join(files)} fits the model's max_length ({spec.max_length} tokens)")
    evaluation = task.evaluate(rm, examples, bootstrap=bootstrap)
    metrics = evaluation.metrics | {"task": spec.task, "dropped_too_long": dropped, "skipped_records": skipped}
    return metrics, evaluation.predictions
