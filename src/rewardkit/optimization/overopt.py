"""`rewardkit overopt`: read a pool, score it with the proxies and the gold (models, the pool's own score fields, or
math answers checked against the reference), run the study and write metrics.json and report.html.

    measure_overoptimization("pool.jsonl", proxies=[ModelSource("runs/proxy/model")],
                             gold=ModelSource("runs/gold/model"), output_dir="runs/overopt")
    measure_overoptimization("pool.jsonl", proxies=[FieldSource("pred_score")], gold=FieldSource("correct"), ...)
    measure_overoptimization("pool.jsonl", proxies=[...], gold=AnswerSource("reference"), ...)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardkit.errors import ConfigError, DataError
from rewardkit.io import check_output_dir, finite_or_none, write_json_atomic
from rewardkit.optimization.answers import check_answer
from rewardkit.optimization.objectives import standardize
from rewardkit.optimization.report import write_overopt_report
from rewardkit.optimization.scoring import score_samples
from rewardkit.optimization.study import Exclusions, StudyInput, run_study
from rewardkit.precision import Precision
from rewardkit.sampling.pool import PoolSample, scan_pool
from rewardkit.scoring.loading import load_scorer


@dataclass(frozen=True)
class ModelSource:
    """A reward model or ensemble directory; a process model's steps are aggregated by `step_aggregate`."""

    directory: Path
    step_aggregate: str = "min"

    @property
    def name(self) -> str:
        return Path(self.directory).name


@dataclass(frozen=True)
class FieldSource:
    """A number already in each pool line (a bool counts as 0/1; a one-element list as its element; null: none)."""

    field: str

    @property
    def name(self) -> str:
        return self.field


@dataclass(frozen=True)
class AnswerSource:
    """Ground truth: the response's final answer checked against the line's `field` (`answers.check_answer`)."""

    field: str = "reference"
    name: str = "answer"


Source = ModelSource | FieldSource


def field_values(samples: Sequence[PoolSample], field: str) -> list[float]:
    """`field` of every sample as a float (NaN where null); a missing or non-numeric one is a DataError."""
    values = []
    for sample in samples:
        if field not in sample.extra:
            raise DataError(f"sample ({sample.prompt_id!r}, {sample.sample_index}): field '{field}': missing")
        value = sample.extra[field]
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None:
            values.append(math.nan)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            values.append(float(value))
        else:
            raise DataError(f"sample ({sample.prompt_id!r}, {sample.sample_index}): field '{field}': expected a "
                            f"finite number, a bool or null, got {value!r}")
    return values


def answer_gold(samples: Sequence[PoolSample], field: str) -> list[float | None]:
    """1.0 / 0.0 where the final answer matches the reference, None where the response has no parseable answer."""
    gold = []
    for sample in samples:
        reference = sample.extra.get(field)
        if not isinstance(reference, (str, int, float)) or isinstance(reference, bool):
            raise DataError(f"sample ({sample.prompt_id!r}, {sample.sample_index}): field '{field}': expected the "
                            f"reference answer (a string or number), got {reference!r}")
        correct = check_answer(sample.response, str(reference))
        gold.append(None if correct is None else float(correct))
    return gold


def proxy_columns(sources: Sequence[Source], samples: Sequence[PoolSample], precision: Precision
                  ) -> tuple[dict[str, list[float]], dict]:
    """name -> per-sample proxy values, and how each was scored. An ensemble adds one column per member; with two or
    more columns, those not already z-scored by a model's normalization are z-scored over the pool."""
    columns, z_scored, described = {}, {}, {}
    for source in sources:
        name = unique_name(source.name, columns)
        if isinstance(source, FieldSource):
            columns[name], z_scored[name] = field_values(samples, source.field), False
            described[name] = {"field": source.field}
            continue
        started = time.perf_counter()
        model = load_scorer(source.directory, precision=precision)
        scores = score_samples(model, samples, step_aggregate=source.step_aggregate)
        seconds = time.perf_counter() - started
        if scores.members:
            for member, values in scores.members.items():
                columns[f"{name}/{member}"], z_scored[f"{name}/{member}"] = values, True
        else:
            spec = model.spec
            normalization = spec.normalization
            columns[name] = [spec.normalize(r) if normalization and math.isfinite(r) else r
                             for r in scores.rewards]
            z_scored[name] = normalization is not None
        described[name] = {"model": str(source.directory), "precision": scores.precision, "seconds": seconds,
                           "members": list(scores.members) or None}
    if len(columns) >= 2:
        columns = {name: values if z_scored[name] else standardize(values) for name, values in columns.items()}
    return columns, described


def unique_name(name: str, taken) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}-{i}", i + 1
    return candidate


def gold_values(gold: Source | AnswerSource, samples: Sequence[PoolSample], precision: Precision
                ) -> tuple[list[float | None], dict]:
    if isinstance(gold, AnswerSource):
        return answer_gold(samples, gold.field), {"answers": gold.field}
    if isinstance(gold, FieldSource):
        return field_values(samples, gold.field), {"field": gold.field}
    started = time.perf_counter()
    scorer = load_scorer(gold.directory, precision=precision)
    scores = score_samples(scorer, samples, step_aggregate=gold.step_aggregate)
    return scores.rewards, {"model": str(gold.directory), "precision": scores.precision,
                            "seconds": time.perf_counter() - started}


def measure_overoptimization(pool: str | Path, *, proxies: Sequence[Source], gold: Source | AnswerSource,
                             output_dir: str | Path, std_weights: Sequence[float] = (0.5, 1.0),
                             max_n: int | None = None, bootstrap: int = 1000, seed: int = 0,
                             precision: Precision = "fp32") -> dict:
    """Run the study and write `output_dir`/metrics.json, report.html and overopt.png; returns the metrics."""
    if not proxies:
        raise ConfigError("give at least one proxy (--proxy DIR or --proxy-field NAME)")
    if any(not (math.isfinite(w) and w >= 0) for w in std_weights):
        raise ConfigError(f"--lambda must be finite numbers >= 0, got {list(std_weights)}")
    if bootstrap < 0:
        raise ConfigError(f"--bootstrap must be at least 0, got {bootstrap}")
    check_output_dir(output_dir)
    scan = scan_pool(pool)
    if not scan.samples:
        raise DataError(f"{pool}: no samples")
    columns, proxy_info = proxy_columns(proxies, scan.samples, precision)
    gold_per_sample, gold_info = gold_values(gold, scan.samples, precision)
    study = StudyInput(scan.samples, columns, gold_per_sample, Exclusions(duplicated_samples=len(scan.duplicates)))
    metrics = {"pool": str(pool), "sampler": scan.samples[0].sampler, "proxies": proxy_info, "gold": gold_info,
               "lambdas": list(std_weights)} | run_study(study, std_weights=std_weights, max_n=max_n,
                                                          bootstrap=bootstrap, seed=seed)
    metrics = finite_or_none(metrics)
    output_dir = Path(output_dir)
    write_json_atomic(output_dir / "metrics.json", metrics)
    write_overopt_report(output_dir, metrics)
    return metrics
