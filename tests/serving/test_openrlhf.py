"""/get_reward fed what OpenRLHF's remote reward-model client sends: each sample's token ids (the left-padded
prompt rendered with the policy's chat template, the generated response, EOS, right padding) decoded with
`batch_decode(..., skip_special_tokens=False)`, with and without `prompts`, against `RewardModel.score` offline."""

from __future__ import annotations

import httpx
import pytest

from conftest import PROMPTS, RESPONSES, running_server, save_tiny_model
from rewardkit.models.reward_model import RewardModel
from rewardkit.serving.app import create_app


@pytest.fixture(scope="module")
def rm(llama_dir, tmp_path_factory) -> RewardModel:
    return RewardModel.from_pretrained(save_tiny_model(llama_dir, tmp_path_factory.mktemp("openrlhf") / "rm", 0,
                                                       None))


@pytest.fixture(scope="module")
def served(rm) -> str:
    with running_server(create_app({"rm": rm})) as (url, _):
        yield url


def rendered_prompts(tokenizer) -> list[str]:
    """OpenRLHF's prompt strings (`--apply_chat_template`): each user turn with the generation prompt."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) for p in PROMPTS]


def openrlhf_queries(tokenizer, prompts: list[str]) -> list[str]:
    """The rollout batch as OpenRLHF holds it (prompts left-padded, responses + EOS right-padded), decoded."""
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    response_ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in RESPONSES]
    width_p, width_r = max(map(len, prompt_ids)), max(map(len, response_ids))
    pad = tokenizer.pad_token_id
    rows = [[pad] * (width_p - len(p)) + p + r + [pad] * (width_r - len(r))
            for p, r in zip(prompt_ids, response_ids, strict=True)]
    return tokenizer.batch_decode(rows, skip_special_tokens=False)


def get_reward(url: str, body: dict) -> list[float]:
    reply = httpx.post(f"{url}/get_reward", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["rewards"] == reply.json()["scores"]
    return reply.json()["rewards"]


def test_queries_with_prompts_score_each_response_after_its_prompt(served, rm):
    prompts = rendered_prompts(rm.tokenizer)
    queries = openrlhf_queries(rm.tokenizer, prompts)
    assert all(q.startswith("<pad>") or q.endswith("<pad>") for q in queries)  # padding really is in the strings
    rewards = get_reward(served, {"query": queries, "prompts": prompts, "labels": [""] * 3})
    assert rewards == pytest.approx(rm.score(prompts, RESPONSES), abs=1e-5)


def test_queries_without_prompts_score_the_whole_unpadded_sample(served, rm):
    prompts = rendered_prompts(rm.tokenizer)
    rewards = get_reward(served, {"query": openrlhf_queries(rm.tokenizer, prompts)})
    expected = rm.score([""] * 3, [p + r for p, r in zip(prompts, RESPONSES, strict=True)])
    assert rewards == pytest.approx(expected, abs=1e-5)


def test_plain_prompts_score_as_the_raw_pair(served, rm):
    """A policy run without `--apply_chat_template`: the prompt is the raw text, and the reward is the pair's."""
    rewards = get_reward(served, {"query": openrlhf_queries(rm.tokenizer, PROMPTS), "prompts": PROMPTS})
    assert rewards == pytest.approx(rm.score(PROMPTS, RESPONSES), abs=1e-5)
