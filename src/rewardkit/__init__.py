"""rewardkit: reward modeling for LLM alignment.

    import rewardkit
    rm = rewardkit.RewardModel.from_pretrained("runs/demo/model")
    rm.score(["What is 2+2?"], ["4"])
"""

from rewardkit.data import PreferencePair, load_preferences
from rewardkit.model import RewardModel
from rewardkit.spec import ScoringSpec

__all__ = ["PreferencePair", "RewardModel", "ScoringSpec", "load_preferences"]
__version__ = "0.1.0"
