"""Rankings, ratings, outcomes and step labels: the record types beyond preference pairs, and their loaders.

    rankings = load_rankings("oasst-rm-zh.json").records                        # Ranking: responses best first
    ratings = load_ratings("prometheus-mtbench-gpt4-scores.json").records       # RatedResponse: pointwise labels
    solutions = load_steps("processbench-gsm8k.json").records                   # StepSolution: per-step labels
    train, held_out = split_by_prompt(ratings, eval_fraction=0.1, seed=0)       # from rewardkit.data

Formats, picked by `format="auto"` from the first record's fields (checked in this order):

    rankings  ranking          prompt | messages, responses [best, ..., worst]
              ranked           instruction, input, history, output [best, ..., worst] (LLaMA-Factory): one ranking
              (pair formats)   any pair format of `rewardkit.data.preferences.load_preferences` -> rankings of 2
                               [chosen, rejected]; ties are no rankings: dropped and counted as `ties_dropped`
    ratings   prometheus       instruction (a Prometheus grading template), gpt4_score [1-5, ...] -> label "score"
              gsm8k_solutions  question, 6b_finetuning, 6b_verification, 175b_finetuning, 175b_verification
                               {is_correct, solution} -> 4 responses labelled "correct"
              bon_math         question, code [responses], score [bool], pred [answers] -> labelled "correct"
              ratings          prompt | messages, response, numeric label fields (e.g. HelpSteer's attributes)
    steps     processbench     problem, steps, label (index of the first wrong step, -1 when all are right)
              steps            prompt | messages, steps, labels [1, 0, true, false, a number in [0, 1], null]

Sources, default ids ("{file stem}-{record index}", with a suffix per response when a record holds several),
`subset=`, `on_bad_record` and error locations ("FILE:LINE: field 'x': ...") are those of
`rewardkit.data.sources.load_records`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

from rewardkit.data.importers import (
    DETECTION,
    IMPORTERS,
    Importer,
    instruction_prompt,
    optional_key,
    optional_number,
    optional_subset,
    parse_response,
    ranked_responses,
    record_id_or_default,
    record_prompt,
    require_field,
    same_kind,
    string_field,
    wrong_type,
)
from rewardkit.data.records import LoadedRecords, Ranking, RatedResponse, StepSolution, Text
from rewardkit.data.sources import load_records
from rewardkit.errors import ConfigError, DataError

PROMETHEUS_MARKERS = ("###The instruction to evaluate:", "###Response to evaluate:", "###Reference Answer")


GSM8K_SOLUTIONS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


BOXED = "\\boxed{"


def _nonempty_list(record: dict, name: str, length: int | None = None, of: str = "responses") -> list:
    """`record[name]`: a non-empty list, with one item for each of `length` `of` when given."""
    value = require_field(record, name)
    if not isinstance(value, list) or not value:
        raise wrong_type(name, "a non-empty list", value)
    if length is not None and len(value) != length:
        raise DataError(f"field '{name}': {len(value)} items for {length} {of}")
    return value


def _boolean(value: Any, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise wrong_type(field_name, "true or false", value)
    return value


def _ranking(record: dict, default_id: str | None, prompt: Text, responses: list[Text]) -> dict:
    prompt, *responses = same_kind(prompt, *responses)
    return {"prompt": prompt, "responses": responses, "id": record_id_or_default(record, default_id),
            "subset": optional_subset(record), "weight": optional_number(record, "weight")}


def _import_ranking(record: dict, default_id: str | None, notes: Counter) -> list[dict]:
    """`responses` to the `prompt` (or `messages`), best first."""
    return [_ranking(record, default_id, record_prompt(record), ranked_responses(record, "responses"))]


def _import_ranked(record: dict, default_id: str | None, notes: Counter) -> list[dict]:
    """LLaMA-Factory's ranked `output` as one ranking, with the prompt the pair importer builds."""
    return [_ranking(record, default_id, instruction_prompt(record), ranked_responses(record, "output"))]


def _rankings_of_pairs(importer: Importer) -> Importer:
    """A pair format read as rankings of two; its importer drops and counts ties."""

    def import_rankings(record: dict, default_id: str | None, notes: Counter) -> list[dict]:
        return [{"prompt": pair["prompt"], "responses": [pair["chosen"], pair["rejected"]], "id": pair["id"],
                 "subset": pair["subset"], "weight": pair["weight"]} for pair in importer(record, default_id, notes)]

    return import_rankings


RANKING_IMPORTERS: dict[str, Importer] = {
    "ranking": _import_ranking,
    "ranked": _import_ranked,
    **{name: _rankings_of_pairs(importer) for name, importer in IMPORTERS.items() if name != "ranked"},
}


RANKING_DETECTION = [({"responses"}, "ranking"), *DETECTION]


def _rated(
    prompt: Text, response: Text, labels: dict[str, float], id: str, attributes: Sequence[str] | None, *,
    subset: str | None = None, group: str | None = None, answer: str | None = None,
) -> dict:
    """A rated response keeping only the labels named in `attributes` (all without it); none left is an error."""
    if attributes is not None:
        labels = {name: labels[name] for name in attributes if name in labels}
        if not labels:
            raise DataError(f"no label among the attributes {list(attributes)}")
    prompt, response = same_kind(prompt, response)
    return {"prompt": prompt, "response": response, "labels": labels, "id": id, "subset": subset, "group": group,
            "answer": answer}


def _between(text: str, start: str, end: str, field_name: str) -> str:
    """The stripped text between the markers `start` and `end`."""
    begin = text.find(start)
    if begin < 0:
        raise DataError(f"field '{field_name}': no '{start}' marker")
    stop = text.find(end, begin + len(start))
    if stop < 0:
        raise DataError(f"field '{field_name}': no '{end}' marker after '{start}'")
    return text[begin + len(start):stop].strip()


def _judge_scores(record: dict, name: str) -> list[int]:
    scores = _nonempty_list(record, name)
    for i, score in enumerate(scores):
        if isinstance(score, bool) or score not in (1, 2, 3, 4, 5):
            raise DataError(f"field '{name}[{i}]': expected an integer 1 to 5, got {score!r}")
    return scores


def _import_prometheus(
    record: dict, default_id: str | None, notes: Counter, attributes: Sequence[str] | None = None,
) -> list[dict]:
    """The prompt and response parsed out of the grading template; label "score" = the mean judge score. The
    group is `idx` (the MT-Bench question: its prompt holds each model's own earlier turns, so the texts differ)."""
    template = string_field(require_field(record, "instruction"), "instruction")
    instruction, response, reference = PROMETHEUS_MARKERS
    prompt = _between(template, instruction, response, "instruction")
    reply = _between(template, response, reference, "instruction")
    scores = _judge_scores(record, "gpt4_score")
    category = record.get("category")
    return [_rated(prompt, reply, {"score": sum(scores) / len(scores)}, record_id_or_default(record, default_id),
                   attributes, subset=None if category is None else string_field(category, "category"),
                   group=optional_key(record, "idx"))]


def final_answer(solution: str) -> str | None:
    """The text after the last line's "A:" marker (GSM8K solutions end "A: 18"), stripped."""
    answers = [line[2:].strip() for line in solution.splitlines() if line.startswith("A:")]
    return answers[-1] if answers else None


def _import_gsm8k_solutions(
    record: dict, default_id: str | None, notes: Counter, attributes: Sequence[str] | None = None,
) -> list[dict]:
    """One response per sampled solution, labelled "correct" 1.0/0.0, its key as subset, the question as group."""
    question = string_field(require_field(record, "question"), "question")
    group = record_id_or_default(record, default_id)
    rated = []
    for key in GSM8K_SOLUTIONS:
        sample = require_field(record, key)
        if not isinstance(sample, dict):
            raise wrong_type(key, "a solution {is_correct, solution}", sample)
        solution = string_field(require_field(sample, "solution", key), f"{key}.solution")
        correct = _boolean(require_field(sample, "is_correct", key), f"{key}.is_correct")
        rated.append(_rated(question, solution, {"correct": float(correct)}, f"{group}-{key}", attributes,
                            subset=key, group=group, answer=final_answer(solution)))
    return rated


def last_boxed(text: str) -> str | None:
    """The contents of the last \\boxed{...} (nested braces balanced), stripped; None when there is none."""
    begin = text.rfind(BOXED)
    if begin < 0:
        return None
    depth = 0
    for end in range(begin + len(BOXED), len(text)):
        if text[end] == "}" and depth == 0:
            return text[begin + len(BOXED):end].strip()
        depth += {"{": 1, "}": -1}.get(text[end], 0)
    return None


def _import_bon_math(
    record: dict, default_id: str | None, notes: Counter, attributes: Sequence[str] | None = None,
) -> list[dict]:
    """The sampled `code` responses labelled "correct" by `score`; answers from `pred`, else the last \\boxed{}."""
    question = string_field(require_field(record, "question"), "question")
    responses = [string_field(text, f"code[{i}]") for i, text in enumerate(_nonempty_list(record, "code"))]
    scores = [_boolean(score, f"score[{i}]")
              for i, score in enumerate(_nonempty_list(record, "score", len(responses)))]
    predictions = _nonempty_list(record, "pred", len(responses)) if "pred" in record else [None] * len(responses)
    answers = [last_boxed(text) if pred is None else string_field(pred, f"pred[{i}]")
               for i, (text, pred) in enumerate(zip(responses, predictions, strict=True))]
    record_id = record_id_or_default(record, default_id)
    group = optional_key(record, "idx") or record_id
    return [_rated(question, text, {"correct": float(score)}, f"{record_id}-{i}", attributes,
                   subset=optional_subset(record), group=group, answer=answer)
            for i, (text, score, answer) in enumerate(zip(responses, scores, answers, strict=True))]


def _import_ratings(
    record: dict, default_id: str | None, notes: Counter, attributes: Sequence[str] | None = None,
) -> list[dict]:
    """`response` to the `prompt` (or `messages`) with the numeric fields named in `attributes` as labels (an absent
    or null one is missing); without `attributes`, every numeric field but `id` and `group`. Optional `group`,
    `answer`."""
    prompt = record_prompt(record)
    response = parse_response(require_field(record, "response"), "response")
    names = attributes if attributes is not None else [
        name for name, value in record.items()
        if name not in ("id", "group") and isinstance(value, (int, float)) and not isinstance(value, bool)]
    labels = {name: value for name in names if (value := optional_number(record, name)) is not None}
    if not labels and attributes is None:
        raise DataError("no numeric label field (name the labels with attributes=)")
    answer = record.get("answer")
    return [_rated(prompt, response, labels, record_id_or_default(record, default_id), attributes,
                   subset=optional_subset(record), group=optional_key(record, "group"),
                   answer=None if answer is None else string_field(answer, "answer"))]


RATING_IMPORTERS = {
    "prometheus": _import_prometheus,
    "gsm8k_solutions": _import_gsm8k_solutions,
    "bon_math": _import_bon_math,
    "ratings": _import_ratings,
}


RATING_DETECTION = [
    ({"instruction", "gpt4_score"}, "prometheus"),
    ({"question", *GSM8K_SOLUTIONS}, "gsm8k_solutions"),
    ({"question", "code", "score"}, "bon_math"),
    ({"response"}, "ratings"),
]


def _steps(record: dict) -> list[str]:
    steps = [string_field(step, f"steps[{i}]") for i, step in enumerate(_nonempty_list(record, "steps"))]
    empty = next((i for i, step in enumerate(steps) if not step.strip()), None)
    if empty is not None:
        raise DataError(f"field 'steps[{empty}]': empty step")
    return steps


def _solution(
    record: dict, default_id: str | None, prompt: Text, steps: list[str], labels: list[float | None],
    first_error: int | None,
) -> dict:
    return {"prompt": prompt, "steps": steps, "labels": labels, "id": record_id_or_default(record, default_id),
            "subset": optional_subset(record), "first_error": first_error}


def _import_processbench(record: dict, default_id: str | None, notes: Counter) -> list[dict]:
    """`label` is the first wrong step (-1: none). That step and every later one are labelled wrong (0.0), the
    earlier ones right (1.0): a prefix that holds an error is wrong (PRM800K / Math-Shepherd semantics)."""
    prompt = string_field(require_field(record, "problem"), "problem")
    steps = _steps(record)
    label = require_field(record, "label")
    if isinstance(label, bool) or not isinstance(label, int) or not -1 <= label < len(steps):
        raise DataError(f"field 'label': expected -1 or a step index below {len(steps)}, got {label!r}")
    right = len(steps) if label == -1 else label
    return [_solution(record, default_id, prompt, steps, [1.0] * right + [0.0] * (len(steps) - right), label)]


def _step_label(value: Any, field_name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and 0 <= value <= 1):
        return float(value)
    raise DataError(f"field '{field_name}': expected true, false, null or a number in [0, 1], got {value!r}")


def _first_error(labels: list[float | None]) -> int | None:
    """The first label below 0.5, -1 when there is none; None when an unknown label comes before it."""
    for i, label in enumerate(labels):
        if label is None:
            return None
        if label < 0.5:
            return i
    return -1


def _import_steps(record: dict, default_id: str | None, notes: Counter) -> list[dict]:
    """`steps` of a solution to the `prompt` (or `messages`) with one label each."""
    prompt = record_prompt(record)
    steps = _steps(record)
    values = _nonempty_list(record, "labels", len(steps), of="steps")
    labels = [_step_label(value, f"labels[{i}]") for i, value in enumerate(values)]
    return [_solution(record, default_id, prompt, steps, labels, _first_error(labels))]


STEP_IMPORTERS = {"processbench": _import_processbench, "steps": _import_steps}


STEP_DETECTION = [({"problem", "steps", "label"}, "processbench"), ({"steps", "labels"}, "steps")]


def load_rankings(
    source: str | Path, *, format: str = "auto", split: str = "train",
    on_bad_record: Literal["error", "skip"] = "error", subset: str | None = None,
) -> LoadedRecords:
    """`Ranking`s from a ranking source, or from any preference-pair source (rankings of two)."""
    return load_records(source, RANKING_IMPORTERS, RANKING_DETECTION, Ranking, format=format, split=split,
                        on_bad_record=on_bad_record, subset=subset)


def load_ratings(
    source: str | Path, *, format: str = "auto", attributes: Sequence[str] | None = None, split: str = "train",
    on_bad_record: Literal["error", "skip"] = "error", subset: str | None = None,
) -> LoadedRecords:
    """`RatedResponse`s. `attributes` names the labels to keep (for the generic "ratings" format: to read); a record
    with none of them is a bad record."""
    if attributes is not None and (isinstance(attributes, str) or not attributes):
        raise ConfigError(f"attributes must be a non-empty list of label names, not {attributes!r}")
    importers = {name: partial(importer, attributes=attributes) for name, importer in RATING_IMPORTERS.items()}
    return load_records(source, importers, RATING_DETECTION, RatedResponse, format=format, split=split,
                        on_bad_record=on_bad_record, subset=subset)


def load_steps(
    source: str | Path, *, format: str = "auto", split: str = "train",
    on_bad_record: Literal["error", "skip"] = "error", subset: str | None = None,
) -> LoadedRecords:
    """`StepSolution`s with per-step labels."""
    return load_records(source, STEP_IMPORTERS, STEP_DETECTION, StepSolution, format=format, split=split,
                        on_bad_record=on_bad_record, subset=subset)
