"""The task families by `task.type`."""

from __future__ import annotations

from rewardkit.config import TaskConfig
from rewardkit.tasks.base import Task
from rewardkit.tasks.listwise import ListwiseTask
from rewardkit.tasks.pairwise import PairwiseTask
from rewardkit.tasks.pointwise import PointwiseTask
from rewardkit.tasks.process import ProcessTask


def build_task(config: TaskConfig, *, use_margin: bool = False, center_rewards_coefficient: float = 0.0) -> Task:
    if config.type == "pairwise":
        return PairwiseTask(config, use_margin=use_margin, center_rewards_coefficient=center_rewards_coefficient)
    if config.type == "listwise":
        return ListwiseTask(config)
    return PointwiseTask(config) if config.type == "pointwise" else ProcessTask(config)
