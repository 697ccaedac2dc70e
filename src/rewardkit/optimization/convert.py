"""Published best-of-N files as pools, so `rewardkit overopt` runs on them offline (scores already in the file):

    python -m rewardkit.optimization.convert bon-math ../shared/data/qwen25math-bon-math-cot-100.jsonl pool.jsonl
    rewardkit overopt --pool pool.jsonl --proxy-field pred_score --gold-field correct --output-dir runs/overopt-math

- `bon-math` (Qwen2.5-Math's best-of-8 MATH file): one line per `code` response, with `pred_score` (the 72B reward
  model's score), `correct` (its `score`), `answer` (its `pred`) and `reference` (`gt`);
- `gsm8k-solutions` (GSM8K's four sampled solutions per question): `correct` (`is_correct`), `generator` (which of
  the four) and `reference` (the ground-truth solution, ending "A: x"); `--skip N` leaves out the first N questions
  (those a proxy was trained on).

These files carry neither token counts nor finish reasons: `tokens` is the response's whitespace-separated word
count and `finish_reason` is "stop", as the `sampler` field of every line says.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

from rewardkit.data.importers import require_field, string_field
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError
from rewardkit.io import write_jsonl_atomic

GSM8K_GENERATORS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def imported_sampler(source: Path) -> dict:
    return {"kind": "imported", "source": source.name, "tokens": "whitespace-separated words (not in the source)",
            "finish_reason": "not in the source: every line says stop"}


def sample(prompt_id: str, prompt: str, index: int, response: str, sampler: dict, **extra) -> dict:
    return {"prompt_id": prompt_id, "prompt": prompt, "sample_index": index, "response": response,
            "tokens": len(response.split()), "finish_reason": "stop", "sampler": sampler, **extra}


def bon_math_samples(record: dict, number: int, sampler: dict) -> Iterator[dict]:
    question = string_field(require_field(record, "question"), "question")
    fields = {name: require_field(record, name) for name in ("code", "pred_score", "score", "pred")}
    if len({len(values) for values in fields.values()}) != 1:
        raise DataError("fields 'code', 'pred_score', 'score', 'pred': expected lists of one length")
    for i, (response, score, correct, answer) in enumerate(zip(*fields.values(), strict=True)):
        yield sample(str(record.get("idx", number)), question, i, string_field(response, f"code[{i}]"), sampler,
                     pred_score=score[0] if isinstance(score, list) else score, correct=correct, answer=answer,
                     reference=str(require_field(record, "gt")))


def gsm8k_samples(record: dict, number: int, sampler: dict) -> Iterator[dict]:
    question = string_field(require_field(record, "question"), "question")
    reference = string_field(require_field(record, "ground_truth"), "ground_truth")
    for i, generator in enumerate(GSM8K_GENERATORS):
        solution = require_field(record, generator)
        yield sample(str(number), question, i, string_field(require_field(solution, "solution", generator),
                                                           f"{generator}.solution"), sampler,
                     correct=require_field(solution, "is_correct", generator), generator=generator,
                     reference=reference)


CONVERTERS: dict[str, Callable[[dict, int, dict], Iterator[dict]]] = {
    "bon-math": bon_math_samples, "gsm8k-solutions": gsm8k_samples}


def convert(kind: str, source: str | Path, output: str | Path, *, skip: int = 0) -> int:
    """Write the pool of `source` (format `kind`) to `output`; returns the number of samples."""
    source = Path(source)
    sampler = imported_sampler(source)
    samples = []
    for number, (location, record) in enumerate(read_records(source)):
        if number < skip:
            continue
        try:
            samples += CONVERTERS[kind](record, number, sampler)
        except DataError as err:
            raise DataError(f"{location}: {err}") from None
    write_jsonl_atomic(output, samples)
    return len(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert a published best-of-N file into a rewardkit pool.")
    parser.add_argument("kind", choices=sorted(CONVERTERS))
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N records")
    args = parser.parse_args(argv)
    print(f"{convert(args.kind, args.source, args.output, skip=args.skip)} samples -> {args.output}")


if __name__ == "__main__":
    main()
