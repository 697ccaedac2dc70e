"""RewardClient and AsyncRewardClient: retry policy against mock transports, then real scoring against the app."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conftest import KEY, PROMPTS, RESPONSES, asgi_client, running_server, save_tiny_model
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.serving.app import create_app
from rewardkit.serving.client import AsyncRewardClient, RewardClient, RewardServiceError, backoff_delays
from rewardkit.serving.requests import ServeConfig


def scripted(*replies):
    """A mock transport answering with `replies` in order (an exception is raised instead); records requests."""
    sent = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        reply = replies[len(sent) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return httpx.MockTransport(handle), sent


def ok(n: int = 1) -> httpx.Response:
    return httpx.Response(200, json={"rewards": [0.5] * n, "usage": {"tokens": 3}, "warnings": []})


def client_with(*replies, retries: int = 3) -> tuple[RewardClient, list]:
    transport, sent = scripted(*replies)
    return RewardClient("http://rm", api_key="k", retries=retries, backoff_s=0, transport=transport), sent


def test_retries_5xx_and_connection_errors_then_succeeds():
    client, sent = client_with(httpx.Response(503, json={"detail": "draining"}), httpx.ConnectError("refused"), ok())
    assert client.score(["q"], ["a"]) == [0.5]
    assert len(sent) == 3 and sent[0].headers["authorization"] == "Bearer k"


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422])
def test_4xx_is_never_retried(status):
    client, sent = client_with(httpx.Response(status, json={"detail": "bad item", "items": [0]}), ok())
    with pytest.raises(RewardServiceError, match=f"answered {status}: bad item") as raised:
        client.score(["q"], ["a"])
    assert raised.value.status == status and len(sent) == 1


def test_retries_are_bounded():
    client, sent = client_with(*[httpx.Response(500, text="boom")] * 3, retries=2)
    with pytest.raises(RewardServiceError, match="answered 500: boom"):
        client.score(["q"], ["a"])
    assert len(sent) == 3
    client, sent = client_with(*[httpx.ConnectError("refused")] * 2, retries=1)
    with pytest.raises(RewardServiceError, match="could not reach") as raised:
        client.score(["q"], ["a"])
    assert raised.value.status is None and len(sent) == 2


def test_backoff_doubles():
    assert list(backoff_delays(3, 0.5)) == [0.0, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("body", [{"rewards": [0.5, 0.5]}, {"rewards": [None]}, {"rewards": ["NaN"]}, {}])
def test_a_reply_without_one_finite_reward_per_item_raises(body):
    client, _ = client_with(httpx.Response(200, json=body))
    with pytest.raises(RewardServiceError, match="no valid rewards"):
        client.score(["q"], ["a"])


def test_server_warnings_become_python_warnings():
    client, _ = client_with(httpx.Response(200, json={"rewards": [1.0], "warnings": ["item 0 looks templated"]}))
    with pytest.warns(UserWarning, match="item 0 looks templated"):
        client.score(["q"], ["a"])


def test_async_client_retries_like_the_sync_one():
    transport, sent = scripted(httpx.Response(502), ok(2))  # a MockTransport serves async clients too

    async def call():
        async with AsyncRewardClient("http://rm", retries=1, backoff_s=0, transport=transport) as client:
            return await client.score_messages([[{"role": "assistant", "content": "a"}]] * 2)

    assert asyncio.run(call()) == [0.5, 0.5] and len(sent) == 2
    assert sent[1].read() == sent[0].read() and b'"messages"' in sent[0].read()


def test_clients_against_the_real_service(llama_dir, tmp_path):
    """The sync client over loopback with auth; the async one in-process; both equal offline scores."""
    rm = RewardModel.from_pretrained(save_tiny_model(llama_dir, tmp_path, 0, Normalization(mean=1, std=2, n=5)))
    conversations = [[{"role": "user", "content": p}, {"role": "assistant", "content": r}]
                     for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    app = create_app({"llama": rm}, ServeConfig(api_key=KEY))
    with running_server(app) as (url, _), RewardClient(url, api_key=KEY) as client:
        assert client.score(PROMPTS, RESPONSES) == pytest.approx(rm.score(PROMPTS, RESPONSES), abs=1e-5)
        assert client.score_messages(conversations, normalize=True) == pytest.approx(
            rm.score(PROMPTS, RESPONSES, normalize=True), abs=1e-5)
        with pytest.raises(RewardServiceError) as raised:
            RewardClient(url, api_key="wrong").score(PROMPTS, RESPONSES)
        assert raised.value.status == 401

    async def score_async():
        app = create_app({"llama": rm})
        async with asgi_client(app), AsyncRewardClient("http://test", model="llama",
                                                       transport=httpx.ASGITransport(app=app)) as client:
            return await client.score(PROMPTS, RESPONSES)

    assert asyncio.run(score_async()) == pytest.approx(rm.score(PROMPTS, RESPONSES), abs=1e-5)
