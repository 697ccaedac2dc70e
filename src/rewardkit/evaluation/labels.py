"""`rewardkit eval` on pointwise and process models: their task's metrics on label files."""

from __future__ import annotations

from collections.abc import Sequence

from rewardkit.config import TaskConfig
from rewardkit.data.importers import detected_format
from rewardkit.data.labels import RATING_DETECTION
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import ScoringSpec
from rewardkit.tasks.registry import build_task


def evaluates_labels(spec: ScoringSpec, rating_files: bool) -> bool:
    """Whether `rewardkit eval` scores a model against labels: a process model always does; a pointwise model
    does on rating / outcome files (`is_rating_file`; on preference files its weighted scalar is evaluated as any
    reward is)."""
    return spec.task == "process" or (spec.task == "pointwise" and rating_files)


def is_rating_file(file: str) -> bool:
    first = next((record for _, record in read_records(file)), {})
    return detected_format(first, RATING_DETECTION) is not None


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
        raise DataError(f"no record of {', '.join(files)} fits the model's max_length ({spec.max_length} tokens)")
    evaluation = task.evaluate(rm, examples, bootstrap=bootstrap)
    metrics = evaluation.metrics | {"task": spec.task, "dropped_too_long": dropped, "skipped_records": skipped}
    return metrics, evaluation.predictions
