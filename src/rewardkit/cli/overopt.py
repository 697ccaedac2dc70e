"""`rewardkit overopt`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.bon import StepAggregateOption
from rewardkit.cli.common import PrecisionOption, SeedOption, console, quiet_transformers, user_errors, warn
from rewardkit.errors import ConfigError
from rewardkit.optimization.overopt import AnswerSource, FieldSource, ModelSource, measure_overoptimization


@user_errors
def overopt(
    pool: Annotated[Path, typer.Option(metavar="POOL", help="Pool JSONL from `rewardkit sample`.")],
    output_dir: Annotated[Path, typer.Option(metavar="DIR", help="Writes metrics.json, report.html, overopt.png.")],
    proxy: Annotated[list[Path] | None, typer.Option(
        metavar="DIR", help="Proxy reward model or ensemble (repeatable: objectives over all).")] = None,
    proxy_field: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="A proxy score already in the pool lines (repeatable).")] = None,
    gold: Annotated[Path | None, typer.Option(metavar="DIR", help="Gold reward model or ensemble.")] = None,
    gold_field: Annotated[str | None, typer.Option(
        metavar="NAME", help="The gold score already in the pool lines (e.g. correct).")] = None,
    gold_answers: Annotated[bool, typer.Option(
        "--gold-answers", help="Gold: final answer checked against the line's reference.")] = False,
    reference_field: Annotated[str, typer.Option(
        metavar="NAME", help="With --gold-answers: the field holding the reference.")] = "reference",
    std_weights: Annotated[list[float] | None, typer.Option(
        "--lambda", min=0, metavar="L", help="Objective mean - L * std over the proxies (repeatable).")] = None,
    max_n: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Largest n (default: the fewest usable samples of a prompt).")] = None,
    bootstrap: Annotated[int, typer.Option(
        min=0, metavar="N", help="Bootstrap resamples over prompts for the CIs (0: none).")] = 1000,
    seed: SeedOption = 0,
    step_aggregate: StepAggregateOption = "min",
    precision: PrecisionOption = "auto",
) -> None:
    """Measure overoptimization: proxy vs gold reward over best-of-n.

    For n = 1 .. N, the exact expected proxy and gold reward of best-of-n from the pool, against KL_bon = log n -
    (n-1)/n; fits gold(d) = d(alpha - beta d), d = sqrt(KL), with its peak. Two or more proxies (or an ensemble's
    members) add the mean, worst-case (min) and mean - L * std objectives. Give one gold: --gold, --gold-field or
    --gold-answers.
    """
    golds = [g for g in (gold and ModelSource(gold, step_aggregate), gold_field and FieldSource(gold_field),
                         gold_answers and AnswerSource(reference_field)) if g]
    if len(golds) != 1:
        raise ConfigError("give exactly one gold: --gold DIR, --gold-field NAME or --gold-answers")
    proxies = [ModelSource(p, step_aggregate) for p in proxy or []] + [FieldSource(f) for f in proxy_field or []]
    quiet_transformers()
    metrics = measure_overoptimization(pool, proxies=proxies, gold=golds[0], output_dir=output_dir,
                          std_weights=std_weights or [0.5, 1.0], max_n=max_n, bootstrap=bootstrap, seed=seed,
                                       precision=precision)
    print_summary(metrics)
    console.print(f"report: {output_dir / 'report.html'}  metrics: {output_dir / 'metrics.json'}")


def print_summary(metrics: dict) -> None:
    """One line per objective (gold at n = 1 and at max n, the peak), then what was left out."""
    top = metrics["samples_per_prompt_used"]
    console.print(f"{metrics['prompts']} prompts, best-of-1 .. best-of-{top}")
    for name, block in metrics["objectives"].items():
        gold, peak = block["gold"], block["gold"]["peak"]
        console.print(f"  {name}: gold {gold['mean'][0]:.4f} -> {gold['mean'][-1]:.4f}; {peak['note']}"
                      + (f" (n = {peak['n']:.1f})" if peak.get("within_range") else ""))
    excluded = metrics["excluded"]
    left_out = {"repeated (prompt_id, sample_index) lines": excluded["duplicated_samples"],
                **{f"samples: {reason.replace('_', ' ')}": count for reason, count in excluded["samples"].items()},
                "prompts with fewer usable samples than max n": excluded["prompts_too_few_samples"]}
    for what, count in left_out.items():
        if count:
            warn(f"left out {count} {what}")
