"""Per-sample features that show reward hacking when their best-of-n expectation moves with n: length, repetition,
refusals, truncation; and the correlation of a proxy with length.

Each feature is a number per sample, so its curve over n is the same unbiased expectation as the rewards'
(`estimator.expected_best_of_n`): the length, distinct bigrams, refusal rate ... of the response best-of-n picks.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

# openings and phrases of a refusal (a heuristic: English, case-insensitive, anywhere in the first 200 characters)
REFUSAL = re.compile(
    r"\b(i can(?:no|')t (?:help|assist|provide|do that|comply)|i(?: am|'m) (?:sorry|unable|not able)|"
    r"i won'?t (?:help|be able)|as an ai\b|i apologi[sz]e|i must decline|cannot (?:help|assist) with)",
    re.IGNORECASE)
REFUSAL_WINDOW = 200
REPEAT_NGRAM = 4  # a repeated n-gram: a word 4-gram that occurs more than once in the response


FEATURES = {
    "length_tokens": "response length (tokens)",
    "distinct_2": "distinct word bigrams / bigrams",
    "repeated_4grams": "share of word 4-grams that repeat",
    "refusal": "refusal rate (phrase heuristic)",
    "no_eos": "truncated (no EOS) rate",
}


def words(text: str) -> list[str]:
    return text.lower().split()


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct word n-grams over all n-grams (1.0 for a response too short to have any)."""
    grams = ngrams(words(text), n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repeated_ngram_share(text: str, n: int = REPEAT_NGRAM) -> float:
    """Share of word n-grams that occur more than once in the text (0.0 when there are none)."""
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(1 for gram in grams if counts[gram] > 1) / len(grams)


def is_refusal(text: str) -> bool:
    return REFUSAL.search(text[:REFUSAL_WINDOW]) is not None


def sample_features(response: str, tokens: int, finish_reason: str) -> dict[str, float]:
    """The FEATURES of one sample."""
    return {"length_tokens": float(tokens), "distinct_2": distinct_n(response, 2),
            "repeated_4grams": repeated_ngram_share(response), "refusal": float(is_refusal(response)),
            "no_eos": float(finish_reason != "stop")}


def within_prompt_correlation(proxies: list[np.ndarray], lengths: list[np.ndarray]) -> float | None:
    """Pearson correlation of proxy and length after subtracting each prompt's means: does the proxy prefer the
    longer of a prompt's responses? None when either side has no spread."""
    x = np.concatenate([p - p.mean() for p in proxies])
    y = np.concatenate([length - length.mean() for length in lengths])
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
