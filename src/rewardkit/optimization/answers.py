"""Ground truth for math pools: extract a response's final answer and check it against the reference.

Formats, tried in order on the response (and on the reference): GSM8K's `#### 42`, MATH's last `\\boxed{...}`
(nested braces balanced, `rewardkit.data.labels`), GSM8K sample solutions' last `A: 42` line, then, for a plain
reference only, the whole text. Answers compare as numbers when both parse as one (commas, `$`, `%` and a trailing
period dropped; 1e-6 relative tolerance), else as text with whitespace, `\\left`/`\\right`, `\\!` and `$` removed.

A response with none of these markers is *unparseable*: `check_answer` returns None for it, and callers count it
(never scoring it wrong, or right, in silence).
"""

from __future__ import annotations

import math
import re

from rewardkit.data.labels import final_answer, last_boxed

GSM8K_MARK = re.compile(r"####\s*(.+)")
NUMBER_NOISE = re.compile(r"[,$%\s]|\\[$%]|\\!")
LATEX_NOISE = re.compile(r"\s|\\left|\\right|\\!|\$|\\,|\\;|\\text\{\s*\}")


def extract_answer(text: str) -> str | None:
    """The final answer marked in `text`: `#### x`, else the last `\\boxed{x}`, else the last `A: x` line."""
    marked = GSM8K_MARK.findall(text)
    if marked:
        return marked[-1].strip()
    return last_boxed(text) or final_answer(text)


def reference_answer(reference: str) -> str:
    """The answer in a reference: a marked one (a full GSM8K solution ends `#### x`), else the reference itself."""
    return extract_answer(reference) or reference.strip()


def as_number(answer: str) -> float | None:
    text = NUMBER_NOISE.sub("", answer).rstrip(".")
    fraction = re.fullmatch(r"\\d?frac\{(-?\d+)\}\{(-?\d+)\}", text)
    if fraction and int(fraction.group(2)) != 0:
        return int(fraction.group(1)) / int(fraction.group(2))
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def same_answer(answer: str, reference: str) -> bool:
    a, b = as_number(answer), as_number(reference)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return LATEX_NOISE.sub("", answer) == LATEX_NOISE.sub("", reference)


def check_answer(response: str, reference: str) -> bool | None:
    """True / False: the response's final answer matches the reference's; None: the response has no answer."""
    answer = extract_answer(response)
    return None if answer is None else same_answer(answer, reference_answer(reference))
