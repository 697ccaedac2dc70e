"""The best-of-n expectation from a pool, its KL, the Gao et al. (2022) fit and bootstrap intervals over prompts.

For one prompt with N samples sorted by proxy reward ascending, best-of-n (n samples drawn without replacement,
the highest proxy kept) picks the i-th sample (1-based) with probability C(i-1, n-1) / C(N, n): all n-subsets are
equally likely and the i-th is the best of those drawn from the first i. So

    E[value of best-of-n] = sum_i C(i-1, n-1) / C(N, n) * value_(i)

exactly, with no resampling (`best_of_n_weights`). The binomials are Python integers (exact) and each weight one
correctly rounded integer division, so N = 64 or 1,000 loses nothing. Ties in the proxy: every order of the tied
samples is equally likely (a random tie-break), so each tied sample gets the mean of the weights of the positions
its tie block spans; this equals enumerating every n-subset and averaging over the tied best ones.

    KL_bon(n) = log n - (n - 1) / n     (the analytic KL of best-of-n from its base policy, Stiennon et al. 2020)

`fit_gold` fits gold(d) - gold(n=1) = d (alpha - beta d) with d = sqrt(KL_bon) by least squares (no intercept: the
curve starts at the base policy); beta > 0 gives a peak at d* = alpha / (2 beta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rewardkit.errors import ConfigError


def best_of_n_weights(total: int, n: int) -> np.ndarray:
    """(total,) P(best-of-n picks each sample), samples sorted by proxy ascending: C(i-1, n-1) / C(total, n)."""
    if not 1 <= n <= total:
        raise ConfigError(f"best-of-{n} needs 1 <= n <= the {total} samples a prompt has")
    subsets = math.comb(total, n)
    return np.array([math.comb(i - 1, n - 1) / subsets for i in range(1, total + 1)])


def tie_averaged(weights: np.ndarray, sorted_proxy: np.ndarray) -> np.ndarray:
    """`weights` with each block of equal proxy values given the block's mean weight (random tie-breaking)."""
    averaged = weights.copy()
    start = 0
    while start < len(sorted_proxy):
        end = start
        while end + 1 < len(sorted_proxy) and sorted_proxy[end + 1] == sorted_proxy[start]:
            end += 1
        averaged[start : end + 1] = weights[start : end + 1].mean()
        start = end + 1
    return averaged


def selection_probabilities(proxy: np.ndarray, n: int) -> np.ndarray:
    """P(best-of-n picks sample j) for each sample of one prompt, in the samples' own order (ties averaged)."""
    order = np.argsort(proxy, kind="stable")
    weights = tie_averaged(best_of_n_weights(len(proxy), n), proxy[order])
    probabilities = np.empty(len(proxy))
    probabilities[order] = weights
    return probabilities


def expected_best_of_n(proxy, values, n: int) -> float:
    """E[values of the sample best-of-n picks by `proxy`], one prompt."""
    return float(selection_probabilities(np.asarray(proxy, dtype=float), n) @ np.asarray(values, dtype=float))


def kl_best_of_n(n) -> np.ndarray:
    """The analytic KL (nats) of best-of-n from the policy it samples: log n - (n - 1) / n."""
    n = np.asarray(n, dtype=float)
    return np.log(n) - (n - 1) / n


def n_for_kl(kl: float, *, upper: float = 1e12) -> float:
    """The real n >= 1 with kl_best_of_n(n) = kl (the KL grows with n); inf beyond `upper`."""
    if kl <= 0:
        return 1.0
    low, high = 1.0, 2.0
    while kl_best_of_n(high) < kl:
        if high > upper:
            return math.inf
        low, high = high, high * 2
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if kl_best_of_n(middle) < kl else (low, middle)
    return (low + high) / 2


def curve_matrix(proxies: list[np.ndarray], values: list[np.ndarray], max_n: int) -> np.ndarray:
    """(prompts, max_n): E[value of best-of-n] for n = 1 .. max_n, per prompt (each has at least max_n samples)."""
    return np.array([[p_n @ v for p_n in (selection_probabilities(p, n) for n in range(1, max_n + 1))]
                     for p, v in zip(proxies, values, strict=True)])


@dataclass(frozen=True)
class Fit:
    """gain(d) = d (alpha - beta d), d = sqrt(KL_bon); `peak_d` is None when beta <= 0 (no peak), 0 when the curve
    only falls (alpha < 0 < beta: more search hurts from n = 1 on)."""

    alpha: float
    beta: float

    @property
    def peak_d(self) -> float | None:
        return max(0.0, self.alpha / (2 * self.beta)) if self.beta > 0 else None

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return d * (self.alpha - self.beta * d)


def fit_gain(d: np.ndarray, gain: np.ndarray) -> Fit:
    """Least-squares alpha, beta of gain = alpha d - beta d^2 (no intercept)."""
    design = np.stack([d, -d * d], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, gain, rcond=None)
    return Fit(float(alpha), float(beta))


def fit_curve(curve: np.ndarray) -> Fit:
    """The fit of one mean curve over n = 1 .. len(curve), as gain over n = 1."""
    d = np.sqrt(kl_best_of_n(np.arange(1, len(curve) + 1)))
    return fit_gain(d, curve - curve[0])


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def bootstrap_prompts(per_prompt: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, max_n) mean curves over prompts drawn with replacement (an empty array when resamples is 0)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, per_prompt.shape[0], size=(resamples, per_prompt.shape[0]))
    return per_prompt[draws].mean(axis=1) if resamples else np.empty((0, per_prompt.shape[1]))


def summarize_curve(per_prompt: np.ndarray, boot: np.ndarray) -> dict:
    """The mean curve, its per-n 95% CIs (of the value and of its gain over n = 1, paired within each resample), the
    fit and its peak (with CIs from the resampled curves)."""
    mean = per_prompt.mean(axis=0)
    fit = fit_curve(mean)
    fits = [fit_curve(curve) for curve in boot]
    d_max = float(np.sqrt(kl_best_of_n(per_prompt.shape[1])))
    peaks = np.array([f.peak_d if f.peak_d is not None else np.nan for f in fits])
    return {
        "mean": mean.tolist(),
        "gain": (mean - mean[0]).tolist(),
        "ci95": [percentile_interval(boot[:, i]) for i in range(boot.shape[1])] if len(boot) else None,
        "gain_ci95": [percentile_interval(boot[:, i] - boot[:, 0]) for i in range(boot.shape[1])] if len(boot)
        else None,
        "fit": {"alpha": fit.alpha, "beta": fit.beta,
                "alpha_ci95": percentile_interval(np.array([f.alpha for f in fits])),
                "beta_ci95": percentile_interval(np.array([f.beta for f in fits]))},
        "peak": describe_peak(fit, d_max, peaks),
    }


def describe_peak(fit: Fit, d_max: float, resampled_peaks: np.ndarray) -> dict:
    """Where the fitted gain peaks (d, KL, n), whether that is inside the measured range, and its bootstrap CI."""
    share = float(np.isfinite(resampled_peaks).mean()) if resampled_peaks.size else None
    peak = {"has_peak": fit.peak_d is not None, "resamples_with_peak": share,
            "d_ci95": percentile_interval(resampled_peaks)}
    if fit.peak_d is None:
        return peak | {"note": "no peak within range: the fitted curve never turns down (beta <= 0)"}
    d = fit.peak_d
    within = d <= d_max
    ci = peak["d_ci95"]
    return peak | {"d": d, "kl": d * d, "n": n_for_kl(d * d), "within_range": within,
                   "n_ci95": None if ci is None else [n_for_kl(ci[0] ** 2), n_for_kl(ci[1] ** 2)],
                   "note": "peak within the measured range" if within else
                   f"no peak within range: the fit peaks at d = {d:.3f}, beyond the largest measured d = {d_max:.3f}"}
