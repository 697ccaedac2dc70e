"""The best-of-n expectation against brute-force enumeration, the KL, the fit and its peak."""

import itertools
import math

import numpy as np
import pytest

from rewardkit.errors import ConfigError
from rewardkit.optimization.estimator import (
    best_of_n_weights,
    bootstrap_prompts,
    expected_best_of_n,
    fit_gain,
    kl_best_of_n,
    n_for_kl,
    summarize_curve,
)


def brute_force(proxy: list[float], gold: list[float], n: int) -> float:
    """Mean over every n-subset of the gold of its best proxy (tied best ones averaged: a random tie-break)."""
    values = []
    for subset in itertools.combinations(range(len(proxy)), n):
        top = max(proxy[i] for i in subset)
        values.append(np.mean([gold[i] for i in subset if proxy[i] == top]))
    return float(np.mean(values))


@pytest.mark.parametrize("seed", range(6))
def test_the_estimator_equals_enumerating_every_subset(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 9))
    proxy = rng.integers(0, 4, size).astype(float).tolist()  # few values: many ties
    if seed % 2:
        proxy = rng.normal(size=size).tolist()
    gold = rng.normal(size=size).tolist()
    for n in range(1, size + 1):
        assert expected_best_of_n(proxy, gold, n) == pytest.approx(brute_force(proxy, gold, n), abs=1e-12)


def test_weights_are_the_exact_binomial_ratios_and_sum_to_one():
    weights = best_of_n_weights(64, 16)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert weights[:15].sum() == 0 and weights[-1] == pytest.approx(16 / 64)
    assert weights[40] == math.comb(40, 15) / math.comb(64, 16)
    assert best_of_n_weights(1000, 1000)[-1] == 1.0  # no overflow: C(1000, 1000) as an exact integer


def test_n_larger_than_the_pool_is_refused():
    with pytest.raises(ConfigError, match="best-of-5"):
        best_of_n_weights(4, 5)


def test_kl_of_best_of_n_and_its_inverse():
    assert kl_best_of_n(1) == 0
    assert kl_best_of_n(64) == pytest.approx(math.log(64) - 63 / 64)
    assert n_for_kl(float(kl_best_of_n(37))) == pytest.approx(37, rel=1e-9)


def test_the_fit_recovers_a_known_curve_and_its_peak():
    n = np.arange(1, 65)
    d = np.sqrt(kl_best_of_n(n))
    fit = fit_gain(d, d * (1.2 - 0.5 * d))
    assert (fit.alpha, fit.beta) == pytest.approx((1.2, 0.5))
    assert fit.peak_d == pytest.approx(1.2)
    assert fit_gain(d, d * (1.0 + 0.1 * d)).peak_d is None  # never turns down


def test_summary_reports_a_peak_inside_the_range_with_a_bootstrap_interval():
    rng = np.random.default_rng(0)
    n = np.arange(1, 33)
    d = np.sqrt(kl_best_of_n(n))
    per_prompt = d * (1.0 - 0.6 * d) + rng.normal(0, 0.05, (50, n.size))
    summary = summarize_curve(per_prompt, bootstrap_prompts(per_prompt, 200, seed=0))
    peak = summary["peak"]
    assert peak["within_range"] and peak["d"] == pytest.approx(1 / 1.2, rel=0.1)
    assert peak["d_ci95"][0] < peak["d"] < peak["d_ci95"][1]
    assert peak["n"] == pytest.approx(n_for_kl(peak["d"] ** 2))
    assert all(low <= mean <= high for mean, (low, high) in zip(summary["mean"], summary["ci95"], strict=True))
