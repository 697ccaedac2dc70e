"""A length penalty at scoring time: `reward - length_penalty * tokens`, the simplest guard against a policy that
learns that longer answers score higher.

    tokens = response_tokens(rm, prompts, responses)       # each response's tokens as the model scores it
    penalized = penalize(rewards, tokens, 0.01)

`tokens` is `EncodedPair.response_length`: the response as the model's scoring spec renders and tokenizes it (its
template suffix included, after any truncation), the count `rewardkit eval` uses for its length baseline. An
ensemble counts with its first member (the members of a trained ensemble share one backbone's tokenizer). The
penalty is in the units of the score it is subtracted from: raw rewards, z-scores when normalized, an ensemble's
combined z-score. `rewardkit score`, `rewardkit serve` and `rewardkit bon` record what they applied as
`reward_raw` (or `rewards_raw`), `length_penalty` and `response_tokens`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rewardkit.errors import ConfigError, ModelError
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import RewardModel


def check_length_penalty(length_penalty: float | None) -> None:
    """None (no penalty) or a finite number >= 0; anything else is a ConfigError."""
    if length_penalty is not None and not (math.isfinite(length_penalty) and length_penalty >= 0):
        raise ConfigError(f"--length-penalty must be a finite number >= 0, got {length_penalty}")


def counting_model(model: RewardModel | RewardEnsemble) -> RewardModel:
    """The model whose tokenizer counts response tokens: the model itself, or an ensemble's first member; a process
    model's step probabilities take no penalty."""
    rm = model.members[0] if isinstance(model, RewardEnsemble) else model
    if rm.spec.task == "process":
        raise ModelError("a process reward model scores steps with probabilities: it takes no length penalty")
    return rm


def response_tokens(model: RewardModel | RewardEnsemble, prompts: Sequence, responses: Sequence
                    ) -> list[int | None]:
    """Each response's tokens as `model` scores it (`EncodedPair.response_length`); None where it does not fit."""
    rm = counting_model(model)
    return [None if pair is None else pair.response_length
            for pair in rm.spec.encode_batch(rm.tokenizer, prompts, responses)]


def penalize(rewards: Sequence[float], tokens: Sequence[int | None], length_penalty: float) -> list[float]:
    """`reward - length_penalty * tokens` for each reward (NaN stays NaN, and so does a reward without a count)."""
    return [math.nan if n is None else r - length_penalty * n for r, n in zip(rewards, tokens, strict=True)]


def penalized_record(record: dict, tokens: int | None, length_penalty: float) -> dict:
    """A scored record (`rewardkit score`'s output line) with the penalty applied to `reward` and
    `reward_normalized`, plus `reward_raw`, `length_penalty` and `response_tokens`; one without a reward is
    returned as it is."""
    if record.get("reward") is None or tokens is None:
        return record
    penalty = length_penalty * tokens
    applied = {"reward": record["reward"] - penalty, "reward_raw": record["reward"],
               "length_penalty": length_penalty, "response_tokens": tokens}
    if "reward_normalized" in record:
        applied["reward_normalized"] = record["reward_normalized"] - penalty
    return record | applied
