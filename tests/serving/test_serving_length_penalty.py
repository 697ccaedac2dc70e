"""The served length penalty: the server's default on both routes, a /v1/score request's own, and what each
answer records."""

from __future__ import annotations

import asyncio

import pytest

from conftest import PROMPTS, RESPONSES, asgi_client, save_tiny_model
from rewardkit.models.reward_model import RewardModel
from rewardkit.serving.app import create_app
from rewardkit.serving.requests import ServeConfig

ITEMS = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES, strict=True)]


@pytest.fixture(scope="module")
def rm(llama_dir, tmp_path_factory) -> RewardModel:
    return RewardModel.from_pretrained(save_tiny_model(llama_dir, tmp_path_factory.mktemp("rm") / "rm", 0, None))


def post_all(app, requests: list[tuple[str, dict]]) -> list[dict]:
    async def send():
        async with asgi_client(app) as client:
            replies = [await client.post(route, json=body) for route, body in requests]
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
        return [r.json() for r in replies]

    return asyncio.run(send())


def test_served_rewards_drop_by_exactly_lambda_times_tokens(rm):
    tokens = [pair.response_length for pair in rm.spec.encode_batch(rm.tokenizer, PROMPTS, RESPONSES)]
    raw = rm.score(PROMPTS, RESPONSES)
    default, own, off, openrlhf = post_all(create_app({"rm": rm}, ServeConfig(length_penalty=0.2)), [
        ("/v1/score", {"items": ITEMS}), ("/v1/score", {"items": ITEMS, "length_penalty": 0.5}),
        ("/v1/score", {"items": ITEMS, "length_penalty": 0}), ("/get_reward", {"query": RESPONSES})])
    for answer, penalty in ((default, 0.2), (own, 0.5)):
        assert (answer["length_penalty"], answer["response_tokens"]) == (penalty, tokens)
        assert answer["rewards_raw"] == pytest.approx(raw, abs=1e-5)
        assert [r - p for r, p in zip(answer["rewards_raw"], answer["rewards"], strict=True)] == pytest.approx(
            [penalty * n for n in tokens], abs=1e-9)
    assert off["rewards"] == pytest.approx(raw, abs=1e-5) and "length_penalty" not in off
    logs = openrlhf["extra_logs"]
    assert [r - p for r, p in zip(logs["rewards_raw"], openrlhf["rewards"], strict=True)] == pytest.approx(
        [0.2 * n for n in logs["response_tokens"]], abs=1e-9)


def test_a_negative_penalty_is_a_422_naming_the_field(rm):
    async def send():
        async with asgi_client(create_app({"rm": rm})) as client:
            return await client.post("/v1/score", json={"items": ITEMS, "length_penalty": -1})

    reply = asyncio.run(send())
    assert reply.status_code == 422 and reply.json()["detail"].startswith("length_penalty: ")
