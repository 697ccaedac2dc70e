"""A rewardkit model as a TRL reward function, local or served:

    from rewardkit.integrations.trl import reward_function
    GRPOTrainer(model=..., reward_funcs=reward_function("runs/demo/model"), ...)
    GRPOTrainer(model=..., reward_funcs=reward_function("http://127.0.0.1:8000", api_key=key), ...)

TRL calls it with `prompts` and `completions` (text, or chat message lists for conversational data); each pair is
rendered through the model's scoring spec, so a reward equals `RewardModel.score` on the same pair. A response too
long for the model's `max_length` gets NaN (TRL's value for "no reward"); a served model refuses it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rewardkit.errors import ConfigError
from rewardkit.models.ensemble import RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel
from rewardkit.serving.client import RewardClient

Scorer = Callable[[Sequence, Sequence], list[float]]


class RewardFunction:
    """TRL's reward-function signature, `(prompts, completions, **kwargs) -> list[float]`, over one scorer;
    `__name__` is what TRL logs the rewards under (`rewards/<name>/mean`)."""

    def __init__(self, scorer: Scorer, name: str) -> None:
        self.scorer, self.__name__ = scorer, name

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs) -> list[float]:
        return self.scorer(list(prompts), list(completions))


def reward_function(model_or_url: RewardModel | RewardEnsemble | str | Path, *, api_key: str | None = None,
                    batch_size: int = SCORING_BATCH_SIZE, normalize: bool = False, model: str | None = None,
                    name: str = "rewardkit") -> RewardFunction:
    """A TRL reward function scoring with a loaded model or ensemble, a saved model or ensemble directory, or a
    `rewardkit serve` URL (`api_key` for its Bearer auth, `model` to pick a served model). `normalize` z-scores
    with the model's normalization statistics (ensembles always are)."""
    return RewardFunction(scorer_for(model_or_url, api_key=api_key, batch_size=batch_size, normalize=normalize,
                                     model=model), name)


def scorer_for(source: RewardModel | RewardEnsemble | str | Path, *, api_key: str | None, batch_size: int,
               normalize: bool, model: str | None) -> Scorer:
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        client = RewardClient(source, api_key, model=model)
        return lambda prompts, responses: client.score(prompts, responses, normalize=normalize)
    if model is not None:
        raise ConfigError("`model` picks a served model; it needs a `rewardkit serve` URL")
    if isinstance(source, (str, Path)):
        source = load(Path(source))
    if isinstance(source, RewardEnsemble):
        return lambda prompts, responses: source.score(prompts, responses, batch_size=batch_size).rewards
    return lambda prompts, responses: source.score(prompts, responses, batch_size=batch_size, normalize=normalize)


def load(directory: Path) -> RewardModel | RewardEnsemble:
    """The saved model or ensemble in `directory`; errors are ModelErrors naming it."""
    if not directory.is_dir():
        raise ConfigError(f"{directory} is neither a model directory nor an http(s):// URL of `rewardkit serve`")
    return RewardEnsemble.from_pretrained(directory) if is_ensemble(directory) else RewardModel.from_pretrained(
        directory)
