"""ODIN's disentangled length head: its quality head leaves a planted length shortcut to the length head, only the
quality row is exported, and resumable checkpoints keep both rows."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import write_jsonl
from rewardkit.config import load_config
from rewardkit.data.records import PreferencePair
from rewardkit.errors import ConfigError
from rewardkit.models.reward_model import RewardModel
from rewardkit.training.launch import train


def reply(word: str, filler: int) -> str:
    return " ".join([word] + ["the"] * filler)


def shortcut_pairs(n: int, seed: int) -> list[PreferencePair]:
    """The chosen reply says 'good' and is always 3-8 words longer; lengths spread widely over the pairs."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        short = rng.randint(0, 40)
        pairs.append(PreferencePair(prompt=f"question {i}?", chosen=reply("good", short + rng.randint(3, 8)),
                                    rejected=reply("bad", short), id=f"p{i}"))
    return pairs


def odin_config(backbone, data, **train) -> dict:
    return {"model": {"backbone": str(backbone), "max_length": 64},
            "data": {"train": [{"path": str(data)}], "eval_fraction": 0.1},
            "optim": {"lr": 3e-3, "warmup_ratio": 0.0},
            "train": {"batch_size": 8, "epochs": 6, "seed": 0, "length_grouping": False, **train}}


def length_correlation(rm: RewardModel, pairs: list[PreferencePair]) -> tuple[float, float]:
    """Pearson's r of the rewards of every held-out response with its token count (as ODIN reports it), and the
    pair accuracy."""
    texts = [text for p in pairs for text in (p.chosen, p.rejected)]
    rewards = np.array(rm.score(["new question?"] * len(texts), texts))
    lengths = [len(rm.tokenizer(text)["input_ids"]) for text in texts]
    return float(np.corrcoef(rewards, lengths)[0, 1]), float(np.mean(rewards[0::2] > rewards[1::2]))


def test_the_quality_head_leaves_a_planted_length_shortcut_to_the_length_head(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "shortcut.jsonl", [p.to_dict() for p in shortcut_pairs(96, seed=0)])
    held_out = shortcut_pairs(40, seed=1)
    base = odin_config(llama_dir, data, epochs=12)  # ODIN's correlation loss needs the epochs in fp32 as in bf16
    baseline = train(load_config(None, [], base=base), tmp_path / "baseline", show_progress=False)
    odin = train(load_config(None, ["task.length_head={}"], base=base), tmp_path / "odin", show_progress=False)
    baseline_r, baseline_accuracy = length_correlation(RewardModel.from_pretrained(baseline.model_dir), held_out)
    rm = RewardModel.from_pretrained(odin.model_dir)
    odin_r, odin_accuracy = length_correlation(rm, held_out)
    # measured: baseline 0.31 and ODIN 0.04 in fp32, 0.31 and 0.02 in bf16
    assert baseline_r > 0.25 and abs(odin_r) < 0.1 and abs(odin_r) < baseline_r / 3, (baseline_r, odin_r)
    assert baseline_accuracy >= 0.9 and odin_accuracy >= 0.9
    # the export is a stock one-output model: the quality row alone
    assert rm.num_attributes == 1 and rm.spec.attributes is None and rm.model.config.id2label == {0: "reward"}
    assert load_file(str(odin.model_dir / "model.safetensors"))["score.weight"].shape == (1, 16)
    assert odin.summary["spec"]["attributes"] == ["quality", "length"]  # what was trained


def test_checkpoints_keep_both_rows_and_resume_to_the_same_model(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "shortcut.jsonl", [p.to_dict() for p in shortcut_pairs(40, seed=0)])
    base = odin_config(llama_dir, data, epochs=1, save_every=2, keep_checkpoints=3)
    straight = train(load_config(None, ["task.length_head={length_weight: 0.5}"], base=base), tmp_path / "straight",
                     show_progress=False)
    assert straight.summary["steps"] == 4
    checkpoint = load_file(str(tmp_path / "straight" / "checkpoint-000002" / "model.safetensors"))
    assert checkpoint["model.score.weight"].shape == (2, 16)
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint-000002", tmp_path / "resumed" / "checkpoint-000002")
    resumed = train(load_config(None, ["task.length_head={length_weight: 0.5}", "train.resume=latest"], base=base),
                    tmp_path / "resumed", show_progress=False)
    a, b = (load_file(str(result.model_dir / "model.safetensors")) for result in (straight, resumed))
    assert a.keys() == b.keys() and a["score.weight"].shape == (1, 16)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)


def test_a_length_head_mixes_lengths_in_batches_and_needs_pairs():
    def minimal() -> dict:
        return {"data": {"train": [{"path": "x"}]}}

    assert load_config(None, ["task.length_head={}"], base=minimal()).train.length_grouping is False
    with pytest.raises(ConfigError, match="needs train.length_grouping false"):
        load_config(None, ["task.length_head={}", "train.length_grouping=true"], base=minimal())
    with pytest.raises(ConfigError, match="length_head \\(ODIN\\) needs task type pairwise"):
        load_config(None, ["task.length_head={}", "task.type=listwise"], base=minimal())
