"""Sampling from an OpenAI-compatible server (vLLM, llama.cpp's server, a hosted API) with the official client.

Each prompt goes out as chat completions. Its missing samples are asked for in one request with `n=` (and
`logprobs`, which gives each choice's exact token count); a server that returns fewer choices (llama.cpp's ignores
n), no logprobs, or an error to the first such request is from then on asked one sample per request, where
`usage.completion_tokens` is the count. At
most `concurrency` requests are in flight. Each single-sample request carries a seed derived from (seed, prompt_id,
sample_index), an n-request one from its first index, so two samples never share a seed.

Retries are the `openai` client's own (`max_retries`; read in openai 3.60's `_base_client`): on connection errors,
timeouts, 408, 409, 429 and 5xx it waits as the server's Retry-After / retry-after-ms header says (up to 120 s; a
longer one is not retried), else an exponential backoff (0.5 s doubling to 8 s, less up to 25% jitter), then tries
again; tests/sampling/test_sampling_endpoint.py checks this against a scripted server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import openai
from openai import AsyncOpenAI

from rewardkit.errors import ModelError
from rewardkit.sampling.local import Completion, SamplingParams, chat_messages, derived_seed
from rewardkit.sampling.prompts import PromptRecord

SEED_BITS = 31  # servers take a 32-bit seed at most (llama.cpp: uint32)
NO_KEY = "unused"  # the client needs some key; local servers ignore it


class EndpointSampler:
    """Draws completions from `model` at `base_url`; `description` is the pool's `sampler` record (the URL is not in
    it: the same model served elsewhere is the same distribution)."""

    def __init__(self, base_url: str, model: str, params: SamplingParams, *, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, max_retries: int = 5, timeout_s: float = 600) -> None:
        self.base_url, self.model, self.params = base_url, model, params
        self.client_options = {"base_url": base_url, "api_key": os.environ.get(api_key_env) or NO_KEY,
                               "max_retries": max_retries, "timeout": timeout_s}
        self.concurrency = concurrency
        self.client: AsyncOpenAI | None = None  # the client and the semaphore bind to the event loop that made them
        self.n_supported: bool | None = None  # None until the first request with n > 1 tells
        self.description = {"kind": "endpoint", "model": model, "temperature": params.temperature,
                            "top_p": params.top_p, "max_new_tokens": params.max_new_tokens, "seed": params.seed}

    async def sample(self, prompt: PromptRecord, indices: Sequence[int], n: int) -> dict[int, Completion]:
        """Completions for the prompt's sample `indices` (`n`, the prompt's total, is not needed here)."""
        indices = sorted(indices)
        messages = chat_messages(prompt.prompt)
        try:
            together = []
            if len(indices) > 1 and self.n_supported is not False:
                together = await self.together(messages, len(indices), self.seed(prompt, indices[0]))
            alone = await asyncio.gather(*(self.request(messages, 1, self.seed(prompt, index))
                                           for index in indices[len(together):]))
        except openai.APIStatusError as err:
            raise ModelError(f"endpoint {self.base_url} refused the request: HTTP {err.status_code}: "
                             f"{err.message}") from None
        except openai.APIConnectionError as err:
            raise ModelError(f"endpoint {self.base_url} did not answer ({err}) after "
                             f"{self.client_options['max_retries']} retries") from None
        return dict(zip(indices, together + [choices[0] for choices in alone], strict=True))

    async def together(self, messages: list[dict], n: int, seed: int) -> list[Completion]:
        """Up to `n` choices from one request. The first such requests probe the server, without retries: an error
        (other than 429) or fewer choices with a token count than asked means one request per sample from then on;
        a failed probe costs one request, its samples then asked one by one."""
        if self.n_supported:
            return await self.request(messages, n, seed)
        try:
            choices = await self.request(messages, n, seed, max_retries=0)
        except openai.APIStatusError as err:
            self.n_supported = None if err.status_code == 429 else False
            return []
        except openai.APIConnectionError:
            return []
        self.n_supported = len(choices) == n
        return choices

    def seed(self, prompt: PromptRecord, index: int) -> int:
        return derived_seed(self.params.seed, prompt.prompt_id, index, bits=SEED_BITS)

    async def request(self, messages: list[dict], n: int, seed: int, *,
                      max_retries: int | None = None) -> list[Completion]:
        """One chat completion request for `n` choices; with n > 1, the choices whose token count is known."""
        if self.client is None:
            self.client, self.requests = AsyncOpenAI(**self.client_options), asyncio.Semaphore(self.concurrency)
        client = self.client if max_retries is None else self.client.with_options(max_retries=max_retries)
        async with self.requests:
            reply = await client.chat.completions.create(
                model=self.model, messages=messages, n=n, temperature=self.params.temperature,
                top_p=self.params.top_p, max_tokens=self.params.max_new_tokens, seed=seed,
                **({"logprobs": True} if n > 1 else {}))
        if n == 1:
            return [completion(reply.choices[0], reply.usage.completion_tokens if reply.usage else None)]
        return [completion(choice, len(choice.logprobs.content)) for choice in reply.choices
                if choice.logprobs is not None and choice.logprobs.content is not None]

    async def aclose(self) -> None:
        """Close the client; the next request (in this event loop or another) opens a new one."""
        if self.client is not None:
            await self.client.close()
            self.client = None


def completion(choice, tokens: int | None) -> Completion:
    """A choice as a Completion; a finish reason other than stop / length, or no token count, is a ModelError."""
    if choice.finish_reason not in ("stop", "length"):
        raise ModelError(f"the endpoint ended a reply with finish_reason {choice.finish_reason!r}; a pool takes only "
                         "'stop' or 'length'")
    if tokens is None:
        raise ModelError("the endpoint's reply has no usage.completion_tokens: its token count is unknown")
    return Completion(choice.message.content or "", tokens, choice.finish_reason)
