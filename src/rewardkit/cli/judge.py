"""`rewardkit judge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rewardkit.cli.common import (
    FormatOption,
    OnBadRecordOption,
    PrecisionOption,
    SeedOption,
    console,
    err_console,
    print_json,
    quiet_transformers,
    user_errors,
    warn,
)
from rewardkit.errors import ConfigError
from rewardkit.judge.files import FileOptions, judge_file
from rewardkit.judge.principles import load_constitution
from rewardkit.judge.run import JudgeOptions

DEFAULT_JUDGE = "smollm2-135m"


@user_errors
def judge(
    output: Annotated[Path, typer.Option(metavar="FILE", help=(
        "Judged pairs (JSONL, rewardkit's pair format with votes, agreement, confidence, judge, principle)."))],
    input: Annotated[str | None, typer.Option(metavar="FILE", help=(
        "Pairs in any format rewardkit imports, {prompt, responses: [2+]}, or a `rewardkit sample` pool."))] = None,
    against: Annotated[str | None, typer.Option(metavar="FILE", help=(
        "Human-labelled pairs to judge and score the judge on (agreement, kappa, biases)."))] = None,
    model: Annotated[str | None, typer.Option("--judge", metavar="NAME|DIR", help=(
        f"Local chat model: built-in name, directory or .gguf (default {DEFAULT_JUDGE})."))] = None,
    endpoint: Annotated[str | None, typer.Option(metavar="URL", help=(
        "An OpenAI-compatible server's base URL, e.g. http://127.0.0.1:8080/v1, instead of a local judge."))] = None,
    endpoint_model: Annotated[str | None, typer.Option("--model", metavar="NAME", help=(
        "The model to ask the endpoint for."))] = None,
    api_key_env: Annotated[str, typer.Option(metavar="VAR", help=(
        "Environment variable holding the endpoint's API key (may be unset for local servers)."))] = "OPENAI_API_KEY",
    principles: Annotated[Path | None, typer.Option(metavar="YAML", help=(
        "The constitution (default: the shipped six principles)."))] = None,
    principle: Annotated[list[str] | None, typer.Option(metavar="NAME", help=(
        "Judge under this principle only (repeatable; default: all of them)."))] = None,
    principle_mode: Annotated[Literal["sample", "each"], typer.Option(help=(
        "sample: one seeded principle per pair; each: every principle, one output pair each."))] = "sample",
    require_agreement: Annotated[Literal["tie", "drop"] | None, typer.Option(help=(
        "When the two orders disagree: make the pair a tie, or drop it (default: keep, agreement 0.5)."))] = None,
    confidence_as: Annotated[Literal["weight", "margin", "none"], typer.Option(help=(
        "Write the confidence as the pair's weight, as its margin (2p - 1), or not at all."))] = "weight",
    cache: Annotated[Path | None, typer.Option(metavar="FILE", help=(
        "The answer cache (append-only JSONL; default OUTPUT.cache.jsonl)."))] = None,
    report: Annotated[Path | None, typer.Option(metavar="FILE", help=(
        "Write the run's summary (and --against's quality report) as JSON."))] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help=(
        "Ask again the requests whose failure is in the cache."))] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=(
        "Print how many calls and input tokens the run would make, and stop."))] = False,
    revise: Annotated[bool, typer.Option("--revise", help=(
        "Constitutional AI: critique and revise each {prompt, response}; write (revision, original) pairs."))] = False,
    max_new_tokens: Annotated[int, typer.Option(min=1, metavar="N", help=(
        "--revise: tokens per critique or revision at most."))] = 256,
    max_items: Annotated[int | None, typer.Option(min=1, metavar="N", help=(
        "Judge a seeded random N of the pairs."))] = None,
    format: FormatOption = "auto",
    on_bad_record: OnBadRecordOption = "error",
    batch_size: Annotated[int, typer.Option(min=1, metavar="N", help="Local judge: chats per forward pass.")] = 8,
    precision: PrecisionOption = "auto",
    concurrency: Annotated[int, typer.Option(min=1, metavar="N", help="Endpoint: requests in flight at most.")] = 8,
    max_retries: Annotated[int, typer.Option(min=0, metavar="N", help=(
        "Endpoint: retries of a 429, 5xx, timeout or malformed answer."))] = 5,
    timeout: Annotated[float, typer.Option(min=0.001, metavar="SECONDS", help=(
        "Endpoint: time limit of one request."))] = 60.0,
    logprobs: Annotated[bool, typer.Option(help=(
        "Endpoint: ask for top_logprobs (a confidence); off: parse the verdict text."))] = True,
    seed: SeedOption = 0,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Label preference pairs with an AI judge against principles.

    Every pair is judged in both orders (position bias is measured, not hidden). Answers are cached, so a killed
    run resumes without asking twice; a request that keeps failing is a failure record (see --retry-failed).
    """
    quiet_transformers()
    if (input is None) == (against is None):
        raise ConfigError("give the pairs to judge as --input FILE, or human-labelled ones as --against FILE")
    constitution = load_constitution(principles)
    options = JudgeOptions(principles=tuple(principle) if principle else None, principle_mode=principle_mode,
                           require_agreement=require_agreement, confidence_as=confidence_as,
                           retry_failed=retry_failed, seed=seed, show_progress=progress)
    files = FileOptions(format=format, on_bad_record=on_bad_record, max_items=max_items, cache=cache, report=report,
                        revise=revise, max_new_tokens=max_new_tokens, dry_run=dry_run, against=against is not None)
    the_judge = build_judge(model, endpoint, endpoint_model, api_key_env=api_key_env, batch_size=batch_size,
                            precision=precision, concurrency=concurrency, max_retries=max_retries, timeout=timeout,
                            logprobs=logprobs)
    summary = judge_file(the_judge, constitution, input or against, output, options, files)
    show(summary, dry_run=dry_run)


def build_judge(model: str | None, endpoint: str | None, endpoint_model: str | None, *, api_key_env: str,
                batch_size: int, precision: str, concurrency: int, max_retries: int, timeout: float,
                logprobs: bool):
    if endpoint is not None:
        if model is not None or endpoint_model is None:
            raise ConfigError("--endpoint takes --model NAME (the served model), and no --judge")
        from rewardkit.judge.endpoint import EndpointJudge

        return EndpointJudge(endpoint, endpoint_model, api_key_env=api_key_env, concurrency=concurrency,
                             max_retries=max_retries, timeout_s=timeout, logprobs=logprobs)
    if endpoint_model is not None:
        raise ConfigError("--model names an endpoint's model; for a local judge use --judge")
    from rewardkit.judge.judges import LocalJudge
    from rewardkit.precision import resolve_precision

    return LocalJudge(model or DEFAULT_JUDGE, batch_size=batch_size, precision=resolve_precision(precision))


def show(summary: dict, *, dry_run: bool) -> None:
    if dry_run:
        console.print(f"dry run: {summary['calls']} calls ({summary['cached']} of {summary['comparisons']} "
                      f"comparisons already cached), about {summary['input_tokens']} input tokens, judge "
                      f"{summary['judge']}", highlight=False)
        return
    for failure in summary["failures"][:5]:
        warn(f"{failure['id']} ({failure['principle']}): {failure['error']}")
    if summary["failed"]:
        warn(f"{summary['failed']} failed (not in the output); rerun with --retry-failed to ask again")
    line = f"{summary['pairs']} pairs -> {summary['output']}"
    if "consistency_rate" in summary:
        line += (f"  (judged {summary['judged']}, {summary['calls']} calls, {summary['cached']} cached; "
                 f"consistency {fmt(summary['consistency_rate'])}, first-slot wins "
                 f"{fmt(summary['first_slot_win_rate'])})")
    console.print(line, highlight=False)
    if summary.get("cache_torn_lines"):
        err_console.print("note: the cache's torn last line (a killed run) was cut and asked again")
    if "quality" in summary:
        print_json(summary["quality"])


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
