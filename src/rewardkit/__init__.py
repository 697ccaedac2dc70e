"""rewardkit: reward modeling for LLM alignment.

    import rewardkit
    rm = rewardkit.RewardModel.from_pretrained("runs/demo/model")
    rm.score(["What is 2+2?"], ["4"])
"""

from rewardkit.config import TrainConfig, load_config
from rewardkit.data.preferences import load_preferences
from rewardkit.data.records import PreferencePair
from rewardkit.errors import RewardkitError
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import ScoringSpec
from rewardkit.serving.client import AsyncRewardClient, RewardClient
from rewardkit.training.launch import train

__all__ = [
    "AsyncRewardClient", "PreferencePair", "RewardClient", "RewardEnsemble", "RewardModel", "RewardkitError",
    "ScoringSpec", "TrainConfig", "load_config", "load_preferences", "train",
]
__version__ = "0.1.0"
