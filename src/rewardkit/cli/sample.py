"""`rewardkit sample`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rewardkit.cli.common import SeedOption, console, quiet_transformers, user_errors, warn
from rewardkit.errors import ConfigError
from rewardkit.precision import Precision
from rewardkit.sampling.local import SamplingParams
from rewardkit.sampling.prompts import load_prompts
from rewardkit.sampling.run import SampleSummary, sample_pool

DEFAULT_POLICY = "smollm2-135m"


@user_errors
def sample(
    prompts: Annotated[str, typer.Option(metavar="FILE", help=(
        "Prompts: JSONL/JSON of {prompt, prompt_id?, ...}, GSM8K {question, answer}, or a preference file."))],
    output: Annotated[Path, typer.Option(metavar="POOL", help=(
        "The pool (JSONL, appended); rerunning the same command resumes it."))],
    n: Annotated[int, typer.Option("--n", min=1, metavar="N", help="Samples per prompt.")],
    policy: Annotated[str | None, typer.Option(metavar="NAME|DIR", help=(
        f"Local causal LM: a built-in name, a model directory or a .gguf file (default {DEFAULT_POLICY})."))] = None,
    endpoint: Annotated[str | None, typer.Option(metavar="URL", help=(
        "An OpenAI-compatible server's base URL, e.g. http://127.0.0.1:8000/v1, instead of a local policy."))] = None,
    model: Annotated[str | None, typer.Option(metavar="NAME", help="The model to ask the endpoint for.")] = None,
    api_key_env: Annotated[str, typer.Option(metavar="VAR", help=(
        "Environment variable holding the endpoint's API key (may be unset for local servers)."))] = "OPENAI_API_KEY",
    temperature: Annotated[float, typer.Option(min=0, metavar="T", help="Sampling temperature; 0: greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0, max=1, metavar="P", help=(
        "Nucleus sampling: keep the most likely tokens up to probability P (over 0)."))] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, metavar="N", help="Tokens per response at most.")] = 256,
    seed: SeedOption = 0,
    batch_size: Annotated[int, typer.Option(min=1, metavar="N", help=(
        "Local policy: samples of one prompt decoded together."))] = 16,
    concurrency: Annotated[int, typer.Option(min=1, metavar="N", help="Endpoint: requests in flight at most.")] = 8,
    precision: Annotated[Precision, typer.Option(help=(
        "Local policy: bf16 or fp32; auto: fp32 for a GGUF policy, else bf16 where the hardware is fast at it."))
    ] = "auto",
    limit: Annotated[int | None, typer.Option(min=1, metavar="N", help="Only the first N distinct prompts.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Sample N responses per prompt from a policy into a pool.

    One JSON line per sample (see rewardkit.sampling.pool); the sampling parameters are recorded on each, and a
    pool made with other ones is refused instead of mixed.
    """
    quiet_transformers()
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    prompt_set = load_prompts(prompts, limit=limit)
    if endpoint is not None:
        if policy is not None or model is None:
            raise ConfigError("--endpoint takes --model NAME (the served model), and no --policy")
        from rewardkit.sampling.endpoint import EndpointSampler

        sampler = EndpointSampler(endpoint, model, params, api_key_env=api_key_env, concurrency=concurrency)
    else:
        if model is not None:
            raise ConfigError("--model names an endpoint's model; for a local policy use --policy")
        from rewardkit.sampling.local import LocalSampler, policy_precision

        policy = policy or DEFAULT_POLICY
        sampler = LocalSampler(policy, params, precision=policy_precision(precision, policy), batch_size=batch_size)
    report(sample_pool(prompt_set, sampler, output, n, progress=progress))


def report(summary: SampleSummary) -> None:
    if summary.torn_bytes:
        warn(f"{summary.output}: cut a torn last line ({summary.torn_bytes} bytes) left by a killed run")
    if summary.repeated_prompts:
        warn(f"{summary.repeated_prompts} prompt records repeated an earlier prompt; each prompt is sampled once")
    resumed = f", {summary.already_in_pool} already there" if summary.already_in_pool else ""
    console.print(f"sampled {summary.written} responses ({summary.generated_tokens} tokens) for {summary.prompts} "
                  f"prompts{resumed} -> {summary.output}", highlight=False)
