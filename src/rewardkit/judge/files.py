"""One `rewardkit judge` run from files: items in, pairs (and a report) out, through the cache.

    report = judge_file(judge, "pairs.jsonl", "judged.jsonl", options=JudgeOptions(), against=False)

The output pairs are written atomically (rebuilt from the cache on every run, so a resumed run writes them all).
The cache defaults to OUTPUT.cache.jsonl beside the output. `against` scores the judge on the input's human labels
(`rewardkit.judge.quality`); `max_items` judges a seeded random subset; `dry_run` only counts what would be asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rewardkit.errors import ConfigError
from rewardkit.io import check_output_file, finite_or_none, write_json_atomic, write_jsonl_atomic
from rewardkit.judge.cache import JudgeCache
from rewardkit.judge.items import load_items
from rewardkit.judge.judges import Judge
from rewardkit.judge.principles import Constitution
from rewardkit.judge.quality import judge_quality
from rewardkit.judge.run import JudgeOptions, dry_run, judge_items


@dataclass(frozen=True)
class FileOptions:
    format: str = "auto"
    on_bad_record: Literal["error", "skip"] = "error"
    max_items: int | None = None
    cache: Path | None = None
    report: Path | None = None
    revise: bool = False
    max_new_tokens: int = 256
    dry_run: bool = False
    against: bool = False
    bootstrap: int = 1000


def default_cache(output: Path) -> Path:
    return output.with_name(f"{output.name}.cache.jsonl")


def judge_file(judge: Judge, constitution: Constitution, input: str | Path, output: str | Path,
               options: JudgeOptions, files: FileOptions) -> dict:
    """The run's report (also written to `files.report` when given): the run summary, and with `against` the
    judge's quality on the input's human labels."""
    output = Path(output)
    for path in (output, files.report):
        if path is not None:
            check_output_file(path)
    cache = JudgeCache(files.cache or default_cache(output))
    if files.revise:
        return revise_file(judge, constitution, input, output, options, files, cache)
    loaded = load_items(input, format=files.format, seed=options.seed, on_bad_record=files.on_bad_record)
    items = loaded.items
    if files.max_items is not None and files.max_items < len(items):
        items = random.Random(options.seed).sample(items, files.max_items)
    if files.against and not any(item.human is not None for item in items):
        raise ConfigError(f"--against {input}: its records carry no human preference labels ({loaded.kind} input)")
    if files.dry_run:
        return dry_run(items, judge, constitution, cache, options)
    result = judge_items(items, judge, constitution, cache, options)
    write_jsonl_atomic(output, result.pairs)
    report = {"input": str(input), "output": str(output), "cache": str(cache.path), "input_kind": loaded.kind,
              "input_notes": loaded.notes, "cache_torn_lines": cache.torn_lines, **result.summary}
    if files.against:
        report["quality"] = judge_quality(result.outcomes, bootstrap=files.bootstrap, seed=options.seed)
    return finish(report, files)


def revise_file(judge: Judge, constitution: Constitution, input: str | Path, output: Path, options: JudgeOptions,
                files: FileOptions, cache: JudgeCache) -> dict:
    from rewardkit.judge.cai import load_drafts, revise

    if files.against or files.dry_run:
        raise ConfigError("--revise writes (revision, original) pairs; it takes neither --against nor --dry-run")
    drafts = load_drafts(input)
    if files.max_items is not None and files.max_items < len(drafts):
        drafts = random.Random(options.seed).sample(drafts, files.max_items)
    result = revise(drafts, judge, constitution, cache, options, max_new_tokens=files.max_new_tokens)
    write_jsonl_atomic(output, result.pairs)
    return finish({"input": str(input), "output": str(output), "cache": str(cache.path), **result.summary}, files)


def finish(report: dict, files: FileOptions) -> dict:
    report = finite_or_none(report)
    if files.report is not None:
        write_json_atomic(files.report, report)
    return report
