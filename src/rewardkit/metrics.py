"""Evaluation metrics for reward models, over plain Python lists or numpy arrays.

`preference_metrics` is the one entry point used by train-time eval and `rewardkit eval`;
it returns a JSON-able dict (shape documented on the function). The RewardBench helpers
follow the upstream code in allenai/reward-bench, cited where used. Metrics of the other task
families (process rewards, best-of-n, rating heads, uncertainty) are in `rewardkit.label_metrics`.

Every accuracy is strict (chosen reward > rejected reward, as upstream `scripts/run_rm.py`
counts it); ties are reported separately and get half credit only in `accuracy_half_ties`.
"""

from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_ECE_BINS = 10
TEMPERATURE_SEARCH_BOUNDS = (1e-2, 1e2)  # T outside this range means the margins carry no usable scale
GOLDEN_SECTION_ITERATIONS = 80  # shrinks the log-T bracket by 0.618**80, far below float precision

# RewardBench v1 sections, from allenai/reward-bench rewardbench/constants.py SUBSET_MAPPING.
REWARDBENCH_SECTIONS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": (
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "Safety": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    ),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
REWARDBENCH_PRIOR_SETS = ("anthropic_helpful", "anthropic_hhh", "shp", "summarize")
PRIOR_SETS_SECTION = "Prior Sets (0.5 weight)"
# allenai/reward-bench analysis/get_benchmark_results.py, get_average_over_rewardbench:
# `weights = [2, 2, 2, 2, 1]` over (Chat, Chat Hard, Safety, Reasoning, Prior Sets) with a masked
# average, so a missing section drops out. "0.5 weight" means half the weight of one section.
REWARDBENCH_SECTION_WEIGHTS = {"Chat": 2.0, "Chat Hard": 2.0, "Safety": 2.0, "Reasoning": 2.0, PRIOR_SETS_SECTION: 1.0}
REWARDBENCH_SUBSETS = frozenset(name for names in REWARDBENCH_SECTIONS.values() for name in names) | frozenset(
    REWARDBENCH_PRIOR_SETS
)
MATH_SUBSET = "math-prm"
CODE_SUBSETS = tuple(name for name in REWARDBENCH_SECTIONS["Reasoning"] if name.startswith("hep-"))


def preference_metrics(
    rewards_chosen: Sequence[float] | np.ndarray,
    rewards_rejected: Sequence[float] | np.ndarray,
    *,
    subsets: Sequence[str | None] | None = None,
    chosen_lengths: Sequence[int] | np.ndarray | None = None,
    rejected_lengths: Sequence[int] | np.ndarray | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy, ties, CIs, length baselines, calibration and margins for scored preference pairs.

    Returns (all values plain floats/ints/lists/None, so `json.dumps` works)::

        {"overall": {"accuracy", "accuracy_half_ties", "ci95": [lo, hi] | None, "n", "ties"},
         "subsets": {name: same keys},            # pairs whose subset is None count only in overall
         "length_baseline": {"accuracy", "chosen_longer_rate"} | None,   # None without lengths
         "length_controlled": {"chosen_shorter_accuracy", "chosen_longer_accuracy",
                               "n_chosen_shorter", "n_chosen_longer"} | None,
         "calibration": {"ece", "ece_after_temperature", "temperature", "brier"},
         "margin": {"mean", "median", "p10", "p90"},
         "rewardbench": {"sections": {name: score}, "score"}}  # only with RewardBench v1 subsets

    `ci95` is a percentile bootstrap of strict accuracy (`bootstrap` resamples, numpy Generator
    seeded with `seed`); `bootstrap=0` gives None. Calibration treats sigmoid(margin) as
    P(chosen preferred): `ece` is the standard top-label ECE, confidence sigmoid(|margin|) in the
    side the model picks against whether that side is the chosen one, over 10 equal-mass bins
    (`reliability_bins`); `brier` is the mean of (1 - sigmoid(margin))^2; `temperature` is the
    T minimising the NLL of sigmoid(margin / T) (`fit_temperature`).
    """
    margins = _margins(rewards_chosen, rewards_rejected)
    rng = np.random.default_rng(seed)
    metrics = {
        "overall": accuracy_summary(margins, bootstrap=bootstrap, rng=rng),
        "subsets": _subset_summaries(margins, subsets, bootstrap=bootstrap, rng=rng),
        "length_baseline": None,
        "length_controlled": None,
        "calibration": calibration_summary(margins),
        "margin": _margin_summary(margins),
    }
    if chosen_lengths is not None and rejected_lengths is not None:
        chosen_lengths = np.asarray(chosen_lengths, dtype=float)
        rejected_lengths = np.asarray(rejected_lengths, dtype=float)
        if chosen_lengths.shape != margins.shape or rejected_lengths.shape != margins.shape:
            shapes = f"{chosen_lengths.shape} and {rejected_lengths.shape}"
            raise ValueError(f"lengths of shape {shapes} for {margins.size} pairs")
        length_difference = chosen_lengths - rejected_lengths  # (n,)
        metrics["length_baseline"] = _length_baseline(length_difference)
        metrics["length_controlled"] = _length_controlled(margins, length_difference)
    rewardbench_names = [name for name in metrics["subsets"] if name in REWARDBENCH_SUBSETS]
    if rewardbench_names:
        metrics["rewardbench"] = rewardbench_scores(
            {name: metrics["subsets"][name]["accuracy"] for name in rewardbench_names},
            {name: metrics["subsets"][name]["n"] for name in rewardbench_names},
        )
    return metrics


def _margins(rewards_chosen, rewards_rejected) -> np.ndarray:
    chosen = np.asarray(rewards_chosen, dtype=float)
    rejected = np.asarray(rewards_rejected, dtype=float)
    if chosen.ndim != 1 or chosen.shape != rejected.shape:
        raise ValueError(f"rewards must be two 1-D arrays of equal length, got {chosen.shape} and {rejected.shape}")
    if chosen.size == 0:
        raise ValueError("no preference pairs to evaluate")
    return chosen - rejected  # (n,)


def pair_credit(margins: np.ndarray) -> np.ndarray:
    """Per-pair credit: 1 if chosen scored higher, 0 if lower, 0.5 for an exact tie."""
    return np.where(margins > 0, 1.0, np.where(margins < 0, 0.0, 0.5))


def accuracy_summary(margins: np.ndarray, *, bootstrap: int, rng: np.random.Generator) -> dict:
    """`{"accuracy", "accuracy_half_ties", "ci95", "n", "ties"}` for one group of pairs."""
    correct = (margins > 0).astype(float)
    return {
        "accuracy": float(correct.mean()),
        "accuracy_half_ties": float(pair_credit(margins).mean()),
        "ci95": bootstrap_mean_ci(correct, bootstrap=bootstrap, rng=rng),
        "n": int(margins.size),
        "ties": int(np.count_nonzero(margins == 0)),
    }


def bootstrap_mean_ci(values: np.ndarray, *, bootstrap: int, rng: np.random.Generator) -> list[float] | None:
    """95% percentile-bootstrap interval of `values.mean()`; None when `bootstrap` is 0.

    Resampling n items with replacement only changes how often each distinct value is drawn,
    and those counts are Multinomial(n, value frequencies). Drawing the counts directly is the
    same bootstrap distribution at O(bootstrap x distinct values) cost, which matters for
    large n; the inputs here (0/1 or tie-split credit, paired differences) have few distinct values.
    """
    if bootstrap <= 0:
        return None
    distinct_values, counts = np.unique(values, return_counts=True)
    draws = rng.multinomial(values.size, counts / values.size, size=bootstrap)  # (bootstrap, distinct)
    resampled_means = draws @ distinct_values / values.size  # (bootstrap,)
    low, high = np.percentile(resampled_means, [2.5, 97.5])
    return [float(low), float(high)]


def _subset_summaries(margins, subsets, *, bootstrap, rng) -> dict[str, dict]:
    if subsets is None:
        return {}
    if len(subsets) != margins.size:
        raise ValueError(f"{len(subsets)} subset labels for {margins.size} pairs")
    labels = np.array(subsets, dtype=object)
    names = sorted({name for name in subsets if name is not None})
    return {name: accuracy_summary(margins[labels == name], bootstrap=bootstrap, rng=rng) for name in names}


def _length_baseline(length_difference: np.ndarray) -> dict:
    """Accuracy of always picking the longer response; equal lengths get half credit."""
    return {
        "accuracy": float(pair_credit(length_difference).mean()),
        "chosen_longer_rate": float(np.mean(length_difference > 0)),
    }


def _length_controlled(margins: np.ndarray, length_difference: np.ndarray) -> dict:
    """Strict accuracy split by whether the chosen response is shorter or longer."""
    chosen_shorter = length_difference < 0
    chosen_longer = length_difference > 0
    return {
        "chosen_shorter_accuracy": mean_or_none(margins[chosen_shorter] > 0),
        "chosen_longer_accuracy": mean_or_none(margins[chosen_longer] > 0),
        "n_chosen_shorter": int(chosen_shorter.sum()),
        "n_chosen_longer": int(chosen_longer.sum()),
    }


def mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if values.size else None


def _margin_summary(margins: np.ndarray) -> dict:
    p10, median, p90 = np.percentile(margins, [10, 50, 90])
    return {"mean": float(margins.mean()), "median": float(median), "p10": float(p10), "p90": float(p90)}


# --- calibration -------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def reliability_bins(margins: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> dict[str, np.ndarray]:
    """Equal-mass reliability bins of the model's confidence in the side it picks.

    Bradley-Terry reads P(chosen preferred) = sigmoid(margin). Following the standard
    top-label ECE (Guo et al., 2017), the model "predicts" the side with the higher reward, with
    confidence max(p, 1 - p) = sigmoid(|margin|), and is right when that side is the chosen
    one (a tie has confidence 0.5 and half credit). Pairs are sorted by confidence and split
    into `n_bins` groups of (nearly) equal size. Returns `confidence`, `accuracy` (bin means)
    and `count`, each of shape (bins,); fewer bins when there are fewer pairs.
    """
    confidence = sigmoid(np.abs(margins))
    credit = pair_credit(margins)
    order = np.argsort(confidence, kind="stable")
    groups = [group for group in np.array_split(order, n_bins) if group.size]
    return {
        "confidence": np.array([confidence[group].mean() for group in groups]),
        "accuracy": np.array([credit[group].mean() for group in groups]),
        "count": np.array([group.size for group in groups]),
    }


def expected_calibration_error(margins: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """ECE = sum over bins of (bin share) * |bin accuracy - bin confidence|; see `reliability_bins`."""
    bins = reliability_bins(margins, n_bins)
    weights = bins["count"] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"] - bins["confidence"])))


def brier_score(margins: np.ndarray) -> float:
    """Mean squared error of sigmoid(margin) against the label "chosen is preferred" (always 1)."""
    return float(np.mean((1.0 - sigmoid(margins)) ** 2))


def _preference_nll(margins: np.ndarray, temperature: float) -> float:
    """Mean of -log sigmoid(margin / T), the Bradley-Terry loss at temperature T."""
    return float(np.mean(np.logaddexp(0.0, -margins / temperature)))


def fit_temperature(margins: np.ndarray) -> float:
    """Temperature T > 0 minimising the NLL of sigmoid(margin / T), by golden-section on log T.

    The NLL is convex in 1/T, hence unimodal in log T, so golden-section search finds the
    minimum inside `TEMPERATURE_SEARCH_BOUNDS`; if every pair is right (or every pair wrong)
    the optimum lies at a bound. All-zero margins carry no scale and return 1.0.
    """
    if not np.any(margins):
        return 1.0
    inverse_golden_ratio = (np.sqrt(5.0) - 1.0) / 2.0
    low, high = np.log(TEMPERATURE_SEARCH_BOUNDS)
    for _ in range(GOLDEN_SECTION_ITERATIONS):
        left = high - inverse_golden_ratio * (high - low)
        right = low + inverse_golden_ratio * (high - low)
        if _preference_nll(margins, np.exp(left)) <= _preference_nll(margins, np.exp(right)):
            high = right
        else:
            low = left
    return float(np.exp((low + high) / 2.0))


def calibration_summary(margins: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> dict:
    """`{"ece", "ece_after_temperature", "temperature", "brier"}` for sigmoid(margin)."""
    temperature = fit_temperature(margins)
    return {
        "ece": expected_calibration_error(margins, n_bins),
        "ece_after_temperature": expected_calibration_error(margins / temperature, n_bins),
        "temperature": temperature,
        "brier": brier_score(margins),
    }


# --- model comparison --------------------------------------------------------------------


def paired_bootstrap_difference(
    correct_a: Sequence[float] | np.ndarray,
    correct_b: Sequence[float] | np.ndarray,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy of model B minus model A on the same pairs, with a paired 95% bootstrap CI.

    `correct_a[i]` and `correct_b[i]` are the two models' credit (0, 0.5 or 1) on pair i;
    resampling whole pairs keeps the pairing. Returns `{"difference", "ci95"}`.
    """
    a, b = paired_arrays(correct_a, correct_b)
    per_pair_difference = b - a
    rng = np.random.default_rng(seed)
    return {
        "difference": float(per_pair_difference.mean()),
        "ci95": bootstrap_mean_ci(per_pair_difference, bootstrap=bootstrap, rng=rng),
    }


def paired_arrays(a, b, dtype=float) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length, non-empty 1-D arrays, or a ValueError."""
    a, b = np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal-length, non-empty 1-D arrays, got {a.shape} and {b.shape}")
    return a, b


# --- RewardBench v1 ----------------------------------------------------------------------


def rewardbench_scores(per_subset_accuracy: Mapping[str, float], per_subset_n: Mapping[str, int]) -> dict:
    """RewardBench v1 section scores and final score, as fractions in [0, 1] (upstream shows x100).

    Each section is the prompt-count-weighted mean of its present subsets (upstream
    `calculate_scores_per_section` in rewardbench/utils.py, weights from EXAMPLE_COUNTS in
    rewardbench/constants.py). In Reasoning, math-prm is weighted as heavily as all hep-* code
    subsets together (upstream: `"math-prm": 984,  # actual length 447, upweighting to be equal
    to code`, 984 = 6 x 164), i.e. (acc_math * n_code + sum acc_code * n_code_i) / (2 * n_code).
    "Prior Sets (0.5 weight)" is the unweighted mean of the present prior subsets (upstream
    `np.nanmean` over anthropic_helpful, anthropic_hhh, shp, summarize). The final score weighs
    sections 2, 2, 2, 2, 1 (`REWARDBENCH_SECTION_WEIGHTS`); absent sections are left out.

    Returns `{"sections": {name: score}, "score": float | None}`.
    """
    weights = _rewardbench_subset_weights(per_subset_n)
    sections = {}
    for section, names in REWARDBENCH_SECTIONS.items():
        present = [name for name in names if name in per_subset_accuracy]
        if present:
            section_weights = np.array([weights[name] for name in present], dtype=float)
            section_accuracy = np.array([per_subset_accuracy[name] for name in present], dtype=float)
            sections[section] = float(np.average(section_accuracy, weights=section_weights))
    prior_sets = [per_subset_accuracy[name] for name in REWARDBENCH_PRIOR_SETS if name in per_subset_accuracy]
    if prior_sets:
        sections[PRIOR_SETS_SECTION] = float(np.mean(prior_sets))
    score = None
    if sections:
        section_weights = np.array([REWARDBENCH_SECTION_WEIGHTS[name] for name in sections])
        score = float(np.average(list(sections.values()), weights=section_weights))
    return {"sections": sections, "score": score}


def _rewardbench_subset_weights(per_subset_n: Mapping[str, int]) -> dict[str, float]:
    """Prompt counts as weights, with math-prm raised to the total of the present code subsets."""
    weights = {name: float(n) for name, n in per_subset_n.items()}
    code_total = sum(weights.get(name, 0.0) for name in CODE_SUBSETS)
    if MATH_SUBSET in weights and code_total > 0:
        weights[MATH_SUBSET] = code_total
    return weights


# --- RewardBench 2 -----------------------------------------------------------------------


def rewardbench2_accuracy(chosen_score: float, rejected_scores: Sequence[float]) -> float:
    """Best-of-n credit: 1 if chosen beats every rejected score, 1/k if it ties k-way at the top.

    k counts the chosen completion. Upstream: `reroll_and_score_dataset` in
    rewardbench/utils.py, `(1 / np.sum(scores == max_val)) if scores[0] == max_val else 0`.
    """
    scores = np.array([chosen_score, *rejected_scores], dtype=float)
    top = scores.max()
    return float(1.0 / np.count_nonzero(scores == top)) if scores[0] == top else 0.0


TiesPrompt = tuple[Sequence[float], Sequence[float]]  # (scores of correct answers, scores of incorrect ones)


def rewardbench2_ties_score(ref: Mapping[str, TiesPrompt], tied: Mapping[str, TiesPrompt]) -> dict:
    """Score of RewardBench 2's Ties subset, following upstream `process_single_model`.

    Each prompt id has a "ref" version (one correct answer) and a "tied" version (two or more
    equally correct answers), each given as (correct scores, incorrect scores). Per prompt: `accurate`
    when the worst correct answer beats the best incorrect one; `correct_incorrect_margin` =
    worst correct - best incorrect; `different_correct_margin` = best correct - worst correct
    (tied prompts only). Over prompt ids present in both:

        score = 0.30 * tied accuracy + 0.30 * ref accuracy
              + 0.20 * mean(tied margin > spread among correct answers)          # preferred
              + 0.20 * mean(min(ref margin, tied margin) > spread)               # preferred_hard
              + 0.01 * mean(tanh(min(ref margin, tied margin) / spread - 1))     # tie-breaker

    with 0/0 in the tie-breaker counted as 0 (upstream `np.nan_to_num`). Upstream:
    allenai/reward-bench rewardbench/utils.py `_compute_prompt_stats`, `process_single_model`.
    Returns the score and its components.
    """
    ref_stats = {pid: _ties_prompt_stats(*scores) for pid, scores in ref.items()}
    tied_stats = {pid: _ties_prompt_stats(*scores) for pid, scores in tied.items()}
    shared = sorted(set(ref_stats) & set(tied_stats))
    if not shared:
        raise ValueError("the Ties score needs prompt ids present in both ref and tied")
    spread = np.array([tied_stats[pid]["spread"] for pid in shared])
    tied_margin = np.array([tied_stats[pid]["margin"] for pid in shared])
    hard_margin = np.minimum(np.array([ref_stats[pid]["margin"] for pid in shared]), tied_margin)
    with np.errstate(divide="ignore", invalid="ignore"):
        tie_breaker = np.nan_to_num(np.tanh(hard_margin / spread - 1.0), nan=0.0)
    components = {
        "ref_accuracy": float(np.mean([stats["accurate"] for stats in ref_stats.values()])),
        "tied_accuracy": float(np.mean([stats["accurate"] for stats in tied_stats.values()])),
        "correctness_preferred": float(np.mean(tied_margin > spread)),
        "correctness_preferred_hard": float(np.mean(hard_margin > spread)),
        "correctness_margin_score": float(np.mean(tie_breaker)),
    }
    score = (
        0.30 * components["tied_accuracy"]
        + 0.30 * components["ref_accuracy"]
        + 0.20 * components["correctness_preferred"]
        + 0.20 * components["correctness_preferred_hard"]
        + 0.01 * components["correctness_margin_score"]
    )
    return {"score": float(score), **components}


def _ties_prompt_stats(correct_scores: Sequence[float], incorrect_scores: Sequence[float]) -> dict:
    if len(correct_scores) == 0 or len(incorrect_scores) == 0:
        raise ValueError("every Ties prompt needs at least one correct and one incorrect score")
    margin = min(correct_scores) - max(incorrect_scores)
    return {"accurate": margin > 0, "margin": margin, "spread": max(correct_scores) - min(correct_scores)}
