"""A few tests on the real bundled backbones and the real bundled data (slower: seconds to a minute)."""

from __future__ import annotations

from importlib import resources

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardkit.config import load_config
from rewardkit.data.preferences import load_preferences
from rewardkit.models.reward_model import RewardModel
from rewardkit.training.launch import train

pytestmark = pytest.mark.integration


def bundled(name: str) -> str:
    return str(resources.files("rewardkit") / "demo_data" / name)


def test_bundled_data_loads_with_counted_skips():
    hh = load_preferences(bundled("hh-rlhf-harmless-base-test.jsonl.gz"), on_bad_record="skip")
    assert len(hh.pairs) + len(hh.skipped) == 2312 and hh.notes["no_shared_prefix"] == 5
    assert len(hh.skipped) == 5  # only the records without a shared prefix: the 4 empty replies are pairs
    assert all(p.prompt[-1]["role"] == "user" for p in hh.pairs)
    panda = load_preferences(bundled("pandalm-testset-v1.json"), format="pandalm", on_bad_record="skip")
    assert panda.notes["ties_dropped"] > 0 and len(panda.pairs) > 700


def test_minilm_trains_on_real_pairs_and_plain_transformers_agrees(tmp_path):
    config = load_config(
        resources.files("rewardkit") / "configs" / "demo.yaml",
        ["train.epochs=0.05", "train.batch_size=8", "data.eval_fraction=0.02"],
    )
    result = train(config, tmp_path / "run", show_progress=False)
    assert result.summary["steps"] >= 15 and result.metrics["overall"]["n"] > 40
    rm = RewardModel.from_pretrained(result.model_dir)
    plain = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    encoded = [rm.spec.encode(rm.tokenizer, "How do I bake bread?", r) for r in ("Mix flour, water, yeast.", "No.")]
    batch = rm.collate(encoded)
    with torch.no_grad():
        torch.testing.assert_close(rm(**batch), plain(**batch).logits.squeeze(-1), atol=1e-5, rtol=0)


def test_smollm2_gguf_backbone_becomes_a_stock_directory(tmp_path):
    pytest.importorskip("gguf")
    rm = RewardModel.from_backbone("smollm2-135m", max_length=128)
    assert rm.spec.format == "chat_template" and rm.spec.pooling == "last"
    assert rm.spec.pad_token not in (rm.tokenizer.eos_token, rm.tokenizer.bos_token)
    rm.save_pretrained(tmp_path / "smol")
    reloaded = RewardModel.from_pretrained(tmp_path / "smol")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "smol").eval()
    encoded = [reloaded.spec.encode(reloaded.tokenizer, "Hi!", r) for r in ("Hello, how can I help?", "Go away.")]
    batch = reloaded.collate(encoded)
    with torch.no_grad():
        ours = reloaded(**batch)
        torch.testing.assert_close(ours, plain(**batch).logits.squeeze(-1), atol=1e-4, rtol=0)
    assert rm.score(["Hi!"], ["Hello, how can I help?"]) == pytest.approx(ours[:1].tolist(), abs=1e-4)
