"""The overoptimization study on a scored pool: for each proxy objective and n = 1 .. max_n, the unbiased expected
proxy and gold reward of best-of-n (`estimator`), the hacking diagnostics, bootstrap CIs over prompts, the fits and
their peaks.

What is left out is counted, never dropped in silence or scored 0 (`Exclusions`, in metrics.json and the CLI):
- a repeated (prompt_id, sample_index): the first line is kept (a draw counted twice would weigh double);
- a sample some proxy or the gold cannot score (NaN: e.g. longer than the model's max_length), or whose answer
  cannot be parsed (`--gold-answers`): left out of its prompt's pool, which then has fewer samples;
- a prompt with fewer usable samples than max_n: left out of every curve (each curve averages the same prompts,
  so its shape is not an artifact of prompts dropping out as n grows). max_n defaults to the fewest usable samples
  any prompt has; n above the largest pool is refused.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardkit.errors import ConfigError, DataError
from rewardkit.optimization.diagnostics import FEATURES, sample_features, within_prompt_correlation
from rewardkit.optimization.estimator import bootstrap_prompts, curve_matrix, kl_best_of_n, summarize_curve
from rewardkit.optimization.objectives import objectives
from rewardkit.sampling.pool import PoolSample, group_by_prompt

GOLD_UNSCORED, PROXY_UNSCORED, UNPARSEABLE = "gold_unscored", "proxy_unscored", "unparseable_answer"


@dataclass
class Exclusions:
    """What the study left out, and why."""

    duplicated_samples: int = 0
    samples: Counter = field(default_factory=Counter)  # reason -> samples left out of their prompt's pool
    prompts_too_few_samples: int = 0

    def to_dict(self) -> dict:
        return {"duplicated_samples": self.duplicated_samples,
                "samples": {reason: self.samples.get(reason, 0) for reason in (GOLD_UNSCORED, PROXY_UNSCORED,
                                                                               UNPARSEABLE)},
                "prompts_too_few_samples": self.prompts_too_few_samples}


@dataclass
class StudyInput:
    """A pool's samples with, per sample (same order), each proxy's z-score and the gold (NaN: not scored; None:
    an unparseable answer)."""

    samples: list[PoolSample]
    proxies: dict[str, list[float]]
    gold: list[float | None]
    exclusions: Exclusions


@dataclass
class Prompt:
    proxies: dict[str, np.ndarray]
    gold: np.ndarray
    features: dict[str, np.ndarray]


def usable_prompts(study: StudyInput) -> list[Prompt]:
    """Each prompt's samples that every proxy and the gold scored, as arrays; the others counted."""
    prompts = []
    index = {id(s): i for i, s in enumerate(study.samples)}
    for group in group_by_prompt(study.samples).values():
        kept = []
        for sample in group:
            i = index[id(sample)]
            reason = exclusion_reason(study.gold[i], [column[i] for column in study.proxies.values()])
            if reason:
                study.exclusions.samples[reason] += 1
            else:
                kept.append(i)
        features = [sample_features(study.samples[i].response, study.samples[i].tokens,
                                    study.samples[i].finish_reason) for i in kept]
        prompts.append(Prompt({name: np.array([column[i] for i in kept]) for name, column in study.proxies.items()},
                              np.array([study.gold[i] for i in kept], dtype=float),
                              {name: np.array([f[name] for f in features]) for name in FEATURES}))
    return prompts


def exclusion_reason(gold: float | None, proxies: Sequence[float]) -> str | None:
    if not all(math.isfinite(p) for p in proxies):
        return PROXY_UNSCORED
    if gold is None:
        return UNPARSEABLE
    return None if math.isfinite(gold) else GOLD_UNSCORED


def choose_max_n(prompts: list[Prompt], max_n: int | None, exclusions: Exclusions) -> tuple[list[Prompt], int]:
    """The prompts with at least max_n usable samples, and max_n (default: the fewest any non-empty prompt has)."""
    sizes = [len(p.gold) for p in prompts]
    if not any(sizes):
        raise DataError("no prompt has a sample that every proxy and the gold could score")
    largest = max(sizes)
    if max_n is None:
        max_n = min(size for size in sizes if size)
    if max_n > largest:
        raise ConfigError(f"best-of-{max_n} needs {max_n} usable samples per prompt; the largest pool has {largest}")
    kept = [p for p in prompts if len(p.gold) >= max_n]
    exclusions.prompts_too_few_samples = len(prompts) - len(kept)
    return kept, max_n


def run_study(study: StudyInput, *, std_weights: Sequence[float] = (0.5, 1.0), max_n: int | None = None,
              bootstrap: int = 1000, seed: int = 0) -> dict:
    """metrics.json's content: per objective the gold and proxy curves with CIs, fits and peaks, and the
    diagnostics curves; plus the x-axes, the counts and what was left out."""
    prompts, max_n = choose_max_n(usable_prompts(study), max_n, study.exclusions)
    n = np.arange(1, max_n + 1)
    kl = kl_best_of_n(n)
    result = {"n": n.tolist(), "kl_bon": kl.tolist(), "sqrt_kl_bon": np.sqrt(kl).tolist(),
              "kl_note": "KL_bon = log n - (n - 1)/n: the analytic KL of best-of-n from the sampling policy",
              "prompts": len(prompts), "samples_per_prompt_used": max_n, "bootstrap": bootstrap,
              "excluded": study.exclusions.to_dict(), "objectives": {}}
    per_prompt = [objectives({k: v.tolist() for k, v in p.proxies.items()}, std_weights) for p in prompts]
    for name in per_prompt[0]:  # every curve is resampled with the same prompt draws (the same seed): paired
        scores = [np.array(objective[name], dtype=float) for objective in per_prompt]
        result["objectives"][name] = objective_metrics(scores, prompts, max_n, bootstrap, seed)
    return result


def objective_metrics(scores: list[np.ndarray], prompts: list[Prompt], max_n: int, bootstrap: int,
                      seed: int) -> dict:
    def curve(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        per_prompt = curve_matrix(scores, values, max_n)
        return per_prompt, bootstrap_prompts(per_prompt, bootstrap, seed)

    gold = summarize_curve(*curve([p.gold for p in prompts]))
    proxy = summarize_curve(*curve(scores))
    diagnostics = {name: curve_matrix(scores, [p.features[name] for p in prompts], max_n).mean(axis=0).tolist()
                   for name in FEATURES}
    correlation = within_prompt_correlation(scores, [p.features["length_tokens"] for p in prompts])
    return {"gold": gold, "proxy": proxy, "diagnostics": diagnostics, "proxy_length_correlation": correlation}
