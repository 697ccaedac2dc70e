"""The one loader every scoring path uses: a saved reward model or ensemble, in the precision asked for.

    scorer = load_scorer("runs/demo/model", precision="auto")   # bf16 weights where the hardware is fast at it
    scorer.score(prompts, responses)
"""

from __future__ import annotations

from pathlib import Path

import torch

from rewardkit.errors import ConfigError
from rewardkit.models.ensemble import EnsembleMode, RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.precision import Precision, default_device


def load_scorer(directory: str | Path, *, precision: Precision = "fp32", ensemble_mode: EnsembleMode | None = None,
                std_weight: float | None = None, device: str | torch.device | None = None
                ) -> RewardModel | RewardEnsemble:
    """The ensemble saved in `directory` (its mode and std weight unless overridden), or its reward model, on
    `device` (None: the GPU when there is one, else the CPU); the ensemble overrides are a ConfigError for a single
    model, never silently ignored."""
    device = device or default_device()
    if is_ensemble(directory):
        ensemble = RewardEnsemble.from_pretrained(directory, mode=ensemble_mode, std_weight=std_weight,
                                                  precision=precision)
        for member in ensemble.members:
            member.to(device)
        return ensemble
    if ensemble_mode is not None or std_weight is not None:
        raise ConfigError(f"--ensemble-mode and --std-weight apply to ensembles; {directory} is one reward model")
    return RewardModel.from_pretrained(directory, precision=precision).to(device)
