"""Best-of-N scoring speed: a pool's N candidates per prompt scored with prefix sharing (each prompt computed once,
`RewardModel.score_candidates`) against scoring each candidate alone (`share_prefix=False`); same model, same
precision (fp32), same candidates. Writes a JSON result with the machine's description.

    python -m rewardkit.optimization.convert bon-math ../shared/data/qwen25math-bon-math-cot-100.jsonl pool.jsonl
    python bench/bon_score_speed.py --pool pool.jsonl --prompts 4 --out bench/results/bon-score-speed.json

The model is the bundled SmolLM2-135M backbone with a fresh score head: speed does not depend on the head's training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import torch

from rewardkit.models.reward_model import RewardModel
from rewardkit.sampling.pool import group_by_prompt, read_pool
from run import describe_machine
from score_one import timed


def candidate_groups(pool: Path, prompts: int) -> tuple[list, list[list[str]]]:
    groups = list(group_by_prompt(read_pool(pool)).values())[:prompts]
    return [g[0].prompt for g in groups], [[s.response for s in g] for g in groups]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", required=True)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--backbone", default="smollm2-135m")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    rm = RewardModel.from_backbone(args.backbone, max_length=args.max_length).eval()
    prompts, candidates = candidate_groups(Path(args.pool), args.prompts)
    encoded = rm.spec.encode_batch(rm.tokenizer, [p for p, g in zip(prompts, candidates, strict=True) for _ in g],
                                   [r for g in candidates for r in g])
    scored = [e for e in encoded if e is not None]
    rm.score_candidates(prompts[:1], candidates[:1])  # warm-up
    shared, shared_s = timed(rm.score_candidates, prompts, candidates)
    alone, alone_s = timed(rm.score_candidates, prompts, candidates, share_prefix=False)
    pairs = [(a, b) for g, h in zip(shared, alone, strict=True) for a, b in zip(g, h, strict=True) if math.isfinite(a)]
    result = {
        "machine": describe_machine(), "date": datetime.date.today().isoformat(), "pool": args.pool,
        "backbone": args.backbone, "precision": "fp32", "max_length": args.max_length, "prompts": len(prompts),
        "candidates": sum(len(g) for g in candidates), "candidates_scored": len(scored),
        "candidates_per_prompt": [len(g) for g in candidates],
        "tokens_scored": sum(len(e.input_ids) for e in scored),
        "prompt_tokens_scored": sum(e.prompt_length for e in scored),
        "shared_seconds": shared_s, "independent_seconds": alone_s, "speedup": alone_s / shared_s,
        "shared_candidates_per_s": len(scored) / shared_s, "independent_candidates_per_s": len(scored) / alone_s,
        "max_abs_diff": max(abs(a - b) for a, b in pairs),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
