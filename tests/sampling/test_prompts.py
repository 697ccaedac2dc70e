"""Prompt files for sampling: plain prompts, GSM8K questions, preference files."""

from __future__ import annotations

import pytest

from conftest import SHARED_DATA, toy_pairs, write_jsonl
from rewardkit.errors import DataError
from rewardkit.sampling.prompts import load_prompts, prompt_hash


def test_prompts_keep_their_ids_and_extra_fields_and_hash_the_rest(tmp_path):
    chat = [{"role": "user", "content": "hi"}]
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2+3?", "reference": "5"}, {"prompt": chat, "prompt_id": 7},
                                              {"messages": chat, "prompt_id": "m"}])
    loaded = load_prompts(path)
    assert [(p.prompt_id, p.prompt, p.extra) for p in loaded.prompts] == [
        (prompt_hash("2+3?"), "2+3?", {"reference": "5"}), ("7", chat, {}), ("m", chat, {})]
    assert loaded.layout == "prompts" and loaded.repeated == 0


def test_prompt_hash_is_stable_and_tells_prompts_apart():
    assert prompt_hash("a") == "ca978112ca1bbdca"  # sha256("a"), fixed across runs and machines
    assert prompt_hash([{"role": "user", "content": "a"}]) != prompt_hash("a")


def test_repeated_prompts_are_counted_and_sampled_once_and_limit_counts_distinct_ones(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "a"}, {"prompt": "b"}, {"prompt": "c"}])
    loaded = load_prompts(path, limit=2)
    assert [p.prompt for p in loaded.prompts] == ["a", "b"] and loaded.repeated == 1


def test_one_id_for_two_prompts_is_refused_naming_both_lines(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "prompt_id": "x"}, {"prompt": "b", "prompt_id": "x"}])
    with pytest.raises(DataError, match=r"p.jsonl:2: prompt_id 'x' is also .*p.jsonl:1"):
        load_prompts(path)


@pytest.mark.parametrize(("record", "needle"), [
    ({"prompt": 3}, "p.jsonl:1: field 'prompt': expected a string or a list of messages"),
    ({"prompt": "a", "tokens": 3}, "field 'tokens': a pool field"),
    ({"prompt": [{"role": "bot", "content": "x"}]}, "unknown role"),
])
def test_bad_prompt_records_name_line_and_field(tmp_path, record, needle):
    with pytest.raises(DataError, match=needle):
        load_prompts(write_jsonl(tmp_path / "p.jsonl", [record]))


def test_gsm8k_questions_take_the_final_answer_as_reference(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 1,007"}])
    (prompt,) = load_prompts(path).prompts
    assert (prompt.prompt, prompt.extra) == ("How many?", {"reference": "1007"})
    bad = write_jsonl(tmp_path / "b.jsonl", [{"question": "How many?", "answer": "seven"}])
    with pytest.raises(DataError, match="b.jsonl:1: field 'answer': no final '####"):
        load_prompts(bad)


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k-test.jsonl").is_file(), reason="no ../shared/data")
def test_the_real_gsm8k_test_file():
    loaded = load_prompts(SHARED_DATA / "gsm8k-test.jsonl", limit=3)
    assert loaded.layout == "gsm8k" and loaded.prompts[0].extra == {"reference": "18"}
    assert loaded.prompts[0].prompt.startswith("Janet")


def test_preference_files_give_their_prompts_once(tmp_path):
    pairs = toy_pairs(6)
    path = write_jsonl(tmp_path / "pairs.jsonl", [p.to_dict() for p in pairs + pairs[:2]])
    loaded = load_prompts(path)
    assert loaded.layout == "preferences" and loaded.repeated == 2
    assert [p.prompt for p in loaded.prompts] == [p.prompt for p in pairs]
