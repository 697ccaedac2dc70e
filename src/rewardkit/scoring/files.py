"""Batch scoring of files: `rewardkit score --model DIR --input in.jsonl --output out.jsonl`.

Input records hold `prompt` + `response` (text or chat messages), or `messages` (a conversation whose last
message is the assistant reply to score). The output repeats each record with `reward` added (and
`reward_normalized` with --normalize). A multi-attribute model adds `attributes` ({name: value}); `reward` is their
weighted sum, with the spec's weights or `attribute_weights` given at scoring time. A process reward model reads
`prompt` + `steps` and adds `step_rewards` (P(right so far) after each step) and their aggregates `min`, `product`,
`last` and `mean` under `step_aggregates`. An ensemble directory writes its members' combined z-score as `reward`
(`RewardEnsemble.score`: its saved mode and std weight unless --ensemble-mode / --std-weight override them) and
their spread as `uncertainty`. A response that alone exceeds the spec's max length gets `"reward": null` and an
`error`, never a made-up number (so does a non-finite model output); with `long_pairs="truncate"` it is scored
with its tail cut and flagged `"truncated": true`. `max_length` scores with another window than the saved one, up
to the backbone's position limit (`RewardModel.windowed`; the saved spec is untouched). Every line is strict JSON:
a NaN or infinity anywhere else in a record (an input field, an attribute) is written as null. Each record says the
`precision` (bf16 or fp32) it was scored in. With a length penalty λ, `reward` (and `reward_normalized`) is lowered by
λ times the response's tokens, and the record adds `reward_raw`, `length_penalty` and `response_tokens`
(`rewardkit.scoring.length`).
"""

from __future__ import annotations

import math
from pathlib import Path

from rewardkit.data.importers import parse_messages, parse_prompt, parse_response
from rewardkit.data.sources import read_records
from rewardkit.errors import ConfigError, DataError, ModelError
from rewardkit.io import STDOUT, check_output_file, finite_or_none, write_jsonl
from rewardkit.metrics.labels import AGGREGATES
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel
from rewardkit.models.spec import LongResponses, require_at_least
from rewardkit.scoring.length import check_length_penalty, counting_model, penalized_record, response_tokens


def score_file(model: RewardModel | RewardEnsemble, input: str | Path, output: str | Path, *,
               batch_size: int = SCORING_BATCH_SIZE, normalize: bool = False,
               attribute_weights: dict[str, float] | None = None, max_length: int | None = None,
               long_pairs: LongResponses = "drop", length_penalty: float | None = None) -> int:
    """Score every record of `input` with a reward model or an ensemble and write `output` atomically as JSON lines
    ("-": to standard output); returns the number of records. Options and the output path are checked before
    anything is read. `length_penalty` λ scores `reward - λ * response tokens` (`rewardkit.scoring.length`)."""
    model = ready_to_score(model, batch_size=batch_size, normalize=normalize, attribute_weights=attribute_weights,
                           max_length=max_length, long_pairs=long_pairs, length_penalty=length_penalty)
    if str(output) != STDOUT:
        check_output_file(output)
    records = list(read_records(input))
    if not records:
        raise DataError(f"{input}: no records to score")
    write_jsonl(output, score_records(model, records, batch_size=batch_size, normalize=normalize,
                                      attribute_weights=attribute_weights, length_penalty=length_penalty))
    return len(records)


def ready_to_score(model: RewardModel | RewardEnsemble, *, batch_size: int, normalize: bool,
                   attribute_weights: dict[str, float] | None, max_length: int | None,
                   long_pairs: LongResponses, length_penalty: float | None = None) -> RewardModel | RewardEnsemble:
    """`model` windowed as asked, once the options are checked (before anything is read)."""
    refuse_unusable_options(model, normalize, attribute_weights)
    check_length_penalty(length_penalty)
    if length_penalty is not None:
        counting_model(model)  # a process model takes no penalty
    require_at_least("batch_size", batch_size, 1)
    return model.windowed(max_length=max_length, long_responses=long_pairs)


def score_records(model: RewardModel | RewardEnsemble, records: list[tuple[str, dict]], *,
                  batch_size: int = SCORING_BATCH_SIZE, normalize: bool = False,
                  attribute_weights: dict[str, float] | None = None,
                  length_penalty: float | None = None) -> list[dict]:
    """The output records of (location, record) pairs with a `ready_to_score` model: each input record plus its
    reward (or error) and `precision`, strict-JSON ready. The one scoring path of `score_file`, the sharded scorer
    (`rewardkit.scoring.distributed`) and the Ray actors (`rewardkit.scoring.ray_scoring`)."""
    if isinstance(model, RewardEnsemble):
        scored = score_with_ensemble(model, records, batch_size=batch_size)
    elif model.spec.task == "process":
        scored = score_steps(model, records)
    else:
        scored = score_pairs(model, records, batch_size=batch_size, normalize=normalize,
                             attribute_weights=attribute_weights)
    if length_penalty is not None:
        tokens = response_tokens(model, *pairs_of(records))
        scored = [penalized_record(record, n, length_penalty) for record, n in zip(scored, tokens, strict=True)]
    precision = {"precision": model.precision}
    return [finite_or_none(record | precision) for record in scored]


def refuse_unusable_options(model: RewardModel | RewardEnsemble, normalize: bool,
                            attribute_weights: dict[str, float] | None) -> None:
    """Options the model cannot honour fail before anything is read or scored."""
    if isinstance(model, RewardEnsemble):
        if normalize or attribute_weights:
            raise ConfigError("an ensemble's reward is already its members' combined z-score: score it without "
                              "--normalize and --weight")
    elif normalize and model.spec.normalization is None:
        raise ModelError("this model has no normalization statistics (it was trained without held-out pairs); "
                         "score without --normalize")


def score_pairs(rm: RewardModel, records: list[tuple[str, dict]], *, batch_size: int, normalize: bool,
                attribute_weights: dict[str, float] | None) -> list[dict]:
    """`reward` (and `attributes` for a multi-attribute model) of every record, from one encode and one forward."""
    prompts, responses = pairs_of(records)
    encoded = rm.spec.encode_batch(rm.tokenizer, prompts, responses)
    outputs = rm.outputs_encoded(encoded, batch_size=batch_size)
    scored = []
    rewards = rm.combine(outputs, attribute_weights)
    for (_, record), reward, values, pair in zip(records, rewards, outputs, encoded, strict=True):
        result = with_reward(record, reward, too_long(rm.spec.max_length) if values is None else NON_FINITE,
                             truncated=pair is not None and pair.truncated)
        if normalize and result["reward"] is not None:
            result["reward_normalized"] = rm.spec.normalize(reward)
        if rm.spec.attributes and values is not None:
            result["attributes"] = dict(zip(rm.spec.attributes, values, strict=True))
        scored.append(result)
    return scored


def score_with_ensemble(ensemble: RewardEnsemble, records: list[tuple[str, dict]], *, batch_size: int) -> list[dict]:
    """The ensemble's combined z-score as `reward` and its members' spread as `uncertainty`, for every record."""
    prompts, responses = pairs_of(records)
    scores = ensemble.score(prompts, responses, batch_size=batch_size)
    error = too_long(min(member.spec.max_length for member in ensemble.members))
    truncated = [any(flags) for flags in zip(*(truncated_pairs(m, prompts, responses) for m in ensemble.members),
                                             strict=True)]
    return [with_reward(record, reward, error, truncated=cut) | ({"uncertainty": spread} if math.isfinite(reward)
                                                                  else {})
            for (_, record), reward, spread, cut in zip(records, scores.rewards, scores.uncertainty, truncated,
                                                        strict=True)]


def truncated_pairs(rm: RewardModel, prompts: list, responses: list) -> list[bool]:
    """Whether each pair is scored with its response's tail cut (only a spec that truncates cuts any)."""
    if rm.spec.long_responses != "truncate":
        return [False] * len(prompts)
    return [pair is not None and pair.truncated for pair in rm.spec.encode_batch(rm.tokenizer, prompts, responses)]


def pairs_of(records: list[tuple[str, dict]]) -> tuple[list, list]:
    """The prompts and the responses of `records`, in order."""
    pairs = [prompt_and_response(location, record) for location, record in records]
    return [prompt for prompt, _ in pairs], [response for _, response in pairs]


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
    for (_, record), probabilities in zip(records, rm.score_steps(prompts, solutions), strict=True):
        if probabilities is None:
            error = f"solution longer than max_length ({rm.spec.max_length} tokens)"
            scored.append(record | {"step_rewards": None, "error": error})
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


NON_FINITE = "the model gave a non-finite reward (NaN or infinity): its weights may be damaged"


def too_long(max_length: int) -> str:
    return f"response longer than max_length ({max_length} tokens)"


def with_reward(record: dict, reward: float, error: str, *, truncated: bool = False) -> dict:
    """`record` with its reward (and `"truncated": true` when its response was cut to fit), or, where it has none
    (NaN: not scored), with `"reward": null` and `error`."""
    if not math.isfinite(reward):
        return record | {"reward": None, "error": error}
    return record | {"reward": reward} | ({"truncated": True} if truncated else {})
