"""Scores for every sample of a pool, through the one scoring path: `RewardModel.score_candidates` (each prompt's
N responses packed into one row on a decoder, the prompt computed once), an ensemble's members z-scored and
combined by `combine_rewards`, or a process reward model's step probabilities (`score_steps`) aggregated by min,
last or product. NaN where a model cannot score a sample (the response does not fit its `max_length`): callers count
those samples, never score them 0.

A process model reads a response as steps split on blank lines (`STEP_BREAK`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rewardkit.metrics.labels import AGGREGATES
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.sampling.pool import PoolSample, group_by_prompt

STEP_BREAK = re.compile(r"\n\s*\n")
STEP_AGGREGATES = ("min", "last", "product")


Scorer = RewardModel | RewardEnsemble


@dataclass
class PoolScores:
    """Per sample (in the order given): the scorer's reward, and an ensemble's members' z-scores by name; the
    precision the model was loaded in."""

    rewards: list[float]
    members: dict[str, list[float]]
    precision: str


def score_samples(scorer: Scorer, samples: Sequence[PoolSample], *, step_aggregate: str = "min") -> PoolScores:
    """Rewards of `samples`, each prompt's samples scored together (load `scorer` with
    `rewardkit.scoring.loading.load_scorer`)."""
    if isinstance(scorer, RewardEnsemble):
        members = {f"member-{i}": normalized(m, member_rewards(m, samples, step_aggregate))
                   for i, m in enumerate(scorer.members)}
        return PoolScores(scorer.combine(list(members.values()))[0], members, scorer.precision)
    return PoolScores(member_rewards(scorer, samples, step_aggregate), {}, scorer.precision)


def normalized(rm: RewardModel, rewards: list[float]) -> list[float]:
    return [rm.spec.normalize(r) if math.isfinite(r) else math.nan for r in rewards]


def member_rewards(rm: RewardModel, samples: Sequence[PoolSample], step_aggregate: str) -> list[float]:
    """One model's raw rewards of `samples` in their order (a process model: its aggregate of the steps)."""
    if rm.spec.task == "process":
        return process_rewards(rm, samples, step_aggregate)
    position = {id(sample): i for i, sample in enumerate(samples)}
    groups = list(group_by_prompt(samples).values())
    scores = rm.score_candidates([g[0].prompt for g in groups], [[s.response for s in g] for g in groups])
    rewards = [math.nan] * len(samples)
    for group, group_scores in zip(groups, scores, strict=True):
        for sample, score in zip(group, group_scores, strict=True):
            rewards[position[id(sample)]] = score
    return rewards


def response_steps(response: str) -> list[str]:
    """A response's steps: its paragraphs (split on blank lines), blank ones left out; the whole text if none."""
    steps = [step.strip() for step in STEP_BREAK.split(response) if step.strip()]
    return steps or [response]


def process_rewards(rm: RewardModel, samples: Sequence[PoolSample], aggregate: str) -> list[float]:
    if aggregate not in STEP_AGGREGATES:
        raise ValueError(f"step aggregate {aggregate!r}: use one of {list(STEP_AGGREGATES)}")
    probabilities = rm.score_steps([s.prompt for s in samples], [response_steps(s.response) for s in samples])
    return [math.nan if p is None else float(AGGREGATES[aggregate](p)) for p in probabilities]
