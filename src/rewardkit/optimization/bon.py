"""Best-of-N over a pool: score every sample (`optimization.scoring`), keep each prompt's best, and optionally write
best-vs-worst preference pairs (rewardkit's pair format, `PreferencePair.to_dict`) for the next round of reward
model or DPO training.

    summary = best_of_n("pool.jsonl", "runs/ens/model", "best.jsonl", objective="min", pairs_output="pairs.jsonl")

The objective: one model's reward; an ensemble's members' z-scores combined by `combine_rewards` as their mean, min
(worst case) or mean - std_weight * std. Ties go to the lowest sample_index (best) and the highest (worst). A
sample the model cannot score (too long) is counted and never picked; a prompt with none scored is counted and
has no line in the output; a prompt whose best and worst score the same gives no pair (counted).

With `length_penalty` L the objective is `score - L * response tokens` (`rewardkit.scoring.length`; in the
objective's units: raw rewards, or an ensemble's z-scores), and each best line adds `reward_raw`,
`length_penalty` and `response_tokens`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from rewardkit.data.importers import same_kind
from rewardkit.data.records import PreferencePair
from rewardkit.errors import ConfigError, DataError
from rewardkit.io import check_output_file, write_jsonl_atomic
from rewardkit.models.ensemble import RewardEnsemble, combine_rewards
from rewardkit.optimization.scoring import Scorer, score_samples
from rewardkit.precision import Precision
from rewardkit.sampling.pool import PoolSample, group_by_prompt, scan_pool
from rewardkit.scoring.length import check_length_penalty, penalize, response_tokens
from rewardkit.scoring.loading import load_scorer

Objective = Literal["mean", "min", "mean-std"]
ENSEMBLE_MODES = {"mean": "mean", "min": "min", "mean-std": "mean-minus-std"}


@dataclass
class BestOfNSummary:
    prompts: int
    written: int
    samples: int
    unscored_samples: int  # the model could not score them (longer than its max_length)
    prompts_without_scored_sample: int
    duplicated_samples: int  # repeated (prompt_id, sample_index) lines; the first of each is used
    pairs: int
    pairs_skipped_equal_scores: int
    precision: str

    def to_dict(self) -> dict:
        return asdict(self)


def objective_scores(model: Scorer, samples: list[PoolSample], objective: Objective | None,
                     std_weight: float | None, step_aggregate: str) -> tuple[list[float], str, str]:
    """(per-sample objective, the objective's name, the precision) for a model or an ensemble."""
    scores = score_samples(model, samples, step_aggregate=step_aggregate)
    if not isinstance(model, RewardEnsemble):
        if objective not in (None, "mean") or std_weight is not None:
            raise ConfigError("--objective min / mean-std and --std-weight combine an ensemble's members; the "
                              "model given is one reward model")
        return scores.rewards, "reward", scores.precision
    mode = ENSEMBLE_MODES[objective] if objective else model.mode
    weight = model.std_weight if std_weight is None else std_weight
    combined = combine_rewards(list(scores.members.values()), mode, weight)[0]
    name = f"ensemble {mode}" + (f" (std weight {weight:g})" if mode == "mean-minus-std" else "")
    return combined, name, scores.precision


def best_of_n(pool: str | Path, model_dir: str | Path, output: str | Path, *, objective: Objective | None = None,
              std_weight: float | None = None, pairs_output: str | Path | None = None,
              step_aggregate: str = "min", precision: Precision = "fp32",
              length_penalty: float | None = None) -> BestOfNSummary:
    """Write each prompt's best sample (its pool line plus `reward`, `objective`, `candidates`) to `output`."""
    for path in (output, pairs_output):
        if path is not None:
            check_output_file(path)
    if std_weight is not None and not (math.isfinite(std_weight) and std_weight >= 0):
        raise ConfigError(f"--std-weight must be a finite number >= 0, got {std_weight}")
    check_length_penalty(length_penalty)
    scan = scan_pool(pool)
    if not scan.samples:
        raise DataError(f"{pool}: no samples")
    model = load_scorer(model_dir, precision=precision)
    tokens = None if length_penalty is None else response_tokens(model, [s.prompt for s in scan.samples],
                                                                 [s.response for s in scan.samples])
    scores, name, precision = objective_scores(model, scan.samples, objective, std_weight, step_aggregate)
    penalty_of = {}
    if tokens is not None:
        penalty_of = {sample.key: {"reward_raw": score, "length_penalty": length_penalty, "response_tokens": n}
                      for sample, score, n in zip(scan.samples, scores, tokens, strict=True)}
        scores, name = penalize(scores, tokens, length_penalty), f"{name} - {length_penalty:g} * response tokens"
    reward_of = {sample.key: score for sample, score in zip(scan.samples, scores, strict=True)}
    best_lines, pairs, equal, empty = [], [], 0, 0
    groups = group_by_prompt(scan.samples)
    for group in groups.values():
        scored = [s for s in group if math.isfinite(reward_of[s.key])]
        if not scored:
            empty += 1
            continue
        best = max(scored, key=lambda s: (reward_of[s.key], -s.sample_index))
        worst = min(scored, key=lambda s: (reward_of[s.key], -s.sample_index))
        best_lines.append(best.to_dict() | {"reward": reward_of[best.key], "objective": name,
                                            "candidates": len(group), "candidates_scored": len(scored),
                                            "precision": precision} | penalty_of.get(best.key, {}))
        if reward_of[best.key] > reward_of[worst.key]:
            pairs.append(best_vs_worst(best, worst))
        elif len(scored) > 1:
            equal += 1
    write_jsonl_atomic(output, best_lines)
    if pairs_output is not None:
        write_jsonl_atomic(pairs_output, (pair.to_dict() for pair in pairs))
    unscored = sum(1 for score in scores if not math.isfinite(score))
    return BestOfNSummary(len(groups), len(best_lines), len(scan.samples), unscored, empty, len(scan.duplicates),
                          len(pairs), equal, precision)


def best_vs_worst(best: PoolSample, worst: PoolSample) -> PreferencePair:
    prompt, chosen, rejected = same_kind(best.prompt, best.response, worst.response)
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected,
                          id=f"{best.prompt_id}-{best.sample_index}-vs-{worst.sample_index}")
