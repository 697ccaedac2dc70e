"""Render evaluation results as one self-contained HTML page, a Markdown file and a console table.

`write_report(out_dir, results)` writes `report.html` (figures inlined as base64 PNG data URIs,
drawn with matplotlib's Agg canvas) and `report.md`. Every number shown from the metrics dict
sits in a cell tagged `data-metric="overall.accuracy"` (dotted path, for people) and
`data-metric-path='["overall", "accuracy"]'` (exact JSON path, for tests), plus `data-model`.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from rich.table import Table

from rewardkit.metrics.preference import reliability_bins

HARDEST_MISTAKES = 10


MAX_TEXT_CHARS = 2000  # longer prompts/responses are cut in the mistakes table


LENGTH_DIFFERENCE_BINS = 8


FIGURE_DPI = 100


MetricPath = tuple[str, ...]


HEADLINE_ROWS: list[tuple[str, MetricPath]] = [
    ("Accuracy", ("overall", "accuracy")),
    ("Coverage (scored / total pairs)", ("overall", "coverage")),
    ("95% CI", ("overall", "ci95")),
    ("Accuracy (ties = ½)", ("overall", "accuracy_half_ties")),
    ("Ties", ("overall", "ties")),
    ("Pairs scored", ("overall", "n")),
    ("Pairs in total", ("overall", "total")),
    ("Length baseline accuracy", ("length_baseline", "accuracy")),
    ("Chosen longer rate", ("length_baseline", "chosen_longer_rate")),
    ("Accuracy, chosen shorter", ("length_controlled", "chosen_shorter_accuracy")),
    ("Accuracy, chosen longer", ("length_controlled", "chosen_longer_accuracy")),
    ("ECE", ("calibration", "ece")),
    ("ECE after temperature", ("calibration", "ece_after_temperature")),
    ("Temperature", ("calibration", "temperature")),
    ("Brier", ("calibration", "brier")),
    ("Mean margin", ("margin", "mean")),
]


# shown even when empty ("—"); any other row only where a result has it (see `shown`)
ALWAYS_SHOWN = {("overall", "accuracy"), ("overall", "ci95"), ("overall", "n")}
SUBSET_COLUMNS: list[tuple[str, str]] = [("accuracy", "acc"), ("coverage", "coverage"), ("ci95", "95% CI"),
                                         ("n", "n"), ("total", "of"), ("ties", "ties")]


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; white-space: pre-wrap; max-width: 28rem; font-family: monospace; font-size: 0.85em; }
img { max-width: 100%; display: block; margin: 1rem 0; }
"""


@dataclass
class ModelResult:
    """One model's evaluation: the `preference_metrics` dict and its per-pair predictions.

    Each prediction has keys id, subset, reward_chosen, reward_rejected, margin, correct (bool:
    chosen reward strictly above rejected), chosen_length, rejected_length (None when unknown),
    truncated (a response's tail was cut to fit), prompt, chosen, rejected. `comparison` maps the name of the
    reference model (the first in the report) to `paired_bootstrap_difference` of this model
    minus that one. `probe_predictions` are the same lines for the bias probes' pairs (`metrics["probes"]`).
    """

    name: str
    metrics: dict
    predictions: list[dict]
    comparison: dict[str, dict] | None = None
    probe_predictions: list[dict] = field(default_factory=list)


def write_report(out_dir: Path, results: list[ModelResult]) -> None:
    """Write `report.html` and `report.md` for one or more models (side by side) into `out_dir`."""
    if not results:
        raise ValueError("write_report needs at least one ModelResult")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.html").write_text(render_html(results), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(results), encoding="utf-8")


def console_table(results: list[ModelResult], title: str = "Preference evaluation") -> Table:
    """The headline numbers, benchmark scores and per-subset accuracy as a rich table, one column per model."""
    table = Table(title=title)
    table.add_column("metric")
    for result in results:
        table.add_column(result.name, justify="right")
    for label, path in console_rows(results):
        table.add_row(label, *(format_metric(metric_value(result.metrics, path)) for result in results))
    return table


def console_rows(results: list[ModelResult]) -> list[tuple[str, MetricPath]]:
    """HEADLINE_ROWS, then the benchmark scores, the window, pairs dropped as too long and truncated, and each
    subset's accuracy and coverage: every row some result has a value for (and the accuracy, CI and n always)."""
    optional = [("RewardBench score", ("rewardbench", "score")), ("RewardBench 2 score", ("rewardbench2", "score")),
                ("Max length", ("max_length",)), ("Dropped (too long)", ("dropped_too_long",)),
                ("Truncated (response tail cut)", ("truncated",))]
    subsets = [(f"{key}: {name}", ("subsets", name, key)) for name in subset_names(results)
               for key in ("accuracy", "coverage")]
    probes = [(f"probe {name}{suffix}", ("probes", name, key)) for name in probe_names(results)
              for suffix, key in ((f" ({probe_expects(results, name)})", "accuracy"), (" 95% CI", "ci95"))]
    return shown(results, HEADLINE_ROWS + probes + optional + subsets)


def probe_names(results: list[ModelResult]) -> list[str]:
    return list(dict.fromkeys(name for result in results for name in result.metrics.get("probes", {})))


def probe_expects(results: list[ModelResult], name: str) -> str:
    """What the probe's chosen reply does ("complies with a benign request")."""
    return next(r.metrics["probes"][name]["expects"] for r in results if name in r.metrics.get("probes", {}))


def shown(results: list[ModelResult], rows: list[tuple[str, MetricPath]]) -> list[tuple[str, MetricPath]]:
    """The rows some result has a value for (accuracy, CI and n always): the console, HTML and Markdown tables
    leave out what no model reports (training's held-out metrics carry no coverage, for one)."""
    return [(label, path) for label, path in rows if path in ALWAYS_SHOWN or any(
        metric_value(result.metrics, path) is not None for result in results)]


def metric_value(metrics: dict, path: MetricPath):
    """The value at `path` in a metrics dict, or None where a level is missing or None."""
    value = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def format_metric(value) -> str:
    """4 decimals for floats, plain ints, `[lo, hi]` for intervals, an em dash for missing."""
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f"{bound:.4f}" for bound in value) + "]"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.4f}"


def subset_names(results: list[ModelResult]) -> list[str]:
    return sorted({name for result in results for name in result.metrics.get("subsets", {})})


def rewardbench_sections(results: list[ModelResult]) -> list[str]:
    blocks = [result.metrics.get("rewardbench", {}).get("sections", {}) for result in results]
    return list(dict.fromkeys(name for sections in blocks for name in sections))  # ordered, unique


def rewardbench2_subsets(results: list[ModelResult]) -> list[str]:
    blocks = [result.metrics.get("rewardbench2", {}).get("subsets", {}) for result in results]
    return list(dict.fromkeys(name for subsets in blocks for name in subsets))


def hardest_mistakes(predictions: list[dict], k: int = HARDEST_MISTAKES) -> list[dict]:
    """The k wrong pairs with the most negative margin (most confidently wrong first)."""
    wrong = [prediction for prediction in predictions if not prediction["correct"]]
    return sorted(wrong, key=lambda prediction: prediction["margin"])[:k]


def _margins_and_correct(result: ModelResult) -> tuple[np.ndarray, np.ndarray]:
    margins = np.array([prediction["margin"] for prediction in result.predictions], dtype=float)
    correct = np.array([bool(prediction["correct"]) for prediction in result.predictions])
    return margins, correct


def _length_differences(result: ModelResult) -> np.ndarray | None:
    """chosen_length - rejected_length per pair, or None if any length is missing."""
    lengths = [(pair.get("chosen_length"), pair.get("rejected_length")) for pair in result.predictions]
    if not lengths or any(chosen is None or rejected is None for chosen, rejected in lengths):
        return None
    return np.array([chosen - rejected for chosen, rejected in lengths], dtype=float)


def png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")  # Agg canvas
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def subset_accuracy_figure(results: list[ModelResult]) -> Figure:
    """Horizontal bars of accuracy per subset (and overall), with 95% CI error bars."""
    groups = ["overall", *subset_names(results)]
    figure = Figure(figsize=(8, 1.5 + 0.35 * len(groups) * max(1, len(results) / 2)))
    axes = figure.subplots()
    bar_height = 0.8 / len(results)
    for index, result in enumerate(results):
        blocks = [result.metrics["overall"], *(result.metrics["subsets"].get(name) for name in groups[1:])]
        accuracy = np.array([block["accuracy"] if block else np.nan for block in blocks])
        error = np.array([_ci_error(block) for block in blocks]).T  # (2, groups)
        positions = np.arange(len(groups)) + index * bar_height
        axes.barh(positions, accuracy, height=bar_height, xerr=error, capsize=3, label=result.name)
    axes.set_yticks(np.arange(len(groups)) + 0.4 - bar_height / 2, groups)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("accuracy (chosen > rejected)")
    axes.legend(loc="lower right")
    return figure


def _ci_error(block: dict | None) -> tuple[float, float]:
    if not block or block["ci95"] is None:
        return (0.0, 0.0)
    low, high = block["ci95"]
    return (max(block["accuracy"] - low, 0.0), max(high - block["accuracy"], 0.0))


def margin_histogram_figure(results: list[ModelResult]) -> Figure:
    """Histogram of margins for right and wrong pairs, one panel per model."""
    figure = Figure(figsize=(4.5 * len(results), 3.5))
    for axes, result in zip(np.atleast_1d(figure.subplots(1, len(results))), results, strict=True):
        margins, correct = _margins_and_correct(result)
        edges = np.histogram_bin_edges(margins, bins=30)
        axes.hist(margins[correct], bins=edges, alpha=0.6, label="right")
        axes.hist(margins[~correct], bins=edges, alpha=0.6, label="wrong")
        axes.set_title(result.name)
        axes.set_xlabel("margin = reward chosen − reward rejected")
        axes.legend()
    return figure


def reliability_figure(results: list[ModelResult]) -> Figure:
    """Reliability diagram: accuracy against confidence in the picked side, equal-mass bins."""
    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    axes.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="grey", label="perfect calibration")
    for result in results:
        bins = reliability_bins(_margins_and_correct(result)[0])
        axes.plot(bins["confidence"], bins["accuracy"], marker="o", label=result.name)
    axes.set_xlabel("confidence sigmoid(|margin|)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    axes.legend()
    return figure


def length_difference_figure(results: list[ModelResult]) -> Figure | None:
    """Accuracy per equal-mass bin of chosen − rejected length; None when no lengths are known."""
    differences = {result.name: _length_differences(result) for result in results}
    known = [values for values in differences.values() if values is not None]
    if not known:
        return None
    edges = np.unique(np.quantile(np.concatenate(known), np.linspace(0, 1, LENGTH_DIFFERENCE_BINS + 1)))
    if edges.size < 2:  # every pair has the same length difference: one bin around it
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for result in results:
        if differences[result.name] is None:
            continue
        bin_index = np.clip(np.searchsorted(edges, differences[result.name], side="right") - 1, 0, len(edges) - 2)
        correct = _margins_and_correct(result)[1]
        centers, accuracy = [], []
        for index in np.unique(bin_index):
            centers.append((edges[index] + edges[index + 1]) / 2)
            accuracy.append(correct[bin_index == index].mean())
        axes.plot(centers, accuracy, marker="o", label=result.name)
    axes.axvline(0, color="grey", linestyle=":")
    axes.set_xlabel("length difference, chosen − rejected (bin centre)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    axes.legend()
    return figure


MetricCell = tuple[ModelResult, MetricPath]


MetricTable = tuple[list[str], list[tuple[str, list[MetricCell]]]]  # header, (row label, cells)


TextTable = tuple[list[str], list[list[str]]]


def headline_table(results: list[ModelResult]) -> MetricTable:
    rows = [(label, [(result, path) for result in results]) for label, path in shown(results, HEADLINE_ROWS)]
    return ["metric", *(result.name for result in results)], rows


def subset_table(results: list[ModelResult]) -> MetricTable:
    names = subset_names(results)
    columns = [(key, title) for key, title in SUBSET_COLUMNS if key in ("accuracy", "ci95", "n") or any(
        metric_value(result.metrics, ("subsets", name, key)) is not None for result in results for name in names)]
    header = ["subset", *(f"{result.name} {title}" for result in results for _, title in columns)]
    rows = [(name, [(result, ("subsets", name, key)) for result in results for key, _ in columns]) for name in names]
    return header, rows


PROBE_COLUMNS: list[tuple[str, str]] = [("accuracy", "acc"), ("ci95", "95% CI"), ("n", "n"), ("total", "of"),
                                        ("length_baseline_accuracy", "longer-reply baseline")]


def probe_table(results: list[ModelResult]) -> MetricTable:
    """Each probe's accuracy, CI, pairs and length baseline, then (when it has several) its parts' accuracy, CI and
    pairs."""
    header = ["probe (the chosen reply ...)", *(f"{r.name} {title}" for r in results for _, title in PROBE_COLUMNS)]
    rows = []
    for name in probe_names(results):
        rows.append((f"{name} ({probe_expects(results, name)})",
                     [(r, ("probes", name, key)) for r in results for key, _ in PROBE_COLUMNS]))
        parts = dict.fromkeys(part for r in results for part in metric_value(r.metrics, ("probes", name, "subsets"))
                              or {})
        rows += [(f"{name} / {part}", [(r, ("probes", name, "subsets", part, key)) for r in results
                                       for key, _ in PROBE_COLUMNS]) for part in parts if len(parts) > 1]
    return header, rows


def rewardbench_table(results: list[ModelResult]) -> MetricTable:
    labelled_paths = [(section, ("rewardbench", "sections", section)) for section in rewardbench_sections(results)]
    labelled_paths.append(("Score", ("rewardbench", "score")))
    rows = [(label, [(result, path) for result in results]) for label, path in labelled_paths]
    return ["RewardBench v1", *(result.name for result in results)], rows


def rewardbench2_table(results: list[ModelResult]) -> MetricTable:
    labelled_paths = [(name, ("rewardbench2", "subsets", name)) for name in rewardbench2_subsets(results)]
    labelled_paths.append(("Score", ("rewardbench2", "score")))
    rows = [(label, [(result, path) for result in results]) for label, path in labelled_paths]
    return ["RewardBench 2", *(result.name for result in results)], rows


def comparison_table(results: list[ModelResult]) -> TextTable:
    rows = [
        [f"{result.name} − {reference}", format_metric(difference["difference"]), format_metric(difference["ci95"])]
        for result in results
        for reference, difference in (result.comparison or {}).items()
    ]
    return ["accuracy difference (paired)", "difference", "95% CI"], rows


MISTAKE_TEXT_KEYS = ("prompt", "chosen", "rejected")


def mistakes_table(result: ModelResult) -> TextTable:
    rows = [
        [
            str(prediction["id"]),
            str(prediction.get("subset") or ""),
            format_metric(float(prediction["margin"])),
            *(_cut(prediction.get(key)) for key in MISTAKE_TEXT_KEYS),
        ]
        for prediction in hardest_mistakes(result.predictions)
    ]
    return ["id", "subset", "margin", *MISTAKE_TEXT_KEYS], rows


def _cut(text) -> str:
    text = "" if text is None else str(text)
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f" … [{len(text) - MAX_TEXT_CHARS} more chars]"


def _html_metric_cell(result: ModelResult, path: MetricPath) -> str:
    text = html.escape(format_metric(metric_value(result.metrics, path)))
    dotted = html.escape(".".join(path), quote=True)
    exact = html.escape(json.dumps(list(path)), quote=True)
    model = html.escape(result.name, quote=True)
    return f'<td data-model="{model}" data-metric="{dotted}" data-metric-path="{exact}">{text}</td>'


def html_table(header: list[str], rows_of_cells: list[str]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(f"<tr>{cells}</tr>" for cells in rows_of_cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_metric_table(table: MetricTable) -> str:
    header, rows = table
    cells = [
        f"<td>{html.escape(label)}</td>" + "".join(_html_metric_cell(result, path) for result, path in metric_cells)
        for label, metric_cells in rows
    ]
    return html_table(header, cells)


def html_text_table(table: TextTable) -> str:
    """Escaped cells; columns named in MISTAKE_TEXT_KEYS keep their line breaks."""
    header, rows = table
    opening = ['<td class="text">' if name in MISTAKE_TEXT_KEYS else "<td>" for name in header]
    cells = ["".join(f"{td}{html.escape(cell)}</td>" for td, cell in zip(opening, row, strict=True)) for row in rows]
    return html_table(header, cells)


def _html_figure(figure: Figure | None, alt: str) -> str:
    if figure is None:
        return f"<p>{html.escape(alt)}: not available (no response lengths).</p>"
    return f'<img src="{png_data_uri(figure)}" alt="{html.escape(alt, quote=True)}">'


def render_html(results: list[ModelResult]) -> str:
    """The whole self-contained report page."""
    names = ", ".join(result.name for result in results)
    parts = [f"<h1>Reward model evaluation: {html.escape(names)}</h1>", "<h2>Headline</h2>"]
    parts.append(html_metric_table(headline_table(results)))
    if probe_names(results):
        parts += ["<h2>Bias probes</h2>", html_metric_table(probe_table(results))]
    if comparison_table(results)[1]:
        parts += ["<h2>Paired comparison</h2>", html_text_table(comparison_table(results))]
    if rewardbench_sections(results):
        parts += ["<h2>RewardBench</h2>", html_metric_table(rewardbench_table(results))]
    if rewardbench2_subsets(results):
        parts += ["<h2>RewardBench 2</h2>", html_metric_table(rewardbench2_table(results))]
    parts += [
        "<h2>Accuracy per subset</h2>",
        html_metric_table(subset_table(results)) if subset_names(results) else "<p>No subsets.</p>",
        _html_figure(subset_accuracy_figure(results), "accuracy per subset with 95% CI"),
        "<h2>Margins of right and wrong pairs</h2>",
        _html_figure(margin_histogram_figure(results), "margin histograms"),
        "<h2>Calibration</h2>",
        _html_figure(reliability_figure(results), "reliability diagram"),
        "<h2>Accuracy against length difference</h2>",
        _html_figure(length_difference_figure(results), "accuracy by length difference"),
        f"<h2>{HARDEST_MISTAKES} hardest mistakes (most negative margin)</h2>",
    ]
    for result in results:
        table = mistakes_table(result)
        parts.append(f"<h3>{html.escape(result.name)}</h3>")
        parts.append(html_text_table(table) if table[1] else "<p>No wrong pairs.</p>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rewardkit report</title><style>{PAGE_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _md_cell(text: str) -> str:
    """Escape HTML (renderers accept it), pipes and newlines so text stays inside its cell."""
    return html.escape(text).replace("|", "&#124;").replace("\n", "<br>")


def md_text_table(table: TextTable) -> str:
    header, rows = table
    lines = ["| " + " | ".join(_md_cell(cell) for cell in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def md_metric_table(table: MetricTable) -> str:
    header, rows = table
    text_rows = [
        [label, *(format_metric(metric_value(result.metrics, path)) for result, path in metric_cells)]
        for label, metric_cells in rows
    ]
    return md_text_table((header, text_rows))


def render_markdown(results: list[ModelResult]) -> str:
    """The report's tables in Markdown (no figures)."""
    parts = ["# Reward model evaluation", "## Headline", md_metric_table(headline_table(results))]
    if probe_names(results):
        parts += ["## Bias probes", md_metric_table(probe_table(results))]
    if comparison_table(results)[1]:
        parts += ["## Paired comparison", md_text_table(comparison_table(results))]
    if rewardbench_sections(results):
        parts += ["## RewardBench", md_metric_table(rewardbench_table(results))]
    if rewardbench2_subsets(results):
        parts += ["## RewardBench 2", md_metric_table(rewardbench2_table(results))]
    if subset_names(results):
        parts += ["## Accuracy per subset", md_metric_table(subset_table(results))]
    parts.append(f"## {HARDEST_MISTAKES} hardest mistakes (most negative margin)")
    for result in results:
        table = mistakes_table(result)
        parts += [f"### {_md_cell(result.name)}", md_text_table(table) if table[1] else "No wrong pairs."]
    return "\n\n".join(parts) + "\n"
