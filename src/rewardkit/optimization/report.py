"""The overoptimization report: one self-contained `report.html` (figures inlined as PNG data URIs) and
`overopt.png` (gold and proxy against sqrt(KL_bon), every objective on one plot), from metrics.json's content only.

Every number shown sits in a cell tagged `data-metric` / `data-metric-path` (its exact JSON path) and
`data-model` (the objective), as in the evaluation report, whose helpers it reuses.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rewardkit.evaluation.report import FIGURE_DPI, PAGE_STYLE, format_metric, html_table, metric_value, png_data_uri
from rewardkit.io import write_text_atomic
from rewardkit.optimization.diagnostics import FEATURES
from rewardkit.optimization.estimator import Fit, kl_best_of_n

N_TICKS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SUMMARY_ROWS = [
    ("gold, best-of-1", ("gold", "mean", 0)),
    ("gold, best-of-max", ("gold", "mean", -1)),
    ("gold gain, best-of-max over best-of-1", ("gold", "gain", -1)),
    ("gold fit alpha", ("gold", "fit", "alpha")),
    ("gold fit beta", ("gold", "fit", "beta")),
    ("gold fit beta 95% CI", ("gold", "fit", "beta_ci95")),
    ("gold peak d = sqrt(KL)", ("gold", "peak", "d")),
    ("gold peak d 95% CI", ("gold", "peak", "d_ci95")),
    ("gold peak n", ("gold", "peak", "n")),
    ("gold peak n 95% CI", ("gold", "peak", "n_ci95")),
    ("resamples with a gold peak", ("gold", "peak", "resamples_with_peak")),
    ("proxy, best-of-max (gain over n=1)", ("proxy", "gain", -1)),
    ("proxy fit alpha", ("proxy", "fit", "alpha")),
    ("proxy fit beta", ("proxy", "fit", "beta")),
    ("proxy-length correlation (within prompt)", ("proxy_length_correlation",)),
]


def value_at(metrics: dict, path: tuple) -> object:
    """metric_value with list indices (negative ones too)."""
    value = metrics
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and value else None
        else:
            value = metric_value(value, (key,))
    return value


def format_value(value) -> str:
    """`format_metric`, with an interval's missing bound (beyond any n) shown as an em dash."""
    if isinstance(value, list):
        return "[" + ", ".join(format_metric(bound) for bound in value) + "]"
    return format_metric(value)


def metric_cell(objective: str, metrics: dict, path: tuple) -> str:
    exact = ["objectives", objective, *path]
    text = html.escape(format_value(value_at(metrics, path)))
    dotted = html.escape(".".join(map(str, exact)), quote=True)
    return (f'<td data-model="{html.escape(objective, quote=True)}" data-metric="{dotted}"'
            f' data-metric-path="{html.escape(json.dumps(exact), quote=True)}">{text}</td>')


def summary_table(results: dict) -> str:
    objectives = results["objectives"]
    rows = [f"<td>{html.escape(label)}</td>" + "".join(metric_cell(name, m, path) for name, m in objectives.items())
            for label, path in SUMMARY_ROWS]
    return html_table(["", *objectives], rows)


def peak_notes(results: dict) -> str:
    items = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(m['gold']['peak']['note'])}</li>"
                    for name, m in results["objectives"].items())
    return f"<ul>{items}</ul>"


def excluded_table(results: dict) -> str:
    excluded = results["excluded"]
    rows = [("repeated (prompt_id, sample_index) lines (the first kept)", excluded["duplicated_samples"]),
            *((f"samples left out: {reason.replace('_', ' ')}", count)
              for reason, count in excluded["samples"].items()),
            ("prompts left out: fewer usable samples than max n", excluded["prompts_too_few_samples"]),
            ("prompts in the curves", results["prompts"]), ("samples per prompt used (max n)",
                                                          results["samples_per_prompt_used"])]
    return html_table(["", "count"], [f"<td>{html.escape(label)}</td><td>{count}</td>" for label, count in rows])


def add_n_axis(axes, d_max: float) -> None:
    """A top axis marking the n of best-of-n at its sqrt(KL)."""
    top = axes.twiny()
    top.set_xlim(axes.get_xlim())
    ticks = [n for n in N_TICKS if np.sqrt(kl_best_of_n(n)) <= d_max * 1.001]
    top.set_xticks([float(np.sqrt(kl_best_of_n(n))) for n in ticks], [str(n) for n in ticks])
    top.set_xlabel("n (best-of-n)")


def curves_figure(results: dict, which: str) -> Figure:
    figure = Figure(figsize=(7.5, 4.8))
    draw_curves(figure.subplots(), results, which)
    return figure


def overopt_figure(results: dict) -> Figure:
    """Gold and proxy side by side (overopt.png, for a README)."""
    figure = Figure(figsize=(15, 4.8), layout="constrained")
    for axes, which in zip(figure.subplots(1, 2), ("gold", "proxy"), strict=True):
        draw_curves(axes, results, which)
    return figure


def draw_curves(axes, results: dict, which: str) -> None:
    """Gain over n = 1 of `which` (gold or proxy) against sqrt(KL_bon): means, 95% bands, fits, peaks."""
    d = np.array(results["sqrt_kl_bon"])
    smooth = np.linspace(0, d[-1], 200)
    for name, metrics in results["objectives"].items():
        block = metrics[which]
        mean = np.array(block["mean"])
        line, = axes.plot(d, mean - mean[0], marker="o", markersize=3, label=name)
        if block["gain_ci95"]:
            low, high = (np.array([np.nan if ci is None else ci[k] for ci in block["gain_ci95"]]) for k in (0, 1))
            axes.fill_between(d, low, high, color=line.get_color(), alpha=0.15)
        fit = Fit(block["fit"]["alpha"], block["fit"]["beta"])
        axes.plot(smooth, fit(smooth), linestyle="--", color=line.get_color(), linewidth=1)
        peak = block["peak"]
        if peak.get("within_range"):
            axes.axvline(peak["d"], color=line.get_color(), linestyle=":", linewidth=1)
    axes.axhline(0, color="grey", linewidth=0.5)
    axes.set_xlabel("sqrt(KL_bon), KL_bon = log n - (n-1)/n (analytic, nats)")
    axes.set_ylabel(f"{which} reward gain over best-of-1")
    axes.set_title(f"{which} (dashed: fit d(α − βd); bands: 95% CI over prompts)", fontsize="medium")
    axes.legend(fontsize="small")
    add_n_axis(axes, d[-1])


def diagnostics_figure(results: dict) -> Figure:
    """Each diagnostic of the picked response against n, one panel per feature."""
    n = np.array(results["n"])
    figure = Figure(figsize=(4 * len(FEATURES), 3.4))
    for axes, (feature, label) in zip(figure.subplots(1, len(FEATURES)), FEATURES.items(), strict=True):
        for name, metrics in results["objectives"].items():
            axes.plot(n, metrics["diagnostics"][feature], marker="o", markersize=2, label=name)
        axes.set_xscale("log", base=2)
        axes.set_xlabel("n")
        axes.set_title(label, fontsize="small")
    figure.axes[0].legend(fontsize="x-small")
    return figure


def image(figure: Figure, alt: str) -> str:
    return f'<img src="{png_data_uri(figure)}" alt="{html.escape(alt, quote=True)}">'


def render_overopt_html(results: dict) -> str:
    sources = html.escape(json.dumps({"proxies": results["proxies"], "gold": results["gold"]}, indent=1))
    parts = [
        "<h1>Overoptimization: proxy against gold over best-of-n</h1>",
        f"<p>{results['prompts']} prompts, n = 1 .. {results['samples_per_prompt_used']}, {results['bootstrap']} "
        f"bootstrap resamples over prompts. {html.escape(results['kl_note'])}. Expectations are exact over the "
        "pool (sorted by the objective; sample i weighted C(i-1, n-1)/C(N, n)), not resampled.</p>",
        "<h2>Summary</h2>", summary_table(results), peak_notes(results),
        "<h2>Gold reward</h2>", image(curves_figure(results, "gold"), "gold reward against sqrt KL"),
        "<h2>Proxy reward</h2>", image(curves_figure(results, "proxy"), "proxy reward against sqrt KL"),
        "<h2>Hacking diagnostics of the picked response</h2>", image(diagnostics_figure(results), "diagnostics"),
        "<h2>Left out</h2>", excluded_table(results),
        "<h2>Sources</h2>", f"<pre>{sources}</pre>",
    ]
    body = "\n".join(parts)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>rewardkit overopt</title><style>{PAGE_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_overopt_report(out_dir: Path, results: dict) -> None:
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "report.html", render_overopt_html(results))
    overopt_figure(results).savefig(out_dir / "overopt.png", dpi=FIGURE_DPI)
