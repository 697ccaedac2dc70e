"""The pool format: round trip, bad lines, duplicates, torn tails and resume."""

from __future__ import annotations

import json

import pytest

from rewardkit.errors import ConfigError, DataError
from rewardkit.sampling.pool import PoolSample, PoolWriter, cut_torn_tail, group_by_prompt, read_pool, scan_pool

SAMPLER = {"kind": "local", "model": "tiny", "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 0}


def sample(prompt_id: str, index: int, sampler: dict = SAMPLER, **extra) -> PoolSample:
    return PoolSample(prompt_id=prompt_id, prompt=f"prompt {prompt_id}", sample_index=index,
                      response=f"response {index}", tokens=index + 1, finish_reason="stop" if index else "length",
                      sampler=sampler, extra=extra)


def write_pool(path, groups) -> None:
    with PoolWriter(path, SAMPLER) as pool:
        for group in groups:
            pool.write_group(group)


def test_round_trip_keeps_every_field_and_extras(tmp_path):
    path = tmp_path / "pool.jsonl"
    groups = [[sample("a", 0, reference="5"), sample("a", 1, reference="5")], [sample("b", 0)]]
    write_pool(path, groups)
    assert read_pool(path) == [s for group in groups for s in group]
    line = json.loads(path.read_text().splitlines()[0])
    assert line == {"prompt_id": "a", "prompt": "prompt a", "sample_index": 0, "response": "response 0", "tokens": 1,
                    "finish_reason": "length", "sampler": SAMPLER, "reference": "5"}


def test_chat_prompts_round_trip(tmp_path):
    path = tmp_path / "pool.jsonl"
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    chat = PoolSample("c", messages, 0, "hello", 2, "stop", SAMPLER)
    write_pool(path, [[chat]])
    assert read_pool(path) == [chat]


def test_group_by_prompt_orders_by_index():
    groups = group_by_prompt([sample("b", 1), sample("a", 0), sample("b", 0)])
    assert list(groups) == ["b", "a"]
    assert [s.sample_index for s in groups["b"]] == [0, 1]


@pytest.mark.parametrize(("change", "needle"), [
    ({"tokens": -1}, "field 'tokens': expected a non-negative integer"),
    ({"sample_index": True}, "field 'sample_index'"),
    ({"finish_reason": "eos"}, "field 'finish_reason'"),
    ({"prompt": 3}, "field 'prompt'"),
    ({"response": None}, "field 'response'"),
    ({"sampler": "local"}, "field 'sampler'"),
])
def test_bad_field_names_file_line_and_field(tmp_path, change, needle):
    path = tmp_path / "pool.jsonl"
    good = sample("a", 0).to_dict()
    path.write_text(json.dumps(good) + "\n" + json.dumps(good | change) + "\n")
    with pytest.raises(DataError, match=rf"pool.jsonl:2: {needle}"):
        read_pool(path)


def test_missing_field_and_bad_json(tmp_path):
    path = tmp_path / "pool.jsonl"
    record = sample("a", 0).to_dict()
    del record["tokens"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match="pool.jsonl:1: field 'tokens': missing"):
        read_pool(path)
    path.write_text("{not json\n")
    with pytest.raises(DataError, match="pool.jsonl:1: not a JSON line"):
        read_pool(path)


def test_duplicates_are_an_error_counted_or_kept_first_and_listed(tmp_path):
    path = tmp_path / "pool.jsonl"
    lines = [sample("a", 0), sample("a", 1), sample("a", 0), sample("a", 1), sample("b", 0)]
    path.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in lines))
    with pytest.raises(DataError, match=r"pool.jsonl:3: 2 duplicated .*\('a', 0\) is also at line 1"):
        read_pool(path)
    scan = scan_pool(path)
    assert [s.key for s in scan.samples] == [("a", 0), ("a", 1), ("b", 0)]
    assert [(d.line, d.first_line, d.prompt_id, d.sample_index) for d in scan.duplicates] == [(3, 1, "a", 0),
                                                                                              (4, 2, "a", 1)]


def test_a_pool_mixing_samplers_is_refused(tmp_path):
    path = tmp_path / "pool.jsonl"
    other = SAMPLER | {"temperature": 0.7}
    path.write_text(json.dumps(sample("a", 0).to_dict()) + "\n" + json.dumps(sample("b", 0, other).to_dict()) + "\n")
    with pytest.raises(DataError, match="pool.jsonl:2: field 'sampler': temperature 0.7, not 1.0"):
        read_pool(path)


def test_torn_last_line_is_refused_by_the_reader_and_cut_by_the_writer(tmp_path):
    path = tmp_path / "pool.jsonl"
    write_pool(path, [[sample("a", 0), sample("a", 1)]])
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"prompt_id": "b", "prom')
    with pytest.raises(DataError, match="pool.jsonl:3: the last line is cut short"):
        read_pool(path)
    with PoolWriter(path, SAMPLER) as pool:
        assert pool.torn_bytes == len(b'{"prompt_id": "b", "prom')
        assert pool.done == {("a", 0), ("a", 1)}
        pool.write_group([sample("b", 0)])
    assert [s.key for s in read_pool(path)] == [("a", 0), ("a", 1), ("b", 0)]


@pytest.mark.parametrize("content", [b"", b"no newline at all", b"line\n", b"line\nx" * 3])
def test_cut_torn_tail_keeps_whole_lines_only(tmp_path, content):
    path = tmp_path / "f"
    path.write_bytes(content)
    cut = cut_torn_tail(path, block=3)
    kept = content[: content.rfind(b"\n") + 1]
    assert path.read_bytes() == kept and cut == len(content) - len(kept)


def test_resume_knows_what_is_done_and_appends(tmp_path):
    path = tmp_path / "pool.jsonl"
    write_pool(path, [[sample("a", 0), sample("a", 1)]])
    with PoolWriter(path, SAMPLER) as pool:
        assert pool.done == {("a", 0), ("a", 1)} and pool.torn_bytes == 0
        with pytest.raises(ValueError, match="already in the pool"):
            pool.write_group([sample("a", 1)])
        pool.write_group([sample("b", 0)])
    assert [s.key for s in read_pool(path)] == [("a", 0), ("a", 1), ("b", 0)]


def test_resume_with_another_sampler_is_refused_and_leaves_the_pool(tmp_path):
    path = tmp_path / "pool.jsonl"
    write_pool(path, [[sample("a", 0)]])
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="was sampled with top_p 1.0, not 0.9 as asked now"):
        with PoolWriter(path, SAMPLER | {"top_p": 0.9}):
            pass
    assert path.read_bytes() == before
