"""One reward model (or ensemble) scored on preference pairs: metrics and per-pair predictions.

    metrics = evaluate_pairs(RewardModel.from_pretrained("runs/demo/model"), pairs)   # in memory, writes nothing

Each model scores every unique (prompt, response) once, through its own scoring spec (`score_responses`), so a
response shared by many pairs costs one forward row. Lengths for the length baseline are response tokens, as in
training's periodic evaluation (`rewardkit.tasks.comparisons.evaluate_comparisons`).

A pair is scored when both its responses fit the spec's window (or are truncated to fit, with the spec's
`long_responses="truncate"`); `coverage` (scored / total pairs) sits beside every accuracy, overall and per subset,
and subsets with no pair scored are listed under `unscored_subsets` with their pair counts."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.progress import Progress

from rewardkit.data.records import PreferencePair, Text
from rewardkit.data.rewardbench2 import REWARDBENCH2
from rewardkit.errors import DataError, ModelError
from rewardkit.evaluation.inputs import EvalData
from rewardkit.evaluation.report import ModelResult
from rewardkit.metrics.labels import uncertainty_accuracy
from rewardkit.metrics.preference import comparison_metrics
from rewardkit.metrics.rewardbench import rewardbench2_summary
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel


@dataclass(frozen=True)
class Scored:
    reward: float
    response_length: int
    truncated: bool = False


def evaluate_model(rm: RewardModel, data: EvalData, *, name: str, bootstrap: int = 1000, seed: int = 0,
                   batch_size: int = SCORING_BATCH_SIZE, progress: Progress | None = None) -> ModelResult:
    """Score the data with one model: metrics (`comparison_metrics`, plus RewardBench 2) and per-pair predictions."""
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
                        "raise --max-length (up to the backbone's limit) or pass --long-pairs truncate")
    metrics = comparison_metrics(predictions, bootstrap=bootstrap, seed=seed)
    add_coverage(metrics, data.pairs, predictions, max_length=rm.spec.max_length)
    if data.groups:
        metrics[REWARDBENCH2] = rewardbench2_summary(
            data.groups, lambda group, response: reward_of(scored, group.prompt, response))
    return ModelResult(name=name, metrics=metrics, predictions=predictions)


def evaluate_ensemble(ensemble: RewardEnsemble, data: EvalData, *, name: str, bootstrap: int = 1000, seed: int = 0,
                      batch_size: int = SCORING_BATCH_SIZE, progress: Progress | None = None) -> ModelResult:
    """The ensemble's combined z-scores evaluated like one model's rewards, plus each member's accuracy and
    whether the members' spread is informative: accuracy by uncertainty (the std of the members' z-scored
    margins), most certain pairs first. Pairs some member could not score are left out."""
    members = [evaluate_model(rm, data, name=f"{name}/member-{i}", bootstrap=0, seed=seed, batch_size=batch_size,
                              progress=progress) for i, rm in enumerate(ensemble.members)]
    by_id = [{p["id"]: p for p in member.predictions} for member in members]
    ids = [p["id"] for p in members[0].predictions if all(p["id"] in found for found in by_id)]
    z = [[(rm.spec.normalize(found[i]["reward_chosen"]), rm.spec.normalize(found[i]["reward_rejected"])) for i in ids]
         for rm, found in zip(ensemble.members, by_id, strict=True)]
    chosen, _ = ensemble.combine([[c for c, _ in member] for member in z])
    rejected, _ = ensemble.combine([[r for _, r in member] for member in z])
    _, uncertainty = ensemble.combine([[c - r for c, r in member] for member in z])  # the spread of the margins
    first = by_id[0]
    predictions = [first[i] | {"model": name, "reward_chosen": c, "reward_rejected": r, "margin": c - r,
                               "correct": c > r, "uncertainty": u, "truncated": any(f[i]["truncated"] for f in by_id)}
                   for i, c, r, u in zip(ids, chosen, rejected, uncertainty, strict=True)]
    metrics = comparison_metrics(predictions, bootstrap=bootstrap, seed=seed)
    add_coverage(metrics, data.pairs, predictions, max_length=min(rm.spec.max_length for rm in ensemble.members))
    metrics["ensemble"] = {
        "mode": ensemble.mode, "std_weight": ensemble.std_weight,
        "member_accuracy": [member.metrics["overall"]["accuracy"] for member in members],
        "by_uncertainty": uncertainty_accuracy([p["correct"] for p in predictions], uncertainty),
    }
    return ModelResult(name=name, metrics=metrics, predictions=predictions)


def add_coverage(metrics: dict, pairs: Sequence[PreferencePair], predictions: Sequence[dict], *,
                 max_length: int) -> None:
    """Scored / total pairs (`total`, `coverage`) in the overall block and each subset's; pairs dropped as too
    long, pairs truncated, the window, and the subsets of which no pair was scored ({name: total pairs})."""
    totals = Counter(pair.subset for pair in pairs)
    for block, total in [(metrics["overall"], len(pairs)),
                         *((metrics["subsets"][name], totals[name]) for name in metrics["subsets"])]:
        block["total"], block["coverage"] = total, block["n"] / total
    metrics["unscored_subsets"] = {name: n for name, n in totals.items()
                                   if name is not None and name not in metrics["subsets"]}
    metrics["dropped_too_long"] = len(pairs) - len(predictions)
    metrics["truncated"] = sum(p["truncated"] for p in predictions)
    metrics["max_length"] = max_length


def evaluate_ensemble_pairs(ensemble: RewardEnsemble, pairs: Sequence[PreferencePair], *,
                            bootstrap: int = 1000) -> dict:
    """`evaluate_ensemble` on pairs in memory, writing nothing."""
    return evaluate_ensemble(ensemble, EvalData(list(pairs)), name="ensemble", bootstrap=bootstrap).metrics


def evaluate_pairs(rm: RewardModel, pairs: Sequence[PreferencePair], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Metrics for `pairs`, writing nothing; pairs with a response over max_length are counted, not scored."""
    return evaluate_model(rm, EvalData(list(pairs)), name="model", bootstrap=bootstrap, seed=seed).metrics


def response_key(prompt: Text, response: Text) -> str:
    return json.dumps([prompt, response], ensure_ascii=False)


def score_responses(rm: RewardModel, items: Iterable[tuple[Text, Text]], *, batch_size: int = SCORING_BATCH_SIZE,
                    progress: Progress | None = None, label: str = "scoring") -> dict[str, Scored | None]:
    """Reward, response length and truncation of each unique (prompt, response), keyed by `response_key`; None
    where the response alone exceeds the spec's max length (and the spec drops such pairs). Each unique item is
    encoded and scored once, longest first (so the progress bar's time estimate errs on the long side). A
    non-finite reward is a ModelError."""
    unique = {response_key(prompt, response): (prompt, response) for prompt, response in items}
    keys = list(unique)
    encoded = rm.spec.encode_batch(rm.tokenizer, [unique[k][0] for k in keys], [unique[k][1] for k in keys])
    scored: dict[str, Scored | None] = dict.fromkeys(keys)
    task = progress.add_task(label, total=sum(e is not None for e in encoded), unit="responses") if progress else None
    on_batch = (lambda n: progress.advance(task, n)) if progress else None
    rewards = rm.score_encoded(encoded, batch_size=batch_size, on_batch=on_batch)
    for key, reward, item in zip(keys, rewards, encoded, strict=True):
        if item is not None:
            if not math.isfinite(reward):
                raise ModelError(f"{label}: the model gave a non-finite reward (NaN or infinity); its weights may be "
                                 "damaged: re-export or retrain it")
            scored[key] = Scored(reward, item.response_length, item.truncated)
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
        "truncated": chosen.truncated or rejected.truncated,
        **{name: display_text(getattr(pair, name)) for name in ("prompt", "chosen", "rejected")},
    }


def display_text(text: Text) -> str:
    """Plain text as it is; messages as "role: content" paragraphs."""
    return text if isinstance(text, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in text)
