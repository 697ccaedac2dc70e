"""The local judge on a tiny chat model built in code: label probabilities, batching, limits, generation."""

from __future__ import annotations

import pytest
import torch

from rewardkit.judge.judges import Failure, LocalJudge, Verdict
from rewardkit.judge.principles import load_constitution

CONSTITUTION = load_constitution(None)


def chats(n: int) -> list:
    return [CONSTITUTION.comparison("helpfulness", f"question {i}" + " more" * i, "yes", "no " * (i + 1))
            for i in range(n)]


@pytest.fixture(scope="module")
def local_judge(llama_dir):
    return LocalJudge(str(llama_dir), batch_size=3, max_length=400)


def test_verdicts_are_label_probabilities_read_from_the_next_token(local_judge):
    verdicts = local_judge.compare(chats(2), ("A", "B"))
    for v in verdicts:
        assert isinstance(v, Verdict) and v.source == "logprobs"
        assert set(v.probabilities) == {"A", "B"} and sum(v.probabilities.values()) == pytest.approx(1)
        assert 0 < v.label_mass < 1
    row = local_judge.next_token_probabilities([local_judge.encode(chats(1)[0])])[0]
    a, b = (local_judge.tokenizer.convert_tokens_to_ids(t) for t in ("A", "B"))
    assert verdicts[0].probabilities["A"] == pytest.approx(float(row[a] / (row[a] + row[b])), rel=1e-5)


def test_a_batch_of_different_lengths_gives_what_one_at_a_time_does(local_judge):
    """Left padding with positions counted from each chat's first token changes nothing."""
    together = local_judge.compare(chats(5), ("A", "B"))
    alone = [local_judge.compare([chat], ("A", "B"))[0] for chat in chats(5)]
    for x, y in zip(together, alone, strict=True):
        assert x.probabilities["A"] == pytest.approx(y.probabilities["A"], abs=1e-5)


def test_a_chat_longer_than_max_length_is_a_failure_not_a_verdict(llama_dir):
    judge = LocalJudge(str(llama_dir), max_length=40)
    (result,) = judge.compare(chats(1), ("A", "B"))
    assert isinstance(result, Failure) and "more than max_length 40" in result.error


def test_generation_is_greedy_text(local_judge, llama_dir):
    first, second = local_judge.generate(chats(1) * 2, max_new_tokens=5)
    assert isinstance(first, str) and first == second
    assert local_judge.id == f"hf:{llama_dir}:fp32"
    assert next(local_judge.model.parameters()).dtype == torch.float32
