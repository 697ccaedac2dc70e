"""Report files from synthetic results; a headless Chromium run checks the rendered page."""

import json

import numpy as np
import pytest
from rich.console import Console

from browser import CHROMIUM, render_in_chromium
from rewardkit.evaluation.report import ModelResult, console_table, hardest_mistakes, write_report
from rewardkit.metrics.preference import paired_bootstrap_difference, preference_metrics

HOSTILE_PROMPT = "Q <script>alert('x')</script> & a | b"  # must be escaped in HTML and Markdown


def synthetic_result(name: str, seed: int, n: int = 120, with_lengths: bool = True) -> ModelResult:
    """Random rewards (chosen shifted up), three subsets, two exact ties, lengths and texts."""
    rng = np.random.default_rng(seed)
    rewards_chosen = rng.normal(0.6, 1.0, n)
    rewards_rejected = rng.normal(0.0, 1.0, n)
    rewards_rejected[:2] = rewards_chosen[:2]  # ties
    subsets = [str(name) for name in rng.choice(["chat", "safety", "code"], n)]
    chosen_lengths = rng.integers(5, 400, n) if with_lengths else None
    rejected_lengths = rng.integers(5, 400, n) if with_lengths else None
    metrics = preference_metrics(
        rewards_chosen,
        rewards_rejected,
        subsets=subsets,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
        bootstrap=200,
    )
    predictions = [
        {
            "id": f"pair-{i}",
            "subset": subsets[i],
            "reward_chosen": float(rewards_chosen[i]),
            "reward_rejected": float(rewards_rejected[i]),
            "margin": float(rewards_chosen[i] - rewards_rejected[i]),
            "correct": bool(rewards_chosen[i] > rewards_rejected[i]),
            "chosen_length": int(chosen_lengths[i]) if with_lengths else None,
            "rejected_length": int(rejected_lengths[i]) if with_lengths else None,
            "prompt": f"{HOSTILE_PROMPT} #{i}",
            "chosen": f"chosen answer {i}\nsecond line",
            "rejected": f"rejected answer {i} <b>bold?</b>",
        }
        for i in range(n)
    ]
    return ModelResult(name=name, metrics=metrics, predictions=predictions)


def with_comparison(result: ModelResult, reference: ModelResult) -> ModelResult:
    def credit(model):
        return [1.0 if p["margin"] > 0 else 0.5 if p["margin"] == 0 else 0.0 for p in model.predictions]

    result.comparison = {reference.name: paired_bootstrap_difference(credit(reference), credit(result), bootstrap=200)}
    return result


def four_decimals(value: float) -> str:
    return f"{value:.4f}"


def test_write_report_writes_both_files_with_the_headline_numbers(tmp_path):
    result = synthetic_result("model-a", seed=0)
    write_report(tmp_path, [result])
    markdown = (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").stat().st_size > 0
    overall, calibration = result.metrics["overall"], result.metrics["calibration"]
    low, high = overall["ci95"]
    for expected in (
        four_decimals(overall["accuracy"]),
        f"[{four_decimals(low)}, {four_decimals(high)}]",
        f"| Ties | {overall['ties']} |",
        f"| Pairs scored | {overall['n']} |",
        four_decimals(result.metrics["length_baseline"]["accuracy"]),
        four_decimals(calibration["ece"]),
        four_decimals(calibration["brier"]),
        *(four_decimals(block["accuracy"]) for block in result.metrics["subsets"].values()),
    ):
        assert expected in markdown


def test_texts_are_escaped_in_html_and_markdown(tmp_path):
    write_report(tmp_path, [synthetic_result("model-a", seed=0)])
    for page in ("report.html", "report.md"):
        text = (tmp_path / page).read_text()
        assert "<script>alert" not in text and "<b>bold?</b>" not in text
        assert "&lt;script&gt;alert" in text
    assert "a &#124; b" in (tmp_path / "report.md").read_text()  # a raw pipe would split the cell


def test_hardest_mistakes_are_the_most_negative_wrong_margins():
    predictions = synthetic_result("model-a", seed=0).predictions
    mistakes = hardest_mistakes(predictions)
    wrong_margins = sorted(p["margin"] for p in predictions if not p["correct"])
    assert [p["margin"] for p in mistakes] == wrong_margins[:10]


def test_several_models_are_shown_side_by_side_with_their_comparison(tmp_path):
    first = synthetic_result("model-a", seed=0)
    second = with_comparison(synthetic_result("model-b", seed=1), first)
    write_report(tmp_path, [first, second])
    page = (tmp_path / "report.html").read_text()
    assert 'data-model="model-a"' in page and 'data-model="model-b"' in page
    markdown = (tmp_path / "report.md").read_text()
    assert "| metric | model-a | model-b |" in markdown
    assert f"model-b − model-a | {four_decimals(second.comparison['model-a']['difference'])}" in markdown


def test_report_without_lengths_says_so(tmp_path):
    write_report(tmp_path, [synthetic_result("model-a", seed=0, with_lengths=False)])
    assert "not available (no response lengths)" in (tmp_path / "report.html").read_text()


def test_console_table_shows_headline_numbers():
    results = [synthetic_result("model-a", seed=0), synthetic_result("model-b", seed=1)]
    console = Console(record=True, width=200)
    console.print(console_table(results))
    text = console.export_text()
    assert "model-b" in text
    assert four_decimals(results[1].metrics["overall"]["accuracy"]) in text


# --- headless Chromium -------------------------------------------------------------------

# Injected into a copy of the report: after load, record each image's decoded size in the DOM
# so that `--dump-dom` (which serialises the live DOM) carries it out.
def expected_text(metrics: dict, path: list[str]) -> str:
    value = metrics
    for key in path:
        value = value[key] if isinstance(value, dict) else None
    if value is None:
        return "—"
    if isinstance(value, list):
        return "[" + ", ".join(four_decimals(bound) for bound in value) + "]"
    return str(value) if isinstance(value, int) else four_decimals(value)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    first = synthetic_result("model-a", seed=0)
    second = with_comparison(synthetic_result("model-b", seed=1), first)
    results = {result.name: result for result in (first, second)}
    write_report(tmp_path, list(results.values()))
    rendered = render_in_chromium(tmp_path / "report.html", tmp_path)

    assert rendered.probe_done, "the probe script did not run; the dump came before the load event"
    assert len(rendered.images) == 4  # subsets, margins, reliability, length difference
    for image in rendered.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert int(image["data-natural-width"]) > 0 and int(image["data-natural-height"]) > 0, image["alt"]

    shown = {(cell["data-model"], cell["data-metric"]): cell for cell in rendered.metric_cells}
    for name in results:
        assert (name, "overall.accuracy") in shown and (name, "calibration.brier") in shown
    for cell in rendered.metric_cells:
        metrics = results[cell["data-model"]].metrics
        assert cell["text"] == expected_text(metrics, json.loads(cell["data-metric-path"])), cell["data-metric"]

