"""Length-balanced weights and source mixtures: exact shares, weights that compose, a held-out set left alone."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import toy_pairs, write_jsonl
from rewardkit.config import DataConfig, load_config
from rewardkit.data.mixture import mixture_shares, resample_to_shares, target_counts
from rewardkit.data.records import PreferencePair
from rewardkit.errors import ConfigError
from rewardkit.models.reward_model import RewardModel
from rewardkit.tasks.comparisons import encode_comparisons
from rewardkit.training.debias import rebalance_training_set
from rewardkit.training.launch import train


def words(n: int) -> str:
    return " ".join(["rain"] * n)


def encoded_pairs(llama_dir, lengths: list[tuple[str, int, int, float | None]]):
    """One pair per (subset, chosen words, rejected words, weight), encoded by the tiny Llama's spec."""
    rm = RewardModel.from_backbone(str(llama_dir), max_length=64)
    pairs = [PreferencePair(prompt=f"question {i}?", chosen=words(c + 1), rejected=words(r + 1),
                            id=f"p{i}", subset=subset, weight=weight)
             for i, (subset, c, r, weight) in enumerate(lengths)]
    comparisons, dropped = encode_comparisons(rm, pairs)
    assert dropped == 0
    return comparisons


def weight(c) -> float:
    return 1.0 if c.pair.weight is None else c.pair.weight


def chosen_longer_share(comparisons, subset: str) -> float:
    """Computed here from the encoded token counts, independently of the code under test."""
    longer = sum(weight(c) for c in comparisons if c.pair.subset == subset
                 and c.chosen.response_length > c.rejected.response_length)
    shorter = sum(weight(c) for c in comparisons if c.pair.subset == subset
                  and c.chosen.response_length < c.rejected.response_length)
    return longer / (longer + shorter)


def test_length_balance_gives_every_source_a_half_chosen_longer_weight(llama_dir):
    lengths = ([("a", 6, 1, None)] * 5 + [("a", 8, 2, 3.0), ("a", 1, 5, None), ("a", 0, 4, 0.5), ("a", 3, 3, 2.0)]
               + [("b", 5, 2, None), ("b", 1, 6, None), ("b", 2, 7, None), ("b", 0, 3, None), ("b", 1, 9, None)])
    comparisons = encoded_pairs(llama_dir, lengths)
    assert chosen_longer_share(comparisons, "a") == pytest.approx(8 / 9.5)
    assert chosen_longer_share(comparisons, "b") == pytest.approx(1 / 5)
    lines = []
    balanced, notes = rebalance_training_set(comparisons, DataConfig(train=[{"path": "x"}], length_balance=True),
                                             0, lines.append)
    assert len(balanced) == len(comparisons)
    for subset in ("a", "b"):
        assert chosen_longer_share(balanced, subset) == pytest.approx(0.5, abs=1e-12)
        before = sum(weight(c) for c in comparisons if c.pair.subset == subset)
        assert sum(weight(c) for c in balanced if c.pair.subset == subset) == pytest.approx(before)
    weights = [weight(c) for c in balanced]
    assert weights[5] == pytest.approx(3 * weights[0])  # composes: the 3.0 pair keeps 3x its side's weight
    assert weights[8] == 2.0  # equal lengths: unchanged, and out of the share
    assert notes["length_balance"]["a"] == {"pairs": 9, "equal_length_pairs": 1,
                                            "chosen_longer_share_before": pytest.approx(8 / 9.5),
                                            "chosen_longer_share_after": pytest.approx(0.5)}
    assert notes["effective_share"] == pytest.approx({"a": 11.5 / 16.5, "b": 5 / 16.5})
    assert "a 0.842 -> 0.500" in lines[0] and "b 0.200 -> 0.500" in lines[0]


def test_a_source_with_one_side_only_cannot_be_balanced_and_keeps_its_weights(llama_dir):
    comparisons = encoded_pairs(llama_dir, [("a", 5, 1, None), ("a", 6, 2, None)])
    balanced, notes = rebalance_training_set(comparisons, DataConfig(train=[{"path": "x"}], length_balance=True),
                                             0, lambda line: None)
    assert [c.pair.weight for c in balanced] == [None, None]
    assert notes["length_balance"]["a"]["chosen_longer_share_after"] == 1.0


def test_nothing_to_rebalance_returns_the_set_as_it_is(llama_dir):
    comparisons = encoded_pairs(llama_dir, [("a", 5, 1, None)])
    assert rebalance_training_set(comparisons, DataConfig(train=[{"path": "x"}]), 0, print) == (comparisons, None)


def test_mixture_shares_by_weights_and_by_temperature():
    counts = {"hh": 100, "pandalm": 25}
    assert mixture_shares(counts, temperature=1.0) == pytest.approx({"hh": 0.8, "pandalm": 0.2})
    assert mixture_shares(counts, temperature=2.0) == pytest.approx({"hh": 2 / 3, "pandalm": 1 / 3})
    assert mixture_shares(counts, temperature=1e9) == pytest.approx({"hh": 0.5, "pandalm": 0.5})
    assert mixture_shares(counts, weights={"hh": 1, "pandalm": 3}) == {"hh": 0.25, "pandalm": 0.75}
    with pytest.raises(ConfigError, match=r"missing \['pandalm'\]; unknown \['dpo'\]"):
        mixture_shares(counts, weights={"hh": 1, "dpo": 1})
    assert target_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}


def test_resampling_keeps_the_total_and_gives_each_source_its_count():
    items = [("big", i) for i in range(30)] + [("small", i) for i in range(5)]
    mixed = resample_to_shares(items, lambda item: item[0], {"big": 0.5, "small": 0.5}, total=35, seed=3)
    counts = Counter(source for source, _ in mixed)
    assert len(mixed) == 35 and counts == {"big": 18, "small": 17}
    big = [item for item in mixed if item[0] == "big"]
    assert len(set(big)) == 18  # cut below its size: no pair twice
    small = Counter(item for item in mixed if item[0] == "small")
    assert set(small) == set(items[30:]) and set(small.values()) == {3, 4}  # raised: each 3x, two of them 4x
    assert mixed == resample_to_shares(items, lambda item: item[0], {"big": 0.5, "small": 0.5}, total=35, seed=3)
    assert mixed != resample_to_shares(items, lambda item: item[0], {"big": 0.5, "small": 0.5}, total=35, seed=4)


def minimal() -> dict:
    return {"data": {"train": [{"path": "x"}]}}


def test_a_mixture_config_needs_one_rule_and_a_pairwise_task():
    with pytest.raises(ConfigError, match="exactly one of weights and temperature"):
        load_config(None, ["data.mixture={weights: {a: 1}, temperature: 2}"], base=minimal())
    with pytest.raises(ConfigError, match="need task type pairwise, not pointwise"):
        load_config(None, ["data.length_balance=true", "task.type=pointwise", "task.attributes=[score]"],
                    base=minimal())


def test_training_with_a_mixture_and_length_balance_keeps_the_held_out_pairs(llama_dir, tmp_path, capsys):
    pairs = [p.to_dict() for p in toy_pairs(48)] + [p.to_dict() | {"subset": "s2", "id": f"x{p.id}"}
                                                    for p in toy_pairs(64, seed=1)[48:]]
    data = write_jsonl(tmp_path / "mixed.jsonl", pairs)
    base = {"model": {"backbone": str(llama_dir), "max_length": 64},
            "data": {"train": [{"path": str(data)}], "eval_fraction": 0.25},
            "optim": {"lr": 3e-3, "warmup_ratio": 0.0}, "train": {"batch_size": 8, "epochs": 1, "seed": 0}}
    plain = train(load_config(None, [], base=base), tmp_path / "plain", show_progress=False)
    overrides = ["data.mixture.weights={s0: 1, s1: 1, s2: 2}", "data.length_balance=true"]
    mixed = train(load_config(None, overrides, base=base), tmp_path / "mixed", show_progress=False)
    out = capsys.readouterr().out
    assert "mixture (resampled, seed 0" in out and "effective share of the training weight" in out
    assert mixed.metrics["overall"]["n"] == plain.metrics["overall"]["n"]
    assert {k: v["n"] for k, v in mixed.metrics["subsets"].items()} == {
        k: v["n"] for k, v in plain.metrics["subsets"].items()}
    summary = json.loads((tmp_path / "mixed" / "summary.json").read_text())
    assert summary["eval_records"] == plain.summary["eval_records"] and summary["steps"] == plain.summary["steps"]
    mixture = summary["rebalance"]["mixture"]
    assert mixture["method"] == "resample" and mixture["total"] == summary["trained_examples"]
    resampled = {name: s["resampled_pairs"] for name, s in mixture["sources"].items()}
    assert sum(resampled.values()) == mixture["total"]
    assert resampled["s2"] == pytest.approx(mixture["total"] / 2, abs=1)
    assert summary["rebalance"]["effective_share"]["s2"] == pytest.approx(0.5, abs=0.01)
    assert plain.summary["rebalance"] is None
