"""Both orders, votes and agreement in the pair format, failures and resumption, through a scripted judge."""

from __future__ import annotations

import json

import pytest

from conftest import toy_pairs, write_jsonl
from rewardkit.config import load_config
from rewardkit.data.preferences import load_preferences
from rewardkit.errors import ConfigError
from rewardkit.io import write_jsonl_atomic
from rewardkit.judge.cache import JudgeCache
from rewardkit.judge.items import JudgeItem, load_items
from rewardkit.judge.principles import load_constitution
from rewardkit.judge.run import JudgeOptions, dry_run, judge_items
from rewardkit.training.launch import train

from .conftest import ScriptedJudge

CONSTITUTION = load_constitution(None)
HELPFUL = JudgeOptions(principles=("helpfulness",), show_progress=False)


def items(n: int = 6, *, fail: int = 0) -> list[JudgeItem]:
    """Items whose "good" response is a for even i and b for odd i; the first `fail` say FAIL."""
    made = []
    for i in range(n):
        good, bad = f"a good answer {i}", f"a bad answer {i}" + (" FAIL" if i < fail else "")
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        made.append(JudgeItem(f"item-{i}", f"question {i}?", a, b))
    return made


def run(judge, cache_path, the_items, options=HELPFUL):
    return judge_items(the_items, judge, CONSTITUTION, JudgeCache(cache_path), options)


def test_both_orders_are_judged_and_recorded_with_votes_agreement_and_confidence(tmp_path):
    judge = ScriptedJudge(strength=0.8)
    result = run(judge, tmp_path / "cache.jsonl", items(4))
    assert len(judge.asked) == 8  # two orders per item
    for pair in result.pairs:
        assert "good" in pair["chosen"] and "bad" in pair["rejected"]
        assert pair["votes"] == [1, 1] and pair["agreement"] == 1.0
        assert pair["confidence"] == pytest.approx(0.8) and pair["weight"] == pytest.approx(0.8)
        assert pair["judge"] == "scripted" and pair["principle"] == "helpfulness"
        assert pair["template"] == CONSTITUTION.template_id("helpfulness")
        assert [v["order"] for v in pair["verdicts"]] == ["ab", "ba"]
    assert result.summary["consistency_rate"] == 1.0 and result.summary["first_slot_win_rate"] == 0.5


def test_a_position_biased_judge_is_measured_and_its_inconsistent_verdicts_marked(tmp_path):
    """strength 0.6 + bias 0.3: the first slot always wins, so the two orders disagree on every item."""
    result = run(ScriptedJudge(strength=0.6, first_bias=0.3), tmp_path / "cache.jsonl", items(4))
    assert result.summary["first_slot_win_rate"] == 1.0 and result.summary["consistency_rate"] == 0.0
    for pair in result.pairs:
        assert sorted(pair["votes"]) == [1, 2] and pair["agreement"] == 0.5
        # P(good) is 0.6 + 0.3 shown first, 1 - (0.4 + 0.3) shown second: combined 0.6, so good is still chosen
        assert "good" in pair["chosen"] and pair["confidence"] == pytest.approx((0.9 + 0.3) / 2)


@pytest.mark.parametrize("policy", ["tie", "drop"])
def test_require_agreement_makes_inconsistent_items_ties_or_drops_them(tmp_path, policy):
    options = JudgeOptions(principles=("helpfulness",), require_agreement=policy, show_progress=False)
    result = run(ScriptedJudge(strength=0.6, first_bias=0.3), tmp_path / "cache.jsonl", items(4), options)
    if policy == "drop":
        assert result.pairs == [] and result.summary["dropped_inconsistent"] == 4
    else:
        assert len(result.pairs) == 4 and all(pair["tie"] for pair in result.pairs)
        assert all("weight" not in pair for pair in result.pairs)


@pytest.mark.parametrize(("use", "field", "value"), [("weight", "weight", 0.8), ("margin", "margin", 0.6)])
def test_confidence_is_written_as_weight_or_margin(tmp_path, use, field, value):
    options = JudgeOptions(principles=("helpfulness",), confidence_as=use, show_progress=False)
    pair = run(ScriptedJudge(strength=0.8), tmp_path / "cache.jsonl", items(1), options).pairs[0]
    assert pair[field] == pytest.approx(value)
    assert ({"weight", "margin"} - {field}).isdisjoint(pair)


def test_the_output_loads_as_pairs_and_min_agreement_keeps_the_consistent_ones(tmp_path):
    consistent = run(ScriptedJudge(strength=0.8), tmp_path / "a.jsonl", items(3)).pairs
    inconsistent = run(ScriptedJudge(strength=0.6, first_bias=0.3), tmp_path / "b.jsonl",
                       [JudgeItem(f"x-{i}", f"q {i}", f"a good {i}", f"a bad {i}") for i in range(2)]).pairs
    write_jsonl_atomic(tmp_path / "judged.jsonl", consistent + inconsistent)
    loaded = load_preferences(tmp_path / "judged.jsonl")
    assert len(loaded.pairs) == 5
    assert [p.agreement for p in loaded.pairs] == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert [p.weight for p in loaded.pairs] == pytest.approx([pair["weight"] for pair in consistent + inconsistent])
    kept = load_preferences(tmp_path / "judged.jsonl", min_agreement=1.0)
    assert len(kept.pairs) == 3 and kept.notes["below_min_agreement"] == 2


def test_cached_answers_are_not_asked_again_and_failures_wait_for_retry_failed(tmp_path):
    judge, cache = ScriptedJudge(), tmp_path / "cache.jsonl"
    first = run(judge, cache, items(6, fail=2))
    assert first.summary["failed"] == 2 and len(first.pairs) == 4
    assert {f["id"] for f in first.summary["failures"]} == {"item-0", "item-1"}
    assert "HTTP 500: scripted" in first.summary["failures"][0]["error"]
    asked = len(judge.asked)
    judge.failing = False
    again = run(judge, cache, items(6, fail=2))
    assert len(judge.asked) == asked and again.summary["calls"] == 0 and again.summary["failed"] == 2
    retried = run(judge, cache, items(6, fail=2), JudgeOptions(principles=("helpfulness",), retry_failed=True,
                                                             show_progress=False))
    assert len(judge.asked) == asked + 4 and retried.summary["failed"] == 0 and len(retried.pairs) == 6
    entries = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(entries) == 12 + 4 and sum("error" in e for e in entries) == 4  # failures stay on disk, superseded


def test_principles_are_sampled_per_item_or_all_judged(tmp_path):
    judge = ScriptedJudge()
    sampled = run(judge, tmp_path / "a.jsonl", items(12), JudgeOptions(show_progress=False))
    assert len({pair["principle"] for pair in sampled.pairs}) > 1 and len(sampled.pairs) == 12
    each = run(judge, tmp_path / "b.jsonl", items(2), JudgeOptions(principle_mode="each", show_progress=False))
    assert len(each.pairs) == 2 * 6 and {p["id"] for p in each.pairs} >= {"item-0/honesty", "item-1/respect"}
    with pytest.raises(ConfigError, match="unknown principle 'kindness'"):
        run(judge, tmp_path / "c.jsonl", items(1), JudgeOptions(principles=("kindness",), show_progress=False))


def test_dry_run_counts_calls_and_tokens_without_asking(tmp_path):
    judge, cache = ScriptedJudge(), tmp_path / "cache.jsonl"
    planned = dry_run(items(3), judge, CONSTITUTION, JudgeCache(cache), HELPFUL)
    assert planned["calls"] == 6 and planned["cached"] == 0 and planned["input_tokens"] > 6 * 20
    assert judge.asked == [] and not cache.exists()
    run(judge, cache, items(2))
    assert dry_run(items(3), judge, CONSTITUTION, JudgeCache(cache), HELPFUL)["calls"] == 2


def test_inputs_with_several_responses_give_every_pair(tmp_path):
    path = write_jsonl(tmp_path / "responses.jsonl", [{"prompt": "q?", "responses": ["x", "y", "z"], "id": "p"}])
    loaded = load_items(path)
    assert loaded.kind == "responses" and [item.id for item in loaded.items] == ["p:0-1", "p:0-2", "p:1-2"]


def test_labelled_pairs_keep_their_human_label_in_a_seeded_orientation(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [p.to_dict() for p in toy_pairs(40)])
    loaded = load_items(path)
    assert {item.human for item in loaded.items} == {"a", "b"}
    assert all(("good" in (item.a if item.human == "a" else item.b)) for item in loaded.items)
    assert [item.human for item in load_items(path).items] == [item.human for item in loaded.items]


def test_a_reward_model_trains_on_judge_output_without_conversion(tmp_path, bert_dir):
    pairs = toy_pairs(24)
    judged = run(ScriptedJudge(strength=0.9), tmp_path / "cache.jsonl",
                 [JudgeItem(p.id, p.prompt, p.rejected, p.chosen) for p in pairs]).pairs
    write_jsonl_atomic(tmp_path / "judged.jsonl", judged)
    config = load_config(None, base={
        "model": {"backbone": str(bert_dir), "max_length": 64},
        "data": {"train": [{"path": str(tmp_path / "judged.jsonl"), "min_agreement": 1.0}], "eval_fraction": 0.25},
        "train": {"batch_size": 4, "epochs": 1, "log_every": 1, "precision": "fp32"}})
    result = train(config, tmp_path / "run")
    assert result.summary["trained_examples"] > 0
    assert (tmp_path / "run" / "model" / "scoring_spec.json").is_file()


def test_a_sample_pool_gives_every_pair_of_a_prompts_samples(tmp_path):
    sampler = {"kind": "local", "model": "m", "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 0}
    lines = [{"prompt_id": "p1", "prompt": "hi?", "sample_index": i, "response": f"r{i}", "tokens": 2,
              "finish_reason": "stop", "sampler": sampler} for i in (2, 0, 1)]
    loaded = load_items(write_jsonl(tmp_path / "pool.jsonl", lines))
    assert loaded.kind == "pool" and [(i.id, i.a, i.b) for i in loaded.items] == [
        ("p1:0-1", "r0", "r1"), ("p1:0-2", "r0", "r2"), ("p1:1-2", "r1", "r2")]
