"""The training recipe: it learns, resumes exactly after SIGKILL, runs on two processes, fails loudly."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import toy_pairs, write_jsonl
from rewardkit.config import load_config
from rewardkit.errors import TrainingError
from rewardkit.models.reward_model import RewardModel
from rewardkit.tasks import pairwise as pairwise_module
from rewardkit.training.launch import train


def tiny_config(backbone: Path, data: Path, **train_overrides) -> dict:
    return {
        "model": {"backbone": str(backbone), "max_length": 64},
        "data": {"train": [{"path": str(data)}], "eval_fraction": 0.25},
        "optim": {"lr": 3e-3, "warmup_ratio": 0.0},
        "train": {"batch_size": 8, "epochs": 3, "log_every": 1, "seed": 0, **train_overrides},
    }


def run_cli_train(config: dict, output_dir: Path, launcher: list[str] | None = None, extra_env: dict | None = None,
                  ) -> subprocess.Popen:
    config_file = output_dir.parent / f"{output_dir.name}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    command = (launcher or [sys.executable, "-m"]) + ["rewardkit.cli", "train", "--config", str(config_file),
                                                       "--output-dir", str(output_dir)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"} | (extra_env or {})
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def assert_same_weights(a: Path, b: Path, atol: float = 1e-6) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=key)


def test_training_learns_and_writes_a_stock_model(llama_dir, toy_data, tmp_path):
    config = load_config(None, [], base=tiny_config(llama_dir, toy_data, eval_every=4))
    before = RewardModel.from_backbone(str(llama_dir), max_length=64).model.state_dict()
    result = train(config, tmp_path / "run", show_progress=False)
    after = weights(result.model_dir)
    changed = [k for k in after if k in before and not torch.equal(before[k], after[k])]
    assert len(changed) == len(after), "every parameter should change in full fine-tuning"
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.3 < losses[0] + 0.3 and sum(losses[-3:]) < sum(losses[:3])
    assert any("eval_accuracy" in r for r in log)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["overall"]["accuracy"] == 1.0 and set(metrics["subsets"]) == {"s0", "s1"}
    reloaded = RewardModel.from_pretrained(result.model_dir)
    assert reloaded.spec.normalization is not None and reloaded.spec.normalization.n == 2 * metrics["overall"]["n"]
    good, bad = reloaded.score(["new question?"] * 2, ["a good helpful answer", "a bad rude answer"])
    assert good > bad
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_records"] + summary["eval_records"] == 48 and summary["steps"] == 12
    assert (summary["batch_size"], summary["trained_examples_seen"], summary["trained_examples"]) == (8, 96, 36)


def test_a_fraction_of_an_epoch_counts_the_examples_trained_not_the_usable_set(llama_dir, toy_data, tmp_path):
    config = load_config(None, [], base=tiny_config(llama_dir, toy_data, epochs=0.3))
    summary = train(config, tmp_path / "run", show_progress=False).summary
    assert (summary["steps"], summary["trained_examples_seen"], summary["trained_examples"]) == (2, 16, 36)


def logged_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run_dir / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


def test_bf16_autocast_trains_like_fp32_in_one_process(llama_dir, toy_data, tmp_path):
    """bf16 is not bit-exact, so the exact-equivalence tests pin fp32; this one bounds bf16's drift instead.
    Measured on an AVX512-BF16 CPU: per-step losses within 6.3e-4 of fp32 for plain, prefix-shared and
    accumulated steps (the tolerance is about 3x that). One process trains in both precisions."""
    base = tiny_config(llama_dir, toy_data, epochs=1, precision="fp32")
    train(load_config(None, ["train.share_prefix=false"], base=base), tmp_path / "fp32", show_progress=False)
    reference = logged_losses(tmp_path / "fp32")
    variants = {"plain": ["train.share_prefix=false"], "shared": ["train.share_prefix=true"],
                "accumulated": ["train.share_prefix=false", "train.gradient_accumulation_steps=4"]}
    for name, overrides in variants.items():
        result = train(load_config(None, ["train.precision=bf16", *overrides], base=base), tmp_path / name,
                       show_progress=False)
        assert result.summary["precision"] == "bf16"
        losses = logged_losses(tmp_path / name)
        assert losses != reference, "bf16 autocast was not in effect"
        assert max(abs(a - b) for a, b in zip(losses, reference, strict=True)) < 2e-3, (name, losses, reference)
        assert {w.dtype for w in weights(result.model_dir).values()} == {torch.float32}, "saved weights stay fp32"


def test_lora_training_saves_a_merged_stock_model(llama_dir, toy_data, tmp_path):
    base = tiny_config(llama_dir, toy_data)
    base["model"]["lora"] = {"r": 4, "alpha": 8}
    result = train(load_config(None, [], base=base), tmp_path / "lora", show_progress=False)
    saved = weights(result.model_dir)
    assert not any("lora" in k for k in saved)
    original = RewardModel.from_backbone(str(llama_dir), max_length=64).model.state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(saved[key], original[key]), "merged adapters change the base weights"
    assert result.metrics["overall"]["accuracy"] >= 0.75


def test_resume_after_sigkill_ends_with_the_same_weights(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", [p.to_dict() for p in toy_pairs(48)])
    config = tiny_config(llama_dir, data, batch_size=2, epochs=6, save_every=10, keep_checkpoints=3, precision="fp32")
    straight = run_cli_train(config, tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stdout.read()

    killed = run_cli_train(config, tmp_path / "killed")
    first_checkpoint = tmp_path / "killed" / "checkpoint-000010" / "progress.json"
    deadline = time.monotonic() + 240
    while not first_checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "model").exists()

    resumed = run_cli_train(config | {"train": config["train"] | {"resume": "latest"}}, tmp_path / "killed")
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resumed from" in output
    assert_same_weights(tmp_path / "straight" / "model", tmp_path / "killed" / "model")


def test_two_processes_train_the_same_model_as_one(llama_dir, toy_data, tmp_path):
    config = tiny_config(llama_dir, toy_data, batch_size=4, epochs=1, precision="fp32")
    single = run_cli_train(config, tmp_path / "one")
    assert single.wait(timeout=300) == 0, single.stdout.read()
    # torchrun with gloo; ACCELERATE_USE_CPU tells accelerate to use the CPU processes (as `accelerate launch --cpu`)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", "-m"]
    double = run_cli_train(config, tmp_path / "two", launcher=launcher, extra_env={"ACCELERATE_USE_CPU": "true"})
    output = double.communicate(timeout=300)[0]
    assert double.returncode == 0, output
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    assert_same_weights(tmp_path / "one" / "model", tmp_path / "two" / "model", atol=1e-5)


def test_non_finite_loss_stops_with_a_clear_message(llama_dir, toy_data, tmp_path, monkeypatch):
    def nan_loss(*args, **kwargs):
        return torch.tensor(math.nan, requires_grad=True)

    monkeypatch.setattr("rewardkit.tasks.pairwise.bradley_terry_loss", nan_loss)
    with pytest.raises(TrainingError, match="loss became nan at step 1: lower optim.lr"):
        train(load_config(None, [], base=tiny_config(llama_dir, toy_data)), tmp_path / "nan", show_progress=False)


def test_loss_stuck_at_ln2_warns(llama_dir, toy_data, tmp_path, monkeypatch, capsys):
    def zero_head(model):
        torch.nn.init.zeros_(model.score.weight)

    monkeypatch.setattr("rewardkit.models.reward_model.init_score_head", zero_head)
    base = tiny_config(llama_dir, toy_data, stuck_loss_steps=3)
    base["optim"]["lr"] = 1e-12
    train(load_config(None, [], base=base), tmp_path / "stuck", show_progress=False)
    assert "the loss has sat at ln 2 for 3 steps" in capsys.readouterr().out


def test_too_few_pairs_for_one_batch_is_an_error(llama_dir, toy_data, tmp_path):
    config = load_config(None, ["train.batch_size=64"], base=tiny_config(llama_dir, toy_data))
    with pytest.raises(TrainingError, match="fewer than one batch of 64"):
        train(config, tmp_path / "small", show_progress=False)


def test_prefix_sharing_trains_the_same_model(llama_dir, toy_data, tmp_path):
    runs = {}
    for setting in ("false", "auto"):
        config = load_config(None, [f"train.share_prefix={setting}", "train.epochs=1"],
                             base=tiny_config(llama_dir, toy_data, precision="fp32"))
        runs[setting] = train(config, tmp_path / setting, show_progress=False)
    assert runs["auto"].summary["share_prefix"] and not runs["false"].summary["share_prefix"]
    assert_same_weights(tmp_path / "false" / "model", tmp_path / "auto" / "model", atol=1e-4)


def test_prefix_sharing_is_refused_for_encoders(bert_dir, toy_data, tmp_path):
    config = load_config(None, ["train.share_prefix=true"], base=tiny_config(bert_dir, toy_data))
    with pytest.raises(TrainingError, match="needs a decoder backbone"):
        train(config, tmp_path / "enc", show_progress=False)


def test_gradient_accumulation_and_checkpointing_train_the_same_model(llama_dir, toy_data, tmp_path):
    base = tiny_config(llama_dir, toy_data, epochs=1, precision="fp32")
    variants = {"plain": [], "accumulated": ["train.gradient_accumulation_steps=4"],
                "checkpointed": ["model.gradient_checkpointing=true"]}
    for name, overrides in variants.items():
        train(load_config(None, overrides, base=base), tmp_path / name, show_progress=False)
    assert_same_weights(tmp_path / "plain" / "model", tmp_path / "accumulated" / "model", atol=1e-5)
    assert_same_weights(tmp_path / "plain" / "model", tmp_path / "checkpointed" / "model", atol=1e-5)


def test_early_stopping_keeps_the_best_model(llama_dir, toy_data, tmp_path, monkeypatch):
    accuracies = iter([0.5, 0.9, 0.6, 0.7, 0.8])
    real = pairwise_module.evaluate_comparisons

    def scripted(rm, comparisons, *, bootstrap=1000, seed=0):
        metrics, rewards = real(rm, comparisons, bootstrap=bootstrap, seed=seed)
        if bootstrap == 0:  # the periodic evaluations get scripted accuracies
            metrics["overall"]["accuracy"] = next(accuracies)
        return metrics, rewards

    monkeypatch.setattr(pairwise_module, "evaluate_comparisons", scripted)
    config = tiny_config(llama_dir, toy_data, epochs=3, eval_every=1, early_stopping_patience=2)
    result = train(load_config(None, [], base=config), tmp_path / "early", show_progress=False)
    assert result.summary["steps"] == 4, "stops after two evaluations without improvement"
    assert result.summary["best_step"] == 2 and result.summary["best_eval_score"] == 0.9
    log = [json.loads(line) for line in (tmp_path / "early" / "train_log.jsonl").read_text().splitlines()]
    assert [r["eval_accuracy"] for r in log if "eval_accuracy" in r] == [0.5, 0.9, 0.6, 0.7]
    assert (tmp_path / "early" / "model" / "model.safetensors").is_file()


def test_weighted_pairs_give_the_same_model_however_the_batch_is_split(llama_dir, tmp_path):
    records = [p.to_dict() | {"weight": 1 + (i % 3)} for i, p in enumerate(toy_pairs(48))]
    data = write_jsonl(tmp_path / "weighted.jsonl", records)
    base = tiny_config(llama_dir, data, epochs=1, precision="fp32")
    train(load_config(None, [], base=base), tmp_path / "whole", show_progress=False)
    split = load_config(None, ["train.gradient_accumulation_steps=4"], base=base)
    train(split, tmp_path / "split", show_progress=False)
    assert_same_weights(tmp_path / "whole" / "model", tmp_path / "split" / "model", atol=1e-5)


def test_a_fresh_run_refuses_a_directory_with_old_checkpoints(llama_dir, toy_data, tmp_path):
    (tmp_path / "run" / "checkpoint-000900").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint-000900" / "progress.json").write_text("{}")
    with pytest.raises(TrainingError, match="holds checkpoints of an earlier run"):
        train(load_config(None, [], base=tiny_config(llama_dir, toy_data)), tmp_path / "run", show_progress=False)
