"""A scripted judge (no model) for the run, cache and quality tests."""

from __future__ import annotations

import re

import pytest

from rewardkit.judge.judges import Failure, Verdict


def shown(chat) -> tuple[str, str]:
    """(response A, response B) as the default template shows them."""
    text = chat[-1]["content"]
    return (re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]", text, re.S).group(1),
            re.search(r"\[Response B\]\n(.*?)\n\nWhich", text, re.S).group(1))


class ScriptedJudge:
    """Prefers the response that says "good" (P = `strength`); `first_bias` adds to the first slot's probability;
    chats whose responses contain "FAIL" fail while `failing`; every chat asked is recorded."""

    def __init__(self, *, strength: float = 0.8, first_bias: float = 0.0, batch_size: int = 4) -> None:
        self.id, self.batch_size = "scripted", batch_size
        self.strength, self.first_bias, self.failing = strength, first_bias, True
        self.asked: list = []

    def compare(self, chats, labels):
        self.asked += chats
        return [self.verdict(chat, labels) for chat in chats]

    def verdict(self, chat, labels):
        first, second = shown(chat)
        if self.failing and "FAIL" in first + second:
            return Failure("HTTP 500: scripted", attempts=3)
        if ("good" in first) == ("good" in second):
            p_first = 0.5
        else:
            p_first = self.strength if "good" in first else 1 - self.strength
        p_first = min(0.99, p_first + self.first_bias)
        probabilities = {"A": p_first, "B": 1 - p_first} | ({"tie": 0.0} if "tie" in labels else {})
        return Verdict(probabilities, "logprobs", 0.9)

    def generate(self, chats, *, max_new_tokens):
        self.asked += chats
        return ["a kind good answer" if chat[-1]["content"].startswith("Rewrite") else "be kinder" for chat in chats]

    def count_tokens(self, chat):
        return sum(len(m["content"].split()) for m in chat)


@pytest.fixture
def scripted_judge() -> ScriptedJudge:
    return ScriptedJudge()
