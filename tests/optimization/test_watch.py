"""The RL watch: each rule on synthetic steps, and the TRL callback inside a real (tiny) GRPOTrainer run."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset

from optimization.pools import tiny_rm
from rewardkit.errors import ConfigError
from rewardkit.models.reward_model import RewardModel
from rewardkit.optimization.watch import (
    LENGTH,
    OFF_DISTRIBUTION,
    OUTPACES_KL,
    RewardHackingWarning,
    RewardWatch,
    RewardWatchCallback,
    expected_max_of_normals,
)


def test_expected_max_of_normals():
    assert expected_max_of_normals(1) == pytest.approx(0, abs=1e-9)
    assert expected_max_of_normals(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-6)


def test_length_up_more_than_half_warns_once():
    watch = RewardWatch()
    assert watch.update(0, [0.0, 1.0], [100, 100]) == []
    assert watch.update(1, [0.0, 1.0], [140, 150]) == []  # +45%
    with pytest.warns(RewardHackingWarning, match="length 160.0 is 60% above"):
        (fired,) = watch.update(2, [0.0, 1.0], [160, 160])
    assert fired.rule == LENGTH and fired.step == 2
    assert watch.update(3, [0.0, 1.0], [200, 200]) == []  # already reported


def test_reward_rising_faster_than_best_of_n_at_that_kl_warns():
    watch = RewardWatch(reward_mean=0.0, reward_std=1.0, max_reward_z=10)
    watch.observe(0, 0.0, 50, kl=0.0)
    assert watch.observe(1, 0.9, 50, kl=0.5) == []  # best-of-n gains 0.91 std at 0.5 nats
    with pytest.warns(RewardHackingWarning, match="faster than KL"):
        assert [w.rule for w in watch.observe(2, 1.2, 50, kl=0.5)] == [OUTPACES_KL]


def test_rewards_far_above_the_training_distribution_warn():
    watch = RewardWatch(reward_mean=1.0, reward_std=0.5)
    watch.update(0, [1.0, 1.2], [10, 10])
    assert watch.update(1, [1.8, 1.9], [10, 10]) == []  # z = 1.7
    with pytest.warns(RewardHackingWarning, match="2.4 std above"):
        assert [w.rule for w in watch.update(2, [2.2, 2.2, math.nan], [10, 10])] == [OFF_DISTRIBUTION]


def test_half_given_statistics_are_refused():
    with pytest.raises(ConfigError, match="both reward_mean and reward_std"):
        RewardWatch(reward_mean=0.0)


def test_the_callback_in_a_real_grpo_run(llama_dir, tmp_path):
    """Three GRPO steps of a tiny Llama policy rewarded far above a stated training distribution: every logged step
    reaches the watch with TRL's reward, length and KL, and the off-distribution rule fires."""
    trl = pytest.importorskip("trl", minversion="1.16")
    watch = RewardWatch.for_model(RewardModel.from_pretrained(tiny_rm(llama_dir, tmp_path)))  # mean 0.1, std 0.5
    assert (watch.reward_mean, watch.reward_std) == (0.1, 0.5)

    def reward(prompts, completions, **kwargs):
        return [3.0 + 0.01 * len(c) for c in completions]

    args = trl.GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], save_strategy="no",
                          per_device_train_batch_size=2, num_generations=2, max_completion_length=8, max_steps=3,
                          logging_steps=1, beta=0.04)
    trainer = trl.GRPOTrainer(model=str(llama_dir), reward_funcs=reward, args=args,
                              train_dataset=Dataset.from_dict({"prompt": ["Is tea good?", "Name a colour."] * 3}),
                              callbacks=[RewardWatchCallback(watch)])
    with pytest.warns(RewardHackingWarning, match="std above the reward model's training distribution"):
        trainer.train()
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert [h["step"] for h in watch.history] == [entry["step"] for entry in logged] == [1, 2, 3]
    for seen, entry in zip(watch.history, logged, strict=True):
        assert seen["reward"] == entry["reward"] and seen["length"] == entry["completions/mean_length"]
        assert seen["kl"] == entry["kl"]
    assert [w.rule for w in watch.warnings] == [OFF_DISTRIBUTION]
