"""Evaluating reward models on preference files: what `rewardkit eval` runs.

    results = evaluate(EvalConfig(models=[Path("runs/demo/model")], data=["test.jsonl"], out_dir=Path("runs/eval")))
    results[0].metrics["overall"]["accuracy"], results[0].metrics["subsets"]["hh-rlhf"]["accuracy"]
    metrics = evaluate_pairs(RewardModel.from_pretrained("runs/demo/model"), pairs)   # in memory, writes nothing

Each model scores every unique (prompt, response) once, through its own scoring spec (`score_responses`), so a
response shared by many pairs costs one forward row. Lengths for the length baseline are response tokens, as in
training's periodic evaluation (`rewardkit.pairs.evaluate_comparisons`), so both report the same numbers.

`evaluate` writes into `out_dir`:

    metrics.json       one model: its `preference_metrics` dict plus "model" (the directory), "dropped_too_long"
                       (pairs with a response longer than the spec's max_length) and "skipped_records";
                       several models: {"models": {name: that dict}, "comparison": {name: {"reference",
                       "difference", "ci95", "n"}}}, each model after the first against the first: strict
                       accuracy difference (this - reference) on the pairs both scored, paired bootstrap CI
    predictions.jsonl  one line per model and pair: id, subset, model, reward_chosen, reward_rejected, margin,
                       correct (chosen reward strictly higher), chosen_length, rejected_length
    report.html, report.md   `rewardkit.report.write_report`

Subsets: a record's own `subset` field; with several files, pairs without one take the file name (its stem).
`subset_field="category"` reads that field instead. RewardBench v1 subset names fill metrics["rewardbench"].

RewardBench 2 (allenai/reward-bench-2: `prompt`, `chosen: [str]`, `rejected: [str, ...]`, `subset`, `id`) is
detected from the first record. Every chosen x rejected pair is evaluated as usual, and metrics["rewardbench2"]
holds the benchmark's own scores: best-of-n credit per prompt (`rewardbench2_accuracy`) averaged per subset, the
Ties subset by its rule (`rewardbench2_ties_score`, ids "ref:N" / "tied:N"), and the final score, the unweighted
mean of the subset scores.

With `fit_temperature`, the temperature fitted on each model's margins (metrics["calibration"]["temperature"]) is
saved into its `scoring_spec.json`; `RewardModel.preference_probability` then gives calibrated P(a preferred over b).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from rich.progress import Progress

from rewardkit.data import DataError, PreferencePair, Text, load_preferences, read_records
from rewardkit.ensemble import RewardEnsemble, combine_rewards, is_ensemble
from rewardkit.importers import IMPORTERS, detect_format
from rewardkit.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from rewardkit.label_metrics import uncertainty_accuracy
from rewardkit.metrics import (
    paired_bootstrap_difference,
    preference_metrics,
    rewardbench2_accuracy,
    rewardbench2_ties_score,
)
from rewardkit.model import RewardModel
from rewardkit.pointwise import evaluate_label_files, evaluates_labels, is_rating_file
from rewardkit.progress import counting_progress
from rewardkit.report import ModelResult, write_report
from rewardkit.spec import ScoringSpec

REWARDBENCH2 = "rewardbench2"
FORMATS = ("auto", REWARDBENCH2, *IMPORTERS)
TIES_SUBSET = "Ties"  # RewardBench 2's subset with several correct answers, scored by its own rule
DATA_SUFFIXES = (".gz", ".jsonl", ".json", ".csv", ".parquet")  # stripped, in this order, to name a file's subset
PREDICTION_KEYS = ("id", "subset", "model", "reward_chosen", "reward_rejected", "margin", "correct",
                   "chosen_length", "rejected_length")


@dataclass
class EvalConfig:
    """What `rewardkit eval` was asked for; the first model is the reference of the comparison."""

    models: list[Path]
    data: list[str]
    out_dir: Path
    subset_field: str | None = None  # None: the record's `subset`, else the file stem when there are several files
    bootstrap: int = 1000  # resamples for every 95% CI; 0 turns CIs off
    seed: int = 0
    fit_temperature: bool = False  # save each model's fitted temperature into its scoring spec
    format: str = "auto"  # one of FORMATS
    on_bad_record: Literal["error", "skip"] = "error"
    batch_size: int = 32
    progress: bool = True
    ensemble_mode: str | None = None  # ensembles: mean, min or mean-minus-std instead of the saved mode
    std_weight: float | None = None  # ensembles: k of mean-minus-std instead of the saved one


@dataclass(frozen=True)
class BestOfGroup:
    """One RewardBench 2 prompt: its correct completions (`chosen`) and incorrect ones (`rejected`)."""

    id: str
    subset: str | None
    prompt: str
    chosen: list[str]
    rejected: list[str]


@dataclass
class EvalData:
    pairs: list[PreferencePair]
    groups: list[BestOfGroup] = field(default_factory=list)  # RewardBench 2 prompts; their pairs are in `pairs`
    skipped: list[str] = field(default_factory=list)  # "location: reason" of records skipped as bad


@dataclass(frozen=True)
class Scored:
    reward: float
    response_length: int


# ----------------------------------------------------------------------------------------------------- running


def evaluate(config: EvalConfig) -> list[ModelResult]:
    """Evaluate every model on the data, write metrics, predictions and the report; returns one result per model."""
    # a directory without a spec fails before any data is read
    specs = {d: ScoringSpec.load(d) for d in config.models if not is_ensemble(d)}
    names = model_names(config.models)
    rating_files = any(s.task == "pointwise" for s in specs.values()) and all(map(is_rating_file, config.data))
    labelled = [evaluates_labels(spec, rating_files) for spec in specs.values()]
    if any(labelled):
        if not all(labelled) or len(specs) < len(config.models):
            raise DataError("some models are scored against labels and others on preference pairs: evaluate them "
                            "separately")
        return evaluate_labels(config, names)
    data = load_eval_data(config.data, subset_field=config.subset_field, format=config.format,
                          on_bad_record=config.on_bad_record)
    results = []
    with counting_progress(enabled=config.progress) as progress:
        for name, directory in zip(names, config.models):
            options = {"name": name, "bootstrap": config.bootstrap, "seed": config.seed,
                       "batch_size": config.batch_size, "progress": progress}
            if is_ensemble(directory):
                ensemble = RewardEnsemble.from_pretrained(directory, mode=config.ensemble_mode,
                                                          std_weight=config.std_weight)
                result = evaluate_ensemble(ensemble, data, **options)
            else:
                rm = RewardModel.from_pretrained(directory)
                result = evaluate_model(rm, data, **options)
                if config.fit_temperature:
                    save_temperature(rm, directory, result.metrics["calibration"]["temperature"])
            result.metrics |= {"model": str(directory), "skipped_records": len(data.skipped)}
            results.append(result)
    for result in results[1:]:
        result.comparison = {results[0].name: compare(results[0], result, bootstrap=config.bootstrap, seed=config.seed)}
    write_outputs(config.out_dir, results)
    return results


def evaluate_labels(config: EvalConfig, names: list[str]) -> list[ModelResult]:
    """Pointwise and process models on label files: metrics.json (by model when several), predictions.jsonl (one
    line per model and record: its outputs, or its step probabilities and predicted first error) and report.md."""
    results = []
    for name, directory in zip(names, config.models):
        rm = RewardModel.from_pretrained(directory)
        metrics, predictions = evaluate_label_files(rm, config.data, on_bad_record=config.on_bad_record,
                                                    bootstrap=config.bootstrap)
        results.append(ModelResult(name=name, metrics=metrics | {"model": str(directory)},
                                   predictions=[p | {"model": name} for p in predictions]))
    document = results[0].metrics if len(results) == 1 else {"models": {r.name: r.metrics for r in results}}
    write_json_atomic(config.out_dir / "metrics.json", document)
    write_jsonl_atomic(config.out_dir / "predictions.jsonl", (p for r in results for p in r.predictions))
    write_text_atomic(config.out_dir / "report.md", "\n\n".join(
        f"# {r.name}\n\n```json\n{json.dumps(r.metrics, indent=2)}\n```" for r in results) + "\n")
    return results


def evaluate_model(rm: RewardModel, data: EvalData, *, name: str, bootstrap: int = 1000, seed: int = 0,
                   batch_size: int = 32, progress: Progress | None = None) -> ModelResult:
    """Score the data with one model: metrics (`preference_metrics`, plus RewardBench 2) and per-pair predictions."""
    scored = score_responses(rm, [(p.prompt, r) for p in data.pairs for r in (p.chosen, p.rejected)],
                             batch_size=batch_size, progress=progress, label=f"scoring {name}")
    predictions = []
    for pair in data.pairs:
        chosen = scored[response_key(pair.prompt, pair.chosen)]
        rejected = scored[response_key(pair.prompt, pair.rejected)]
        if chosen is not None and rejected is not None:
            predictions.append(prediction(pair, chosen, rejected, name))
    if not predictions:
        raise DataError(f"every pair has a response longer than {name}'s max_length ({rm.spec.max_length} tokens); "
                        "evaluate a model trained with a larger max_length")
    metrics = preference_metrics(
        [p["reward_chosen"] for p in predictions],
        [p["reward_rejected"] for p in predictions],
        subsets=[p["subset"] for p in predictions],
        chosen_lengths=[p["chosen_length"] for p in predictions],
        rejected_lengths=[p["rejected_length"] for p in predictions],
        bootstrap=bootstrap,
        seed=seed,
    )
    metrics["dropped_too_long"] = len(data.pairs) - len(predictions)
    if data.groups:
        metrics[REWARDBENCH2] = rewardbench2_summary(
            data.groups, lambda group, response: reward_of(scored, group.prompt, response))
    return ModelResult(name=name, metrics=metrics, predictions=predictions)


def evaluate_ensemble(ensemble: RewardEnsemble, data: EvalData, *, name: str, bootstrap: int = 1000, seed: int = 0,
                      batch_size: int = 32, progress: Progress | None = None) -> ModelResult:
    """The ensemble's combined z-scores evaluated like one model's rewards, plus each member's accuracy and
    whether the members' spread is informative: accuracy by uncertainty (the std of the members' z-scored
    margins), most certain pairs first. Pairs some member could not score are left out."""
    members = [evaluate_model(rm, data, name=f"{name}/member-{i}", bootstrap=0, seed=seed, batch_size=batch_size,
                              progress=progress) for i, rm in enumerate(ensemble.members)]
    by_id = [{p["id"]: p for p in member.predictions} for member in members]
    ids = [p["id"] for p in members[0].predictions if all(p["id"] in found for found in by_id)]
    z = [[(rm.spec.normalize(found[i]["reward_chosen"]), rm.spec.normalize(found[i]["reward_rejected"])) for i in ids]
         for rm, found in zip(ensemble.members, by_id)]
    chosen, _ = combine_rewards([[c for c, _ in member] for member in z], ensemble.mode, ensemble.std_weight)
    rejected, _ = combine_rewards([[r for _, r in member] for member in z], ensemble.mode, ensemble.std_weight)
    _, uncertainty = combine_rewards([[c - r for c, r in member] for member in z], "mean")
    first = by_id[0]
    predictions = [first[i] | {"model": name, "reward_chosen": c, "reward_rejected": r, "margin": c - r,
                               "correct": c > r, "uncertainty": u}
                   for i, c, r, u in zip(ids, chosen, rejected, uncertainty)]
    metrics = preference_metrics(chosen, rejected, subsets=[p["subset"] for p in predictions],
                                 chosen_lengths=[p["chosen_length"] for p in predictions],
                                 rejected_lengths=[p["rejected_length"] for p in predictions],
                                 bootstrap=bootstrap, seed=seed)
    metrics["dropped_too_long"] = len(data.pairs) - len(predictions)
    metrics["ensemble"] = {
        "mode": ensemble.mode, "std_weight": ensemble.std_weight,
        "member_accuracy": [member.metrics["overall"]["accuracy"] for member in members],
        "by_uncertainty": uncertainty_accuracy([p["correct"] for p in predictions], uncertainty),
    }
    return ModelResult(name=name, metrics=metrics, predictions=predictions)


def evaluate_ensemble_pairs(ensemble: RewardEnsemble, pairs: Sequence[PreferencePair], *, bootstrap: int = 1000) -> dict:
    """`evaluate_ensemble` on pairs in memory, writing nothing."""
    return evaluate_ensemble(ensemble, EvalData(list(pairs)), name="ensemble", bootstrap=bootstrap).metrics


def evaluate_pairs(rm: RewardModel, pairs: Sequence[PreferencePair], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Metrics for `pairs`, writing nothing; pairs with a response over max_length are counted, not scored."""
    return evaluate_model(rm, EvalData(list(pairs)), name="model", bootstrap=bootstrap, seed=seed).metrics


# ----------------------------------------------------------------------------------------------------- scoring


def response_key(prompt: Text, response: Text) -> str:
    return json.dumps([prompt, response], ensure_ascii=False)


def score_responses(rm: RewardModel, items: Iterable[tuple[Text, Text]], *, batch_size: int = 32,
                    progress: Progress | None = None, label: str = "scoring") -> dict[str, Scored | None]:
    """Reward and response length of each unique (prompt, response), keyed by `response_key`; None where the
    response alone exceeds the spec's max length. Each unique item is encoded and scored once, longest first
    (so the progress bar's time estimate errs on the long side)."""
    unique = {response_key(prompt, response): (prompt, response) for prompt, response in items}
    keys = list(unique)
    encoded = rm.spec.encode_batch(rm.tokenizer, [unique[k][0] for k in keys], [unique[k][1] for k in keys])
    scored: dict[str, Scored | None] = dict.fromkeys(keys)
    task = progress.add_task(label, total=sum(e is not None for e in encoded), unit="responses") if progress else None
    on_batch = (lambda n: progress.advance(task, n)) if progress else None
    rewards = rm.score_encoded(encoded, batch_size=batch_size, on_batch=on_batch)
    for key, reward, item in zip(keys, rewards, encoded):
        if item is not None:
            scored[key] = Scored(reward, item.response_length)
    return scored


def reward_of(scored: dict[str, Scored | None], prompt: Text, response: Text) -> float | None:
    found = scored[response_key(prompt, response)]
    return None if found is None else found.reward


def prediction(pair: PreferencePair, chosen: Scored, rejected: Scored, model: str) -> dict:
    """One pair's line in predictions.jsonl, plus the texts the report shows for the hardest mistakes."""
    margin = chosen.reward - rejected.reward
    return {
        "id": pair.id, "subset": pair.subset, "model": model,
        "reward_chosen": chosen.reward, "reward_rejected": rejected.reward, "margin": margin, "correct": margin > 0,
        "chosen_length": chosen.response_length, "rejected_length": rejected.response_length,
        **{name: display_text(getattr(pair, name)) for name in ("prompt", "chosen", "rejected")},
    }


def display_text(text: Text) -> str:
    """Plain text as it is; messages as "role: content" paragraphs."""
    return text if isinstance(text, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in text)


def save_temperature(rm: RewardModel, directory: Path, temperature: float) -> None:
    """Store the calibration temperature in the model's spec (rewards themselves stay raw); atomic write."""
    rm.spec = rm.spec.model_copy(update={"temperature": temperature})
    rm.spec.save(directory)


def compare(reference: ModelResult, result: ModelResult, *, bootstrap: int, seed: int) -> dict:
    """Strict accuracy of `result` minus `reference` on the pairs both scored, with a paired bootstrap 95% CI."""
    reference_correct = {p["id"]: float(p["correct"]) for p in reference.predictions}
    shared = [p for p in result.predictions if p["id"] in reference_correct]
    difference = paired_bootstrap_difference([reference_correct[p["id"]] for p in shared],
                                             [float(p["correct"]) for p in shared], bootstrap=bootstrap, seed=seed)
    return {"reference": reference.name, **difference, "n": len(shared)}


def model_names(directories: Sequence[Path]) -> list[str]:
    """Short unique names: each directory's name, with parent names added until they differ."""
    paths = [Path(directory).resolve() for directory in directories]
    for depth in range(1, max(len(path.parts) for path in paths) + 1):
        names = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(names)) == len(names):
            return names
    raise ValueError(f"the same model directory is given twice: {', '.join(map(str, directories))}")


def write_outputs(out_dir: Path, results: list[ModelResult]) -> None:
    """metrics.json, predictions.jsonl, report.html and report.md (shapes in the module docstring)."""
    if len(results) == 1:
        document = results[0].metrics
    else:
        document = {"models": {result.name: result.metrics for result in results},
                    "comparison": {result.name: next(iter(result.comparison.values())) for result in results[1:]}}
    write_json_atomic(out_dir / "metrics.json", document)
    write_jsonl_atomic(out_dir / "predictions.jsonl",
                       ({key: p[key] for key in PREDICTION_KEYS} for result in results for p in result.predictions))
    write_report(out_dir, results)


# -------------------------------------------------------------------------------------------------------- data


def load_eval_data(files: Sequence[str], *, subset_field: str | None = None, format: str = "auto",
                   on_bad_record: Literal["error", "skip"] = "error") -> EvalData:
    """Pairs (and RewardBench 2 prompts) of every file, with subsets as the module docstring says; pair ids are
    made unique across files ("#2", "#3" appended to repeats) so predictions can be joined by id."""
    if format not in FORMATS:
        raise DataError(f"unknown format '{format}'; expected one of {list(FORMATS)}")
    if on_bad_record not in ("error", "skip"):
        raise ValueError(f"on_bad_record must be 'error' or 'skip', not {on_bad_record!r}")
    data = EvalData(pairs=[])
    for file in files:
        part = load_file(file, subset_field, format, on_bad_record)
        if not part.pairs:
            reason = f" (skipped {len(part.skipped)} bad records, the first: {part.skipped[0]})" if part.skipped else ""
            raise DataError(f"{file}: no usable preference pairs{reason}; check it with `rewardkit data audit {file}`")
        if subset_field is None and len(files) > 1:
            part.pairs = [pair if pair.subset else replace(pair, subset=file_stem(file)) for pair in part.pairs]
        data.pairs += part.pairs
        data.groups += part.groups
        data.skipped += part.skipped
    if subset_field is not None and not any(pair.subset for pair in data.pairs):
        raise DataError(f"no record in {', '.join(files)} has a field '{subset_field}'; "
                        "pass the name of the field that holds each record's subset, or leave out --subset-field")
    data.pairs = with_unique_ids(data.pairs)
    return data


def load_file(file: str, subset_field: str | None, format: str, on_bad_record: str) -> EvalData:
    if format == REWARDBENCH2 or (format == "auto" and is_best_of_n(first_record(file))):
        groups, skipped = parse_records(file, on_bad_record, lambda record, index: [
            best_of_group(record, f"{file_stem(file)}-{index}", subset_field or "subset")])
        return EvalData(pairs=[pair for group in groups for pair in group_pairs(group)], groups=groups, skipped=skipped)
    if subset_field in (None, "subset"):
        loaded = load_preferences(file, format=format, on_bad_record=on_bad_record)
        return EvalData(pairs=loaded.pairs, skipped=[f"{s.location}: {s.reason}" for s in loaded.skipped])
    pairs, skipped = parse_records(file, on_bad_record, lambda record, index: import_with_subset(
        record, f"{file_stem(file)}-{index}", subset_field, format))
    return EvalData(pairs=pairs, skipped=skipped)


Item = TypeVar("Item")


def parse_records(file: str, on_bad_record: str,
                  parse: Callable[[dict, int], list[Item]]) -> tuple[list[Item], list[str]]:
    """`parse(record, index)` over the raw records of `file`; a bad record raises or is listed as skipped."""
    items, skipped = [], []
    for index, (location, record) in enumerate(read_records(file)):
        try:
            items += parse(record, index)
        except DataError as error:
            if on_bad_record == "error":
                raise DataError(f"{location}: {error}") from error
            skipped.append(f"{location}: {error}")
    return items, skipped


def import_with_subset(record: dict, default_id: str, subset_field: str, format: str) -> list[PreferencePair]:
    """The record's pairs through its importer, with `subset_field`'s value as their subset.

    (`load_preferences` reads only the field named `subset`; this reads another one.)"""
    value = record.get(subset_field)
    importer = IMPORTERS[detect_format(record) if format == "auto" else format]
    relabelled = {**record, "subset": None if value is None else str(value)}
    return [PreferencePair(**fields) for fields in importer(relabelled, default_id, Counter())]


def first_record(file: str) -> dict | None:
    """The first record, or None when there is none or it is unreadable (the importers then report it)."""
    try:
        return next((record for _, record in read_records(file)), None)
    except DataError:
        return None


def is_best_of_n(record: dict | None) -> bool:
    """RewardBench 2 layout: a text prompt and lists of text completions for chosen and rejected."""
    return isinstance(record, dict) and isinstance(record.get("prompt"), str) and all(
        isinstance(record.get(name), list) and all(isinstance(text, str) for text in record[name])
        for name in ("chosen", "rejected")
    )


def best_of_group(record: dict, default_id: str, subset_field: str) -> BestOfGroup:
    prompt = record.get("prompt")
    if not isinstance(prompt, str):
        raise DataError("field 'prompt': expected a string")
    subset = record.get(subset_field)
    return BestOfGroup(id=str(record.get("id", default_id)), subset=None if subset is None else str(subset),
                       prompt=prompt, chosen=completions(record, "chosen"), rejected=completions(record, "rejected"))


def completions(record: dict, name: str) -> list[str]:
    texts = record.get(name)
    if not isinstance(texts, list) or not texts:
        raise DataError(f"field '{name}': expected a non-empty list of completions")
    if not all(isinstance(text, str) and text.strip() for text in texts):
        raise DataError(f"field '{name}': every completion must be non-blank text")
    return texts


def group_pairs(group: BestOfGroup) -> list[PreferencePair]:
    """Every chosen x rejected pair of a best-of-n prompt, with ids "{id}/c{i}-r{j}"."""
    return [
        PreferencePair(prompt=group.prompt, chosen=chosen, rejected=rejected, id=f"{group.id}/c{i}-r{j}",
                       subset=group.subset)
        for i, chosen in enumerate(group.chosen)
        for j, rejected in enumerate(group.rejected)
    ]


def file_stem(file: str) -> str:
    name = Path(file).name
    for suffix in DATA_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def with_unique_ids(pairs: list[PreferencePair]) -> list[PreferencePair]:
    seen: Counter = Counter()
    unique = []
    for pair in pairs:
        seen[pair.id] += 1
        unique.append(pair if seen[pair.id] == 1 else replace(pair, id=f"{pair.id}#{seen[pair.id]}"))
    return unique


# ------------------------------------------------------------------------------------------------ RewardBench 2


def rewardbench2_summary(groups: Sequence[BestOfGroup], reward: Callable[[BestOfGroup, str], float | None]) -> dict:
    """RewardBench 2 scores from each completion's reward.

    Per prompt outside Ties: best-of-n credit of the first chosen completion against all the others (upstream
    `reroll_and_score_dataset`); a subset's score is the mean credit. Ties: `rewardbench2_ties_score` over the
    "ref:N" / "tied:N" prompts. Final score: the unweighted mean of the subset scores. Prompts with a completion
    too long for the model are left out and counted. Returns
    `{"subsets": {name: score}, "prompts": {name: count}, "score", "dropped_too_long"}`.
    """
    credits: dict[str, list[float]] = defaultdict(list)
    ties: dict[str, dict] = {"ref": {}, "tied": {}}
    dropped = 0
    for group in groups:
        chosen = [reward(group, text) for text in group.chosen]
        rejected = [reward(group, text) for text in group.rejected]
        if None in chosen or None in rejected:
            dropped += 1
        elif (group.subset or "").lower() == TIES_SUBSET.lower():
            kind, _, prompt_id = group.id.partition(":")
            if kind not in ties or not prompt_id:
                raise DataError(f"Ties prompt id '{group.id}': expected 'ref:N' or 'tied:N'")
            ties[kind][prompt_id] = (chosen, rejected)
        else:
            scores = chosen + rejected
            credits[group.subset or "all"].append(rewardbench2_accuracy(scores[0], scores[1:]))
    subsets = {name: float(np.mean(values)) for name, values in sorted(credits.items())}
    prompts = {name: len(values) for name, values in sorted(credits.items())}
    if ties["ref"] or ties["tied"]:
        subsets[TIES_SUBSET] = rewardbench2_ties_score(ties["ref"], ties["tied"])["score"]
        prompts[TIES_SUBSET] = len(ties["ref"]) + len(ties["tied"])
    score = float(np.mean(list(subsets.values()))) if subsets else None
    return {"subsets": subsets, "prompts": prompts, "score": score, "dropped_too_long": dropped}
