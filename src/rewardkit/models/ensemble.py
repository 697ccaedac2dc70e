"""Reward model ensembles: K members trained on resamples of the data, scored as one.

    rewardkit train --config c.yaml --output-dir runs/ens --ensemble 4    # runs/ens/model/member-{0..3}
    ensemble = RewardEnsemble.from_pretrained("runs/ens/model", mode="min")
    scored = ensemble.score(prompts, responses)   # .rewards (combined z-scores), .uncertainty (members' std)

Each member's rewards are z-scored with its own normalization (its held-out statistics), so members on different
scales weigh alike. The combination is the mean, the min (pessimistic: the standard defense against reward hacking,
Coste et al. 2024) or mean - k * std (uncertainty-penalized, Eisenstein et al. 2023); the members' spread is each
item's uncertainty. An ensemble directory holds `ensemble.json` and one stock reward model directory per member.
"""

from __future__ import annotations

import functools
import math
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from rewardkit.errors import ConfigError, ModelError
from rewardkit.io import write_json_atomic
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel
from rewardkit.models.spec import LongResponses, read_model_json
from rewardkit.precision import Precision

EnsembleMode = Literal["mean", "min", "mean-minus-std"]


MODES = get_args(EnsembleMode)


ENSEMBLE_FILE = "ensemble.json"


@dataclass
class EnsembleScores:
    rewards: list[float]  # combined z-scores (NaN where a member could not score the item)
    uncertainty: list[float]  # population std of the members' z-scores
    members: list[list[float]]  # each member's z-scores


def combine_rewards(member_rewards: Sequence[Sequence[float]], mode: EnsembleMode, std_weight: float = 1.0
                    ) -> tuple[list[float], list[float]]:
    """(combined reward, population std across members) per item, from each member's z-scored rewards; both are
    NaN where a member's reward is (`min` alone would skip it)."""
    combined, spread = [], []
    for values in zip(*member_rewards, strict=True):
        if any(math.isnan(v) for v in values):
            combined.append(math.nan)
            spread.append(math.nan)
            continue
        mean, std = statistics.fmean(values), statistics.pstdev(values)
        combined.append({"mean": mean, "min": min(values), "mean-minus-std": mean - std_weight * std}[mode])
        spread.append(std)
    return combined, spread


class RewardEnsemble:
    """Members scored independently, z-scored, then combined per item."""

    def __init__(self, members: Sequence[RewardModel], *, mode: EnsembleMode = "mean",
                 std_weight: float = 1.0) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown ensemble mode {mode!r}; use one of {list(MODES)}")
        if not (math.isfinite(std_weight) and std_weight >= 0):
            raise ConfigError(f"the ensemble's std weight must be a finite number >= 0, not {std_weight}")
        unnormalized = [i for i, m in enumerate(members) if m.spec.normalization is None]
        if len(members) < 2 or unnormalized:
            raise ModelError("an ensemble needs two or more members, each with normalization statistics "
                             f"(members without: {unnormalized})")
        self.members, self.mode, self.std_weight = list(members), mode, std_weight

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, mode: EnsembleMode | None = None,
                        std_weight: float | None = None, precision: Precision = "fp32",
                        load_member: Callable[[Path], RewardModel] | None = None) -> RewardEnsemble:
        """The saved ensemble, with its saved mode and std weight unless `mode` / `std_weight` override them;
        its members loaded in `precision`, or by `load_member` (the service passes its own, to share loaded
        models)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        load = load_member or functools.partial(RewardModel.from_pretrained, precision=precision)
        members = [load(directory / name) for name in manifest["members"]]
        return cls(members, mode=mode or manifest["mode"],
                   std_weight=manifest["std_weight"] if std_weight is None else std_weight)

    def windowed(self, *, max_length: int | None = None, long_responses: LongResponses | None = None
                 ) -> RewardEnsemble:
        """The ensemble with every member scoring in the same window (`RewardModel.windowed`); this ensemble itself
        when no member changes."""
        members = [m.windowed(max_length=max_length, long_responses=long_responses) for m in self.members]
        if all(new is old for new, old in zip(members, self.members, strict=True)):
            return self
        return RewardEnsemble(members, mode=self.mode, std_weight=self.std_weight)

    @property
    def precision(self) -> str:
        return self.members[0].precision

    def combine(self, member_rewards: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
        """(combined reward, members' population std) per item, from each member's z-scored rewards, with this
        ensemble's mode and std weight: the one combination that eval, score and serve all use."""
        assert len(member_rewards) == len(self.members), "one list of rewards per member"
        return combine_rewards(member_rewards, self.mode, self.std_weight)

    def score(self, prompts: Sequence, responses: Sequence, *, batch_size: int = SCORING_BATCH_SIZE) -> EnsembleScores:
        members = [m.score(prompts, responses, batch_size=batch_size, normalize=True) for m in self.members]
        rewards, spread = self.combine(members)
        return EnsembleScores(rewards, spread, members)


def is_ensemble(directory: str | Path) -> bool:
    return (Path(directory) / ENSEMBLE_FILE).is_file()


def read_manifest(directory: Path) -> dict:
    path = directory / ENSEMBLE_FILE
    if not path.is_file():
        raise ModelError(f"{directory} has no {ENSEMBLE_FILE}: it is not a rewardkit ensemble")
    manifest = read_model_json(path)
    keys = manifest.keys() if isinstance(manifest, dict) else ()
    missing = [key for key in ("members", "mode", "std_weight") if key not in keys]
    if missing:
        raise ModelError(f"{path}: missing {', '.join(missing)}; it is not a rewardkit ensemble manifest")
    return manifest


def save_ensemble(directory: Path, member_dirs: Sequence[Path], *, mode: EnsembleMode = "mean",
                  std_weight: float = 1.0, sampling: str | None = None) -> None:
    """Move the members (directories outside `directory`) into `directory`, replacing it whole, and write its
    manifest."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    names = []
    for i, member in enumerate(member_dirs):
        name = f"member-{i}"
        Path(member).rename(directory / name)
        names.append(name)
    write_json_atomic(directory / ENSEMBLE_FILE, {"members": names, "mode": mode, "std_weight": std_weight,
                                                  "sampling": sampling})
