"""rewardkit: reward modeling for LLM alignment.

    import rewardkit
    rm = rewardkit.RewardModel.from_pretrained("runs/demo/model")
    rm.score(["What is 2+2?"], ["4"])

The public names load on first use (PEP 562), so `import rewardkit` and `rewardkit --help` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "AsyncRewardClient": "rewardkit.serving.client",
    "PreferencePair": "rewardkit.data.records",
    "RewardClient": "rewardkit.serving.client",
    "RewardEnsemble": "rewardkit.models.ensemble",
    "RewardModel": "rewardkit.models.reward_model",
    "RewardkitError": "rewardkit.errors",
    "ScoringSpec": "rewardkit.models.spec",
    "TrainConfig": "rewardkit.config",
    "load_config": "rewardkit.config",
    "load_preferences": "rewardkit.data.preferences",
    "train": "rewardkit.training.launch",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rewardkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
