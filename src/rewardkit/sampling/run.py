"""`sample_pool`: draw N samples per prompt into a pool, resuming what a killed run left.

    prompts = load_prompts("gsm8k-test.jsonl", limit=50)
    sampler = LocalSampler("smollm2-135m", SamplingParams(temperature=1.0, max_new_tokens=256, seed=0))
    summary = sample_pool(prompts, sampler, "runs/pool.jsonl", n=16)

Each prompt's missing samples are drawn, then written as one group (`PoolWriter`); prompts already complete in the
pool are skipped, so rerunning the same command after a kill finishes the pool and draws nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.progress import Progress

from rewardkit.io import check_output_file
from rewardkit.progress import counting_progress
from rewardkit.sampling.local import Completion
from rewardkit.sampling.pool import PoolSample, PoolWriter
from rewardkit.sampling.prompts import PromptRecord, PromptSet


class Sampler(Protocol):
    """What `sample_pool` draws from (`LocalSampler`, `EndpointSampler`)."""

    description: dict[str, Any]  # the pool's `sampler` record
    concurrency: int  # prompts drawn at once

    async def sample(self, prompt: PromptRecord, indices: Sequence[int], n: int) -> dict[int, Completion]:
        """Completions for `indices` among the prompt's `n` samples."""

    async def aclose(self) -> None:
        """Release what the sampler holds open (an HTTP client)."""


@dataclass(frozen=True)
class SampleSummary:
    prompts: int  # distinct prompts asked for
    repeated_prompts: int  # input records that repeated a prompt (sampled once)
    already_in_pool: int  # samples a previous run had written
    written: int  # samples written now
    generated_tokens: int  # tokens of the samples written now
    torn_bytes: int  # a killed run's cut-short last line, truncated away
    output: str


def sample_pool(prompts: PromptSet, sampler: Sampler, output: str | Path, n: int, *,
                progress: bool = True) -> SampleSummary:
    """Draw samples 0 .. n-1 of every prompt that the pool at `output` lacks, one prompt group per write."""
    check_output_file(output)
    with PoolWriter(output, sampler.description) as pool:
        todo = [(prompt, missing) for prompt in prompts.prompts
                if (missing := [i for i in range(n) if (prompt.prompt_id, i) not in pool.done])]
        already = len(prompts.prompts) * n - sum(len(missing) for _, missing in todo)
        with counting_progress(enabled=progress) as bar:
            tokens = asyncio.run(draw_all(sampler, todo, n, pool, bar))
    return SampleSummary(len(prompts.prompts), prompts.repeated, already,
                         sum(len(missing) for _, missing in todo), tokens, pool.torn_bytes, str(output))


async def draw_all(sampler: Sampler, todo: list[tuple[PromptRecord, list[int]]], n: int, pool: PoolWriter,
                   bar: Progress) -> int:
    """Draw every prompt's missing samples, `sampler.concurrency` prompts at a time; the tokens generated."""
    task = bar.add_task("sample", total=sum(len(missing) for _, missing in todo), unit="samples")
    prompts_at_once = asyncio.Semaphore(sampler.concurrency)

    async def draw(prompt: PromptRecord, missing: list[int]) -> int:
        async with prompts_at_once:
            completions = await sampler.sample(prompt, missing, n)
        group = [PoolSample(prompt.prompt_id, prompt.prompt, index, c.response, c.tokens, c.finish_reason,
                            sampler.description, prompt.extra) for index, c in sorted(completions.items())]
        pool.write_group(group)
        bar.advance(task, len(group))
        return sum(sample.tokens for sample in group)

    try:
        return sum(await asyncio.gather(*(draw(prompt, missing) for prompt, missing in todo)))
    finally:
        await sampler.aclose()
