"""The study end to end on small pools: curves equal brute force, what is left out is counted, the CLI and the
report (rendered in headless Chromium)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from browser import CHROMIUM, render_in_chromium
from conftest import assert_refused
from optimization.pools import pool_line, tiny_ensemble, tiny_rm, write_pool
from rewardkit.cli.app import app
from rewardkit.models.ensemble import RewardEnsemble, combine_rewards
from rewardkit.models.reward_model import RewardModel
from rewardkit.optimization.objectives import standardize
from rewardkit.optimization.overopt import AnswerSource, FieldSource, ModelSource, measure_overoptimization

runner = CliRunner()


@pytest.fixture(scope="module")
def llama_rm_dir(llama_dir, tmp_path_factory):
    return tiny_rm(llama_dir, tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def ensemble_dir(llama_dir, tmp_path_factory):
    return tiny_ensemble(llama_dir, tmp_path_factory.mktemp("ensemble"))
PROXY = {"a": [0.1, 0.5, 0.5, 0.9, 0.3], "b": [2.0, 1.0, 3.0, 0.0, 1.5], "c": [0.0, 0.0, 1.0, 2.0, 0.5]}
HOSTILE = "<script>alert('x')</script>"  # a field name, shown in the report: escaped
GOLD = {"a": [1.0, 0.0, 1.0, 0.0, 1.0], "b": [0.0, 1.0, 1.0, 0.0, 0.0], "c": [1.0, 1.0, 0.0, 0.0, 1.0]}


def field_pool(tmp_path, extra_lines=()):
    lines = [pool_line(p, i, f"answer {i} " * (i + 1), proxy=PROXY[p][i], gold=GOLD[p][i], other=-PROXY[p][i] ** 2,
                        **{HOSTILE: PROXY[p][i] % 0.4})
             for p in PROXY for i in range(5)]
    return write_pool(tmp_path / "pool.jsonl", lines + list(extra_lines))


def brute_force_mean(proxy: dict, gold: dict, n: int) -> float:
    """Mean over prompts of the mean over n-subsets of the gold of the best proxy (tied best ones averaged)."""
    per_prompt = []
    for p in proxy:
        values = []
        for subset in itertools.combinations(range(len(proxy[p])), n):
            top = max(proxy[p][i] for i in subset)
            values.append(np.mean([gold[p][i] for i in subset if proxy[p][i] == top]))
        per_prompt.append(np.mean(values))
    return float(np.mean(per_prompt))


def test_gold_and_proxy_curves_equal_brute_force_over_the_pool(tmp_path):
    metrics = measure_overoptimization(field_pool(tmp_path), proxies=[FieldSource("proxy")],
                                       gold=FieldSource("gold"), output_dir=tmp_path / "out", bootstrap=50)
    block = metrics["objectives"]["proxy"]
    for n in range(1, 6):
        assert block["gold"]["mean"][n - 1] == pytest.approx(brute_force_mean(PROXY, GOLD, n))
        assert block["proxy"]["mean"][n - 1] == pytest.approx(brute_force_mean(PROXY, PROXY, n))
    assert metrics["kl_bon"][3] == pytest.approx(math.log(4) - 3 / 4)
    assert metrics["sqrt_kl_bon"][3] == pytest.approx(math.sqrt(math.log(4) - 3 / 4))
    lengths = {p: [2.0 * (i + 1) for i in range(5)] for p in PROXY}  # "answer i " repeated i + 1 times
    assert block["diagnostics"]["length_tokens"][1] == pytest.approx(brute_force_mean(PROXY, lengths, 2))
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["objectives"]["proxy"]["gold"]["fit"] == block["gold"]["fit"]
    assert (tmp_path / "out" / "overopt.png").stat().st_size > 0


def test_two_proxies_give_mean_worst_case_and_a_lambda_sweep_through_the_one_combiner(tmp_path):
    metrics = measure_overoptimization(field_pool(tmp_path), proxies=[FieldSource("proxy"), FieldSource("other")],
                                       gold=FieldSource("gold"), output_dir=tmp_path / "out", std_weights=[0.5, 2],
                                       bootstrap=0)
    assert list(metrics["objectives"]) == ["proxy", "other", "mean", "min", "mean-0.5std", "mean-2std"]
    columns = [standardize([PROXY[p][i] for p in PROXY for i in range(5)]),
               standardize([-PROXY[p][i] ** 2 for p in PROXY for i in range(5)])]
    worst = combine_rewards(columns, "min")[0]
    by_prompt = {p: worst[k * 5:(k + 1) * 5] for k, p in enumerate(PROXY)}
    assert metrics["objectives"]["min"]["gold"]["mean"][1] == pytest.approx(brute_force_mean(by_prompt, GOLD, 2))


def test_what_is_left_out_is_counted_and_shown(tmp_path):
    extra = [pool_line("a", 0, "a repeat of line one", proxy=9.0, gold=0.0),  # duplicated (prompt_id, index)
             pool_line("d", 0, "x", proxy=1.0, gold=None), pool_line("d", 1, "y", proxy=1.0, gold=1.0),
             pool_line("e", 0, "z", proxy=None, gold=1.0)]
    result = runner.invoke(app, ["overopt", "--pool", str(field_pool(tmp_path, extra)), "--proxy-field", "proxy",
                                 "--gold-field", "gold", "--output-dir", str(tmp_path / "out"), "--bootstrap", "20",
                                 "--max-n", "5"])
    assert result.exit_code == 0, result.output
    excluded = json.loads((tmp_path / "out" / "metrics.json").read_text())["excluded"]
    assert excluded == {"duplicated_samples": 1, "samples": {"gold_unscored": 1, "proxy_unscored": 1,
                                                             "unparseable_answer": 0},
                        "prompts_too_few_samples": 2}
    assert "3 prompts, best-of-1 .. best-of-5" in result.stdout
    for shown in ("left out 1 repeated", "left out 1 samples: gold unscored", "left out 1 samples: proxy unscored",
                  "left out 2 prompts with fewer usable samples"):
        assert shown in result.stderr


def test_gold_answers_count_the_unparseable(tmp_path):
    lines = [pool_line("q", i, text, score=float(i), reference="42")
             for i, text in enumerate(["so #### 42", "I think \\boxed{41}", "no idea", "A: 42"])]
    metrics = measure_overoptimization(write_pool(tmp_path / "p.jsonl", lines), proxies=[FieldSource("score")],
                                       gold=AnswerSource(), output_dir=tmp_path / "out", bootstrap=0)
    assert metrics["excluded"]["samples"]["unparseable_answer"] == 1
    # usable: proxies 0, 1, 3 with gold 1, 0, 1; best of 2: {0,1} -> 0, {0,3} -> 1, {1,3} -> 1
    assert metrics["objectives"]["score"]["gold"]["mean"] == pytest.approx([2 / 3, 2 / 3, 1.0])


def test_n_larger_than_the_pool_and_a_missing_gold_are_refused(tmp_path):
    pool = field_pool(tmp_path)
    common = ["overopt", "--pool", str(pool), "--proxy-field", "proxy", "--output-dir", str(tmp_path / "out")]
    assert_refused(runner.invoke(app, [*common, "--gold-field", "gold", "--max-n", "6"]), "best-of-6",
                   "largest pool has 5", not_written=(tmp_path / "out",))
    assert_refused(runner.invoke(app, common), "exactly one gold")
    assert_refused(runner.invoke(app, [*common, "--gold-field", "nope"]), "field 'nope': missing")


def test_models_score_through_the_one_path_and_too_long_samples_are_counted(tmp_path, llama_rm_dir, ensemble_dir):
    lines = [pool_line(p, i, ("good helpful " * (3 if i else 40)).strip()) for p in "xyz" for i in range(4)]
    pool = write_pool(tmp_path / "pool.jsonl", lines)
    metrics = measure_overoptimization(pool, proxies=[ModelSource(llama_rm_dir)], gold=ModelSource(ensemble_dir),
                                       output_dir=tmp_path / "out", bootstrap=10)
    assert metrics["excluded"]["samples"]["proxy_unscored"] == 3  # 80 words do not fit max_length 64
    assert metrics["proxies"]["rm"]["precision"] == "fp32" and metrics["gold"]["precision"] == "fp32"
    rm, ensemble = RewardModel.from_pretrained(llama_rm_dir), RewardEnsemble.from_pretrained(ensemble_dir)
    short = [line for line in lines if line["sample_index"]]
    prompts, responses = [line["prompt"] for line in short], [line["response"] for line in short]
    gold = ensemble.score(prompts, responses).rewards
    per_prompt = [np.mean(gold[k * 3:(k + 1) * 3]) for k in range(3)]
    assert metrics["objectives"]["rm"]["gold"]["mean"][0] == pytest.approx(np.mean(per_prompt), abs=1e-5)
    proxy = [rm.spec.normalize(r) for r in rm.score(prompts, responses)]
    assert metrics["objectives"]["rm"]["proxy"]["mean"][0] == pytest.approx(np.mean(proxy), abs=1e-5)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_report_renders_in_headless_chromium(tmp_path):
    metrics = measure_overoptimization(field_pool(tmp_path), proxies=[FieldSource("proxy"), FieldSource(HOSTILE)],
                                       gold=FieldSource("gold"), output_dir=tmp_path / "out", bootstrap=30,
                                       max_n=5)
    rendered = render_in_chromium(tmp_path / "out" / "report.html", tmp_path)
    assert rendered.probe_done
    assert len(rendered.images) == 3
    assert all(int(i["data-natural-width"]) > 0 and int(i["data-natural-height"]) > 0 for i in rendered.images)
    assert {cell["data-model"] for cell in rendered.metric_cells} == set(metrics["objectives"])
    for cell in rendered.metric_cells:
        assert cell["text"] == expected_text(metrics, json.loads(cell["data-metric-path"])), cell["data-metric"]
    assert HOSTILE not in (tmp_path / "out" / "report.html").read_text()


def expected_text(metrics: dict, path: list) -> str:
    value = metrics
    for key in path:
        value = value[key] if isinstance(value, (dict, list)) and (isinstance(key, int) or key in value) else None
    if isinstance(value, list):
        return "[" + ", ".join("—" if bound is None else f"{bound:.4f}" for bound in value) + "]"
    return "—" if value is None else f"{value:.4f}"
