"""The one loader every scoring path uses: a saved reward model or ensemble, in the precision asked for.

    scorer = load_scorer("runs/demo/model", precision="auto")   # bf16 weights where the hardware is fast at it
    scorer.score(prompts, responses)
"""

from __future__ import annotations

from pathlib import Path

from rewardkit.errors import ConfigError
from rewardkit.models.ensemble import EnsembleMode, RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.precision import Precision


def load_scorer(directory: str | Path, *, precision: Precision = "fp32", ensemble_mode: EnsembleMode | None = None,
                std_weight: float | None = None) -> RewardModel | RewardEnsemble:
    """The ensemble saved in `directory` (its mode and std weight unless overridden), or its reward model; the
    ensemble overrides are a ConfigError for a single model, never silently ignored."""
    if is_ensemble(directory):
        return RewardEnsemble.from_pretrained(directory, mode=ensemble_mode, std_weight=std_weight,
                                              precision=precision)
    if ensemble_mode is not None or std_weight is not None:
        raise ConfigError(f"--ensemble-mode and --std-weight apply to ensembles; {directory} is one reward model")
    return RewardModel.from_pretrained(directory, precision=precision)
