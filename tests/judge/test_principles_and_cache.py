"""The constitution's strict YAML, and the append-only cache's recovery from a torn write."""

from __future__ import annotations

import json

import pytest

from rewardkit.errors import ConfigError, DataError
from rewardkit.judge.cache import JudgeCache, request_key
from rewardkit.judge.principles import load_constitution

SIX = ["helpfulness", "honesty", "harmlessness", "concision", "reasoning", "respect"]


def test_the_default_constitution_has_the_six_principles_each_with_its_template():
    constitution = load_constitution(None)
    assert list(constitution.principles) == SIX
    chat = constitution.comparison("honesty", "Is the sky green?", "No.", "Yes.")
    assert chat[0]["role"] == "system" and "[Response A]\nNo." in chat[-1]["content"]
    assert "honesty" in chat[-1]["content"] and constitution.labels("honesty") == ("A", "B")
    assert len({constitution.template_id(name) for name in SIX}) == 6


def write(tmp_path, text: str):
    path = tmp_path / "principles.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """template: "{prompt} A: {response_a} B: {response_b} {choices}"
critique_template: "{prompt} {response}"
revision_template: "{prompt} {response} {critique}"
"""


def test_a_principle_with_its_own_template_and_ties(tmp_path):
    constitution = load_constitution(write(tmp_path, BASE + """principles:
  brevity:
    criterion: shorter is better
    ties: true
    template: "Q {prompt} / {response_a} / {response_b} / {principle}: {choices}"
"""))
    assert constitution.labels("brevity") == ("A", "B", "tie")
    assert constitution.comparison("brevity", "q", "x", "y")[-1]["content"] == (
        "Q q / x / y / brevity: A, B or tie (equally good)")


@pytest.mark.parametrize(("text", "needle"), [
    (BASE + "principles:\n  a: {criterion: x}\n  a: {criterion: y}\n", "duplicate key 'a' (first given on line 5)"),
    (BASE + "principles:\n  a: {criterion: x, template: '{prompt} {response_a} {response_b} {name}'}\n",
     "unknown placeholders ['name']"),
    (BASE.replace("{response_b} ", "") + "principles:\n  a: {criterion: x}\n", "missing placeholders ['response_b']"),
    (BASE + "principles:\n  a: {criterion: x, weight: 2}\n", "principles.a.weight: Extra inputs"),
    (BASE + "principles: {}\n", "principles"),
])
def test_a_bad_constitution_is_refused_naming_the_file_and_problem(tmp_path, text, needle):
    with pytest.raises(ConfigError, match="principles.yaml") as refused:
        load_constitution(write(tmp_path, text))
    assert needle in str(refused.value)


def test_cache_keys_depend_on_every_part():
    parts = {"judge": "j", "template": "t", "principle": "p", "prompt": "q", "responses": ["a", "b"], "order": "ab"}
    keys = {request_key(**parts)} | {request_key(**(parts | {name: "other"})) for name in parts}
    assert len(keys) == len(parts) + 1 and request_key(**parts) == request_key(**dict(reversed(parts.items())))


def test_a_torn_last_line_is_cut_and_a_later_entry_of_a_key_wins(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = JudgeCache(path)
    cache.put_many([{"key": "k1", "error": "HTTP 500"}, {"key": "k2", "text": "x"}])
    with open(path, "a") as file:
        file.write('{"key": "k3", "tex')  # a kill mid-write
    reopened = JudgeCache(path)
    assert reopened.torn_lines == 1 and set(reopened.entries) == {"k1", "k2"} and reopened.failures() == 1
    reopened.put({"key": "k1", "text": "fixed"})
    final = JudgeCache(path)
    assert final.get("k1") == {"key": "k1", "text": "fixed"} and final.torn_lines == 0 and final.failures() == 0
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_malformed_line_before_the_last_is_corruption(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": "k1", "text": "x"}\nnot json\n{"key": "k2", "text": "y"}\n')
    with pytest.raises(DataError, match=r"cache.jsonl:2: malformed cache entry"):
        JudgeCache(path)
