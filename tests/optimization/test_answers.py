"""Final answers: GSM8K `####`, MATH `\\boxed{}`, `A:` lines, numbers compared as numbers, none found is None."""

import pytest

from rewardkit.optimization.answers import check_answer


@pytest.mark.parametrize(("response", "reference", "expected"), [
    ("so the total is\n#### 1,200", "1200", True),
    ("the answer is $\\boxed{\\frac{1}{2}}$", "0.5", True),
    ("\\boxed{x^2 + 1} and later \\boxed{\\left( 3, 4 \\right)}", "(3,4)", True),
    ("Janet makes 9 * 2 = 18\nA: 18", "Janet sells 9 eggs.\n#### 18", True),
    ("#### 17", "18", False),
    ("I am not sure.", "18", None),
])
def test_check_answer(response, reference, expected):
    assert check_answer(response, reference) is expected
