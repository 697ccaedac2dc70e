"""Batch scoring of files: `rewardkit score --model DIR --input in.jsonl --output out.jsonl`.

Input records hold `prompt` + `response` (text or chat messages), or `messages` (a conversation whose last
message is the assistant reply to score). The output repeats each record with `reward` added (and
`reward_normalized` with --normalize). A multi-attribute model adds `attributes` ({name: value}); `reward` is their
weighted sum, with the spec's weights or `attribute_weights` given at scoring time. A process reward model reads
`prompt` + `steps` and adds `step_rewards` (P(right so far) after each step) and their aggregates `min`, `product`,
`last` and `mean` under `step_aggregates`. A response that alone exceeds the spec's max length gets
`"reward": null` and an `error`, never a made-up number.
"""

from __future__ import annotations

import math
from pathlib import Path

from rewardkit.data.importers import parse_messages, parse_prompt, parse_response
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError, ModelError
from rewardkit.io import write_jsonl_atomic
from rewardkit.metrics.labels import AGGREGATES
from rewardkit.models.reward_model import RewardModel


def score_file(rm: RewardModel, input: str | Path, output: str | Path, *, batch_size: int = 32,
               normalize: bool = False, attribute_weights: dict[str, float] | None = None) -> int:
    """Score every record of `input` and write `output` atomically; returns the number of records."""
    if normalize and rm.spec.normalization is None:
        raise ModelError("this model has no normalization statistics (it was trained without held-out pairs); "
                         "score without --normalize")
    records = list(read_records(input))
    if not records:
        raise DataError(f"{input}: no records to score")
    if rm.spec.task == "process":
        write_jsonl_atomic(output, score_steps(rm, records))
        return len(records)
    prompts, responses = zip(*(prompt_and_response(location, record) for location, record in records))
    rewards = rm.score(list(prompts), list(responses), batch_size=batch_size, attribute_weights=attribute_weights)
    scored = [with_reward(rm, record, reward, normalize) for (_, record), reward in zip(records, rewards)]
    if rm.spec.attributes:
        values = rm.score_attributes(list(prompts), list(responses), batch_size=batch_size)
        scored = [record | {"attributes": found} if found else record for record, found in zip(scored, values)]
    write_jsonl_atomic(output, scored)
    return len(records)


def score_steps(rm: RewardModel, records: list[tuple[str, dict]]) -> list[dict]:
    """Process reward models: per-step probabilities and their aggregates for `prompt` + `steps` records."""
    prompts, solutions = [], []
    for location, record in records:
        try:
            steps = record.get("steps")
            if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
                raise DataError("field 'steps': expected a non-empty list of non-blank strings")
            prompts.append(parse_prompt(record.get("prompt", ""), "prompt"))
            solutions.append(steps)
        except DataError as err:
            raise DataError(f"{location}: {err}") from None
    scored = []
    for (_, record), probabilities in zip(records, rm.score_steps(prompts, solutions)):
        if probabilities is None:
            scored.append(record | {"step_rewards": None, "error": f"solution longer than max_length ({rm.spec.max_length} tokens)"})
        else:
            aggregates = {name: f(probabilities) for name, f in AGGREGATES.items()}
            scored.append(record | {"step_rewards": probabilities, "step_aggregates": aggregates})
    return scored


def prompt_and_response(location: str, record: dict):
    """(prompt, response) of one input record, checked as the importers check pairs; errors name the record."""
    try:
        if "messages" in record:
            messages = parse_messages(record["messages"], "messages")
            if not messages or messages[-1]["role"] != "assistant":
                raise DataError("field 'messages' must end with the assistant reply to score")
            return messages[:-1], parse_response(messages[-1:], "messages")
        for field in ("prompt", "response"):
            if field not in record:
                raise DataError(f"missing field '{field}' (records need prompt + response, or messages)")
        return parse_prompt(record["prompt"], "prompt"), parse_response(record["response"], "response")
    except DataError as err:
        raise DataError(f"{location}: {err}") from None


def with_reward(rm: RewardModel, record: dict, reward: float, normalize: bool) -> dict:
    if not math.isfinite(reward):
        return record | {"reward": None, "error": f"response longer than max_length ({rm.spec.max_length} tokens)"}
    scored = record | {"reward": reward}
    if normalize:
        scored["reward_normalized"] = rm.spec.normalize(reward)
    return scored
