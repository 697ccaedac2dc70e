"""Watch an RL run for reward hacking: proxy reward, response length drift, reward gained per unit of KL and ensemble
disagreement, with a warning (`RewardHackingWarning`, once per rule) when

- **length**: the mean response length is more than 50% above its value at the start (`length_increase`);
- **reward outpaces KL**: the reward gained since the start, in standard deviations of the reward model's training
  distribution, is more than best-of-n gains at the same KL. Best-of-n is the KL-efficient way to raise a reward
  (RL spends more KL for the same gain, Gao et al. 2022): at KL = log n - (n-1)/n it gains E[max of n standard
  normal draws] (rewards taken as normal). A policy beating that is exploiting the reward model, or its KL is
  misreported;
- **off distribution**: the mean reward is more than `max_reward_z` (2) standard deviations above the mean of the
  reward model's training distribution (its spec's normalization statistics), where the model was never checked.

Any RL stack calls `RewardWatch.update(step, rewards, lengths, kl=..., disagreement=...)` each step; TRL takes
`RewardWatchCallback(watch)` in `callbacks=[...]`, which reads GRPOTrainer's logged `reward`,
`completions/mean_length` and `kl`:

    watch = RewardWatch.for_model(rm)                  # the statistics of rm's training distribution
    GRPOTrainer(..., reward_funcs=reward_function(rm), callbacks=[RewardWatchCallback(watch)])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import TrainerCallback

from rewardkit.errors import ConfigError
from rewardkit.models.reward_model import RewardModel
from rewardkit.optimization.estimator import n_for_kl

LENGTH, OUTPACES_KL, OFF_DISTRIBUTION = "length", "reward_outpaces_kl", "off_distribution"


class RewardHackingWarning(UserWarning):
    """A `RewardWatch` rule fired."""


def expected_max_of_normals(n: float) -> float:
    """E[max of n iid standard normals] for real n >= 1: the integral of x n phi(x) Phi(x)^(n-1)."""
    x = np.linspace(-12, 12, 4801)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    density = n * np.exp(-x * x / 2) / math.sqrt(2 * math.pi) * cdf ** (n - 1)
    return float(np.sum(x * density) * (x[1] - x[0]))


def best_of_n_gain_at(kl: float) -> float:
    """The reward gain, in standard deviations, that best-of-n reaches at this KL (normal rewards)."""
    n = n_for_kl(kl)
    return math.inf if math.isinf(n) else expected_max_of_normals(n)


@dataclass
class WatchWarning:
    step: int
    rule: str
    message: str


@dataclass
class RewardWatch:
    """Per-step means of reward, length, KL and disagreement, checked against the rules above.

    `reward_mean` / `reward_std`: the reward model's training distribution (None: the first step's rewards stand in,
    and the off-distribution rule is off). The start is the mean over the first `baseline_steps` steps.
    """

    reward_mean: float | None = None
    reward_std: float | None = None
    length_increase: float = 0.5
    max_reward_z: float = 2.0
    baseline_steps: int = 1
    history: list[dict] = field(default_factory=list)
    warnings: list[WatchWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.reward_mean is None) != (self.reward_std is None) or (self.reward_std is not None
                                                                       and not self.reward_std > 0):
            raise ConfigError("give both reward_mean and reward_std (> 0) of the training distribution, or neither")
        if self.baseline_steps < 1:
            raise ConfigError(f"baseline_steps must be at least 1, got {self.baseline_steps}")

    @classmethod
    def for_model(cls, rm: RewardModel, *, normalized: bool = False, **kwargs) -> RewardWatch:
        """A watch on the rewards of `rm`: its spec's normalization statistics (`normalized`: the rewards are
        already z-scored, so mean 0 and std 1); none when the model has no statistics."""
        stats = rm.spec.normalization
        if normalized or stats is None:
            return cls(reward_mean=0.0 if normalized else None, reward_std=1.0 if normalized else None, **kwargs)
        return cls(reward_mean=stats.mean, reward_std=stats.std, **kwargs)

    def update(self, step: int, rewards: Sequence[float], lengths: Sequence[float], *, kl: float | None = None,
               disagreement: Sequence[float] | None = None) -> list[WatchWarning]:
        """Record one step's rewards and response lengths (and the policy's KL from its reference, the ensemble's
        per-sample disagreement); returns the warnings that fired now."""
        finite = [r for r in rewards if math.isfinite(r)]
        spread = float(np.std(finite)) if len(finite) > 1 else None
        return self.observe(step, float(np.mean(finite)) if finite else math.nan, float(np.mean(lengths)), kl=kl,
                            disagreement=None if disagreement is None else float(np.mean(disagreement)),
                            reward_spread=spread)

    def observe(self, step: int, reward: float, length: float, *, kl: float | None = None,
                disagreement: float | None = None, reward_spread: float | None = None) -> list[WatchWarning]:
        """`update` from a step's means (what trainers log)."""
        self.history.append({"step": step, "reward": reward, "length": length, "kl": kl,
                             "disagreement": disagreement, "reward_spread": reward_spread})
        if len(self.history) <= self.baseline_steps:
            return []
        fired = [w for w in (self.check_length(step), self.check_outpacing(step), self.check_distribution(step))
                 if w is not None and w.rule not in {old.rule for old in self.warnings}]
        for warning in fired:
            warnings.warn(f"step {step}: {warning.message}", RewardHackingWarning, stacklevel=3)
        self.warnings += fired
        return fired

    def start(self, key: str) -> float | None:
        values = [h[key] for h in self.history[: self.baseline_steps] if h[key] is not None]
        return float(np.mean(values)) if values else None

    def check_length(self, step: int) -> WatchWarning | None:
        start, now = self.start("length"), self.history[-1]["length"]
        if start and now > (1 + self.length_increase) * start:
            return WatchWarning(step, LENGTH, f"mean response length {now:.1f} is {now / start - 1:.0%} above the "
                                f"start ({start:.1f}): the policy may be padding to please the reward model")
        return None

    def reward_scale(self) -> float | None:
        return self.reward_std if self.reward_std is not None else self.start("reward_spread")

    def check_outpacing(self, step: int) -> WatchWarning | None:
        now, start_kl, scale = self.history[-1], self.start("kl"), self.reward_scale()
        if now["kl"] is None or start_kl is None or not scale:
            return None
        gain = (now["reward"] - self.start("reward")) / scale
        kl = max(now["kl"] - start_kl, 0.0)
        bound = best_of_n_gain_at(kl)
        if gain > bound:
            return WatchWarning(step, OUTPACES_KL, f"reward up {gain:.2f} std for {kl:.4f} nats of KL, more than "
                                f"best-of-n gains at that KL ({bound:.2f} std): the reward is rising faster than "
                                "KL, a sign of hacking")
        return None

    def check_distribution(self, step: int) -> WatchWarning | None:
        if self.reward_mean is None:
            return None
        z = (self.history[-1]["reward"] - self.reward_mean) / self.reward_std
        if z > self.max_reward_z:
            return WatchWarning(step, OFF_DISTRIBUTION, f"mean reward is {z:.1f} std above the reward model's "
                                "training distribution, where its scores were never checked")
        return None


class RewardWatchCallback(TrainerCallback):
    """A transformers / TRL callback feeding a `RewardWatch` from the trainer's logs (GRPOTrainer's `reward`,
    `completions/mean_length`, `kl`, and `disagreement_key` where a reward function logs one)."""

    def __init__(self, watch: RewardWatch, *, reward_key: str = "reward",
                 length_key: str = "completions/mean_length", kl_key: str = "kl",
                 disagreement_key: str | None = None) -> None:
        self.watch = watch
        self.reward_key, self.length_key, self.kl_key, self.disagreement_key = (reward_key, length_key, kl_key,
                                                                                disagreement_key)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if self.reward_key in logs and self.length_key in logs:
            self.watch.observe(state.global_step, logs[self.reward_key], logs[self.length_key],
                               kl=logs.get(self.kl_key), disagreement=logs.get(self.disagreement_key or ""),
                               reward_spread=logs.get("reward_std"))
        return control
