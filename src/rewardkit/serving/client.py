"""A client for `rewardkit serve`:

    client = RewardClient("http://127.0.0.1:8000", api_key=os.environ["RK_KEY"])
    client.score(["What is 2+2?"], ["4"])                                   # -> [1.73]
    client.score_messages([[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]])
    async with AsyncRewardClient(url) as client: await client.score(prompts, responses)

Send raw prompts and responses (or messages): the server applies the model's scoring spec. Failed requests are
retried with exponential backoff on 5xx and connection errors only (a 4xx will fail the same way again), then
raise `RewardServiceError`; a reply without one finite reward per item raises too. Warnings the server attaches
(e.g. input that looks already templated) are re-issued as Python `UserWarning`s.
"""

from __future__ import annotations

import asyncio
import math
import time
import warnings
from collections.abc import Iterator, Sequence

import httpx


class RewardServiceError(Exception):
    """The service could not score a request; `status` is the HTTP status (None for connection errors)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RewardClient:
    """Blocking client; `transport` lets tests pass an httpx mock or in-process transport."""

    def __init__(self, url: str, api_key: str | None = None, *, model: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        self.model, self.retries, self.backoff_s = model, retries, backoff_s
        self.http = httpx.Client(base_url=url, headers=auth_headers(api_key), timeout=timeout, transport=transport)

    def score(self, prompts: Sequence, responses: Sequence, *, normalize: bool = False) -> list[float]:
        """One reward per (prompt, response); either may be text or a list of chat messages."""
        return self.score_items(pair_items(prompts, responses), normalize=normalize)["rewards"]

    def score_messages(self, conversations: Sequence[list[dict]], *, normalize: bool = False) -> list[float]:
        """One reward per conversation; its last message is the assistant reply scored."""
        return self.score_items([{"messages": c} for c in conversations], normalize=normalize)["rewards"]

    def score_items(self, items: list[dict], *, normalize: bool = False) -> dict:
        """The whole /v1/score reply (rewards, usage, warnings, and uncertainty for ensembles)."""
        body = score_body(items, self.model, normalize)
        failure = None
        for delay in backoff_delays(self.retries, self.backoff_s):
            time.sleep(delay)
            try:
                response = self.http.post("/v1/score", json=body)
            except httpx.TransportError as err:
                failure = connection_error(err)
                continue
            if (failure := reply_error(response)) is None:
                return checked_reply(response, len(items))
            if not retryable(failure):
                break
        raise failure

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class AsyncRewardClient:
    """The asyncio twin of `RewardClient` (same arguments, awaitable methods)."""

    def __init__(self, url: str, api_key: str | None = None, *, model: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.model, self.retries, self.backoff_s = model, retries, backoff_s
        self.http = httpx.AsyncClient(base_url=url, headers=auth_headers(api_key), timeout=timeout,
                                      transport=transport)

    async def score(self, prompts: Sequence, responses: Sequence, *, normalize: bool = False) -> list[float]:
        return (await self.score_items(pair_items(prompts, responses), normalize=normalize))["rewards"]

    async def score_messages(self, conversations: Sequence[list[dict]], *, normalize: bool = False) -> list[float]:
        return (await self.score_items([{"messages": c} for c in conversations], normalize=normalize))["rewards"]

    async def score_items(self, items: list[dict], *, normalize: bool = False) -> dict:
        body = score_body(items, self.model, normalize)
        failure = None
        for delay in backoff_delays(self.retries, self.backoff_s):
            await asyncio.sleep(delay)
            try:
                response = await self.http.post("/v1/score", json=body)
            except httpx.TransportError as err:
                failure = connection_error(err)
                continue
            if (failure := reply_error(response)) is None:
                return checked_reply(response, len(items))
            if not retryable(failure):
                break
        raise failure

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def pair_items(prompts: Sequence, responses: Sequence) -> list[dict]:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    return [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]


def score_body(items: list[dict], model: str | None, normalize: bool) -> dict:
    return {"items": items, "normalize": normalize} | ({"model": model} if model else {})


def backoff_delays(retries: int, backoff_s: float) -> Iterator[float]:
    """The wait before each attempt: 0, then backoff_s doubling, `retries` times."""
    yield 0.0
    for attempt in range(retries):
        yield backoff_s * 2**attempt


def retryable(error: RewardServiceError) -> bool:
    """Connection errors and 5xx may pass on their own; a 4xx will fail the same way again."""
    return error.status is None or error.status >= 500


def connection_error(err: httpx.TransportError) -> RewardServiceError:
    return RewardServiceError(f"could not reach the reward service: {type(err).__name__}: {err}")


def reply_error(response: httpx.Response) -> RewardServiceError | None:
    """None for a success; otherwise the server's `detail` (and the items it names) as an error."""
    if response.is_success:
        return None
    try:
        body = response.json()
        detail = body.get("detail", body)
    except ValueError:
        detail = response.text[:500]
    return RewardServiceError(f"reward service answered {response.status_code}: {detail}", response.status_code)


def checked_reply(response: httpx.Response, expected: int) -> dict:
    """The reply, once it holds exactly one finite reward per item; server warnings become UserWarnings."""
    body = response.json()
    rewards = body.get("rewards")
    if not isinstance(rewards, list) or len(rewards) != expected or not all(
            isinstance(r, (int, float)) and math.isfinite(r) for r in rewards):
        raise RewardServiceError(f"reward service sent no valid rewards for {expected} items: {str(body)[:500]}",
                                 response.status_code)
    for message in body.get("warnings", []):
        warnings.warn(f"reward service: {message}", UserWarning, stacklevel=3)
    return body
