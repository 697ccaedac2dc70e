"""A judge behind any OpenAI-compatible chat completions endpoint, through the official `openai` client.

    judge = EndpointJudge("http://127.0.0.1:8080/v1", "smollm2", api_key_env="OPENAI_API_KEY", concurrency=8)
    judge.compare([messages], labels=("A", "B"))

The verdict is read from the first answer token's `top_logprobs` (the probability of each label's token, with or
without a leading space; "tie" in any case; a label not among them has probability 0) where the server gives
them, else parsed from the answer text (the
first label word in it, probability 1). An answer with neither is a Failure. At most `concurrency` requests are in
flight. A 429, a 5xx, a timeout, a dropped connection or a body that is not the JSON promised is retried up to
`max_retries` times, after the server's `Retry-After` (seconds or an HTTP date; capped at `max_backoff_s`) or else
an exponential backoff with jitter; the last error becomes the request's Failure. Another 4xx (a request the server
refuses) is a Failure at once; 401, 403 and 404 (bad key, no access, wrong URL or model) are a ModelError that
stops the run: every request would fail the same way.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence

from rewardkit.data.records import Message
from rewardkit.errors import ConfigError, ModelError
from rewardkit.judge.judges import Failure, Verdict, verdict_from_probabilities
from rewardkit.judge.principles import TIE

CHARS_PER_TOKEN = 4  # `count_tokens` estimates: the endpoint's tokenizer is not known here
FATAL_STATUS = {401: "the API key was refused", 403: "access denied", 404: "no such URL or model"}


def retry_after_seconds(headers, now: float | None = None) -> float | None:
    """Seconds the server asks to wait (`retry-after-ms`, or `Retry-After` in seconds or as an HTTP date)."""
    if headers is None:
        return None
    if headers.get("retry-after-ms"):
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def label_of(token: str, labels: Sequence[str]) -> str | None:
    stripped = token.strip()
    return next((label for label in labels if stripped == label or (label == TIE and stripped.lower() == TIE)), None)


def verdict_from_logprobs(choice, labels: Sequence[str]) -> Verdict | None:
    """The labels' probabilities at the first answer token, or None when the server sent no usable logprobs."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content or not content[0].top_logprobs:  # none, or cut short: the alternatives are unknown
        return None
    first = content[0]
    candidates = {(first.token, first.logprob)} | {(t.token, t.logprob) for t in first.top_logprobs}
    mass = dict.fromkeys(labels, 0.0)
    for token, logprob in candidates:
        label = label_of(token, labels)
        if label is not None and logprob is not None and math.isfinite(logprob):
            mass[label] += math.exp(logprob)
    try:
        return verdict_from_probabilities(mass, "logprobs")
    except ValueError:
        return None


def verdict_from_text(text: str, labels: Sequence[str]) -> Verdict | None:
    """The first label word in the answer, with probability 1; None when there is none."""
    pattern = "|".join(re.escape(label) for label in labels)
    found = re.search(rf"\b({pattern})\b", text, flags=re.IGNORECASE if TIE in labels else 0)
    if found is None:
        return None
    label = label_of(found.group(1), labels) or found.group(1)
    return Verdict({name: float(name == label) for name in labels}, "text")


class EndpointJudge:
    """See the module docstring. The key is read from environment variable `api_key_env` (a loopback server needs
    none: unset, a placeholder is sent)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 max_retries: int = 5, timeout_s: float = 60.0, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 logprobs: bool = True, top_logprobs: int = 10, max_tokens: int = 4) -> None:
        import openai  # lazy: only endpoint judges need it

        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ConfigError("concurrency must be >= 1, max_retries >= 0 and timeout_s > 0")
        self.openai, self.base_url, self.model = openai, base_url, model
        self.api_key = os.environ.get(api_key_env) or "unused"
        self.id, self.batch_size = f"openai:{model}", concurrency * 4
        self.concurrency, self.max_retries, self.timeout_s = concurrency, max_retries, timeout_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.logprobs, self.top_logprobs, self.max_tokens = logprobs, top_logprobs, max_tokens
        self.api_key_env = api_key_env

    def count_tokens(self, chat: list[Message]) -> int:
        return math.ceil(sum(len(message["content"]) for message in chat) / CHARS_PER_TOKEN)

    def compare(self, chats: Sequence[list[Message]], labels: Sequence[str]) -> list[Verdict | Failure]:
        return asyncio.run(self.run_all(chats, lambda client, chat: self.compare_one(client, chat, labels)))

    def generate(self, chats: Sequence[list[Message]], *, max_new_tokens: int) -> list[str | Failure]:
        return asyncio.run(self.run_all(chats, lambda client, chat: self.generate_one(client, chat, max_new_tokens)))

    async def run_all(self, chats, ask: Callable[..., Awaitable]) -> list:
        limit = asyncio.Semaphore(self.concurrency)

        async def bounded(client, chat):
            async with limit:
                return await ask(client, chat)

        async with self.openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s,
                                           max_retries=0) as client:
            return await asyncio.gather(*(bounded(client, chat) for chat in chats))

    async def compare_one(self, client, chat: list[Message], labels: Sequence[str]) -> Verdict | Failure:
        extra = {"logprobs": True, "top_logprobs": self.top_logprobs} if self.logprobs else {}
        response = await self.with_retries(lambda: client.chat.completions.create(
            model=self.model, messages=chat, max_tokens=self.max_tokens, temperature=0.0, **extra))
        if isinstance(response, Failure):
            return response
        if not response.choices:
            return Failure("the endpoint answered with no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        verdict = verdict_from_logprobs(choice, labels) or verdict_from_text(text, labels)
        return verdict or Failure(f"no verdict ({' or '.join(labels)}) in the answer {text[:80]!r}")

    async def generate_one(self, client, chat: list[Message], max_new_tokens: int) -> str | Failure:
        response = await self.with_retries(lambda: client.chat.completions.create(
            model=self.model, messages=chat, max_tokens=max_new_tokens, temperature=0.0))
        if isinstance(response, Failure):
            return response
        if not response.choices or response.choices[0].message.content is None:
            return Failure("the endpoint answered with no text")
        return response.choices[0].message.content.strip()

    async def with_retries(self, request: Callable[[], Awaitable]):
        """`await request()`, retried as the module docstring says; a Failure when every attempt failed."""
        openai, attempts = self.openai, 0
        while True:
            attempts += 1
            try:
                return await request()
            except openai.APIStatusError as err:
                status = err.status_code
                if status in FATAL_STATUS:
                    raise ModelError(f"endpoint {self.base_url} model {self.model}: {FATAL_STATUS[status]} "
                                     f"(HTTP {status}; the key is read from ${self.api_key_env})") from None
                error, wait = f"HTTP {status}: {one_line(err.message)}", retry_after_seconds(err.response.headers)
                if status != 429 and status < 500:
                    return Failure(error, attempts)
            except (openai.APITimeoutError, openai.APIConnectionError) as err:
                error, wait = f"{type(err).__name__}: {one_line(str(err))}", None
            except (openai.APIResponseValidationError, ValueError) as err:  # a body that is not the JSON promised
                error, wait = f"malformed response: {one_line(str(err))}", None
            if attempts > self.max_retries:
                return Failure(error, attempts)
            await asyncio.sleep(self.delay(attempts - 1, wait))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return min(self.backoff_s * 2 ** attempt, self.max_backoff_s) * random.uniform(0.5, 1.0)


def one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]
