"""Scoring benchmarks, in one process: rewardkit's scorer against a one-at-a-time loop and fixed padded batches,
and best-of-N with prefix sharing against independent scoring.

    python bench/score_one.py --pairs pairs.jsonl --responses 2000 --bon-prompts 8 --precision bf16 --out score.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import torch

from rewardkit.data.preferences import load_preferences
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel
from rewardkit.precision import DTYPES, resolve_precision

SCORE_BACKBONE, BON_BACKBONE, BON_N = "minilm-l6", "smollm2-135m", 16


def matmul_peak_tflops(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def model_flops(rm: RewardModel, lengths: list[int]) -> float:
    """Forward FLOPs: 2 x non-embedding parameters per token, plus attention scores and values (4 d L T^2)."""
    config = rm.model.config
    embedding = rm.model.get_input_embeddings().weight.numel()
    params = sum(p.numel() for p in rm.model.parameters()) - embedding
    return sum(2 * params * t + 4 * config.num_hidden_layers * config.hidden_size * t * t for t in lengths)


@torch.no_grad()
def one_at_a_time(rm: RewardModel, prompts, responses) -> list[float]:
    """The seed's loop: tokenize and score one text at a time."""
    return [rm.score_encoded([rm.spec.encode(rm.tokenizer, p, r)], batch_size=1)[0]
            for p, r in zip(prompts, responses, strict=True)]


@torch.no_grad()
def padded_batches(rm: RewardModel, prompts, responses, batch_size: int = 32) -> list[float]:
    """Fixed batches of 32 in input order, each padded to its longest row."""
    rewards = []
    for start in range(0, len(prompts), batch_size):
        window = slice(start, start + batch_size)
        encoded = rm.spec.encode_batch(rm.tokenizer, prompts[window], responses[window])
        rewards += rm(**rm.collate(encoded)).tolist()
    return rewards


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def in_precision(rm: RewardModel, precision: str) -> RewardModel:
    """A copy of `rm` holding its weights in `precision` (the dtype `RewardModel.from_pretrained` loads)."""
    return RewardModel(copy.deepcopy(rm.model).to(DTYPES[precision]), rm.tokenizer, rm.spec).eval()


def scoring_benchmark(pairs, n_responses: int, precision: str, batch_size: int) -> dict:
    """rewardkit's scorer in `precision` against the seed's one-at-a-time loop in fp32 and fixed padded batches of
    32 in fp32, on the same responses; FLOP/s against the matmul peak of the precision it ran in."""
    fp32 = RewardModel.from_backbone(SCORE_BACKBONE, max_length=512).eval()
    rm = in_precision(fp32, precision)
    items = [(p.prompt, r) for p in pairs for r in (p.chosen, p.rejected)][:n_responses]
    prompts, responses = [p for p, _ in items], [r for _, r in items]
    lengths = [len(e.input_ids) for e in rm.spec.encode_batch(rm.tokenizer, prompts, responses)]
    rm.score(prompts[:64], responses[:64], batch_size=batch_size)  # warm-up: oneDNN picks its kernels
    ours, ours_s = timed(rm.score, prompts, responses, batch_size=batch_size)
    exact, exact_s = timed(fp32.score, prompts, responses, batch_size=batch_size)
    naive, naive_s = timed(one_at_a_time, fp32, prompts, responses)
    padded, padded_s = timed(padded_batches, fp32, prompts, responses)
    peaks = {"fp32": matmul_peak_tflops(torch.float32), "bf16": matmul_peak_tflops(torch.bfloat16)}
    achieved = model_flops(rm, lengths) / ours_s / 1e12
    return {
        "backbone": SCORE_BACKBONE, "precision": precision, "batch_size": batch_size, "responses": len(items),
        "mean_tokens": sum(lengths) / len(lengths),
        "seqs_per_s": len(items) / ours_s, "tokens_per_s": sum(lengths) / ours_s,
        "fp32_seqs_per_s": len(items) / exact_s,
        "naive_seqs_per_s": len(items) / naive_s, "padded32_seqs_per_s": len(items) / padded_s,
        "speedup_vs_naive": naive_s / ours_s, "speedup_vs_padded32": padded_s / ours_s,
        "speedup_vs_fp32": exact_s / ours_s,
        "model_tflops": achieved, "matmul_peak_tflops": peaks,
        "fraction_of_peak": achieved / peaks[precision],
        "max_abs_diff_vs_fp32": max(abs(a - b) for a, b in zip(ours, exact, strict=True)),
        "max_abs_diff_fp32_vs_naive": max(abs(a - b) for a, b in zip(exact, naive, strict=True)),
        "max_abs_diff_fp32_vs_padded32": max(abs(a - b) for a, b in zip(exact, padded, strict=True)),
    }


def best_of_n_benchmark(pairs, n_prompts: int) -> dict:
    """N candidates per prompt: other pairs' replies stand in for sampled responses."""
    rm = RewardModel.from_backbone(BON_BACKBONE, max_length=512).eval()
    pool = [r for p in pairs for r in (p.chosen, p.rejected)]
    prompts = [p.prompt for p in pairs[:n_prompts]]
    candidates = [pool[i * BON_N : (i + 1) * BON_N] for i in range(n_prompts)]
    shared, shared_s = timed(rm.score_candidates, prompts, candidates)
    alone, alone_s = timed(rm.score_candidates, prompts, candidates, share_prefix=False)
    pairs_scored = [(a, b) for g, h in zip(shared, alone, strict=True) for a, b in zip(g, h, strict=True)
                    if math.isfinite(a)]
    return {"backbone": BON_BACKBONE, "prompts": n_prompts, "n": BON_N, "shared_seconds": shared_s,
            "independent_seconds": alone_s, "speedup": alone_s / shared_s,
            "max_abs_diff": max(abs(a - b) for a, b in pairs_scored)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--responses", type=int, default=2000)
    parser.add_argument("--bon-prompts", type=int, default=8)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--batch-size", type=int, default=SCORING_BATCH_SIZE)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    pairs = load_preferences(args.pairs).pairs
    precision = resolve_precision(args.precision)
    result = {"score": scoring_benchmark(pairs, args.responses, precision, args.batch_size),
              "bon": best_of_n_benchmark(pairs, args.bon_prompts)}
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
