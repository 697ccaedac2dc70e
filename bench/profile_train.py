"""Where a training step's milliseconds go: the recipe's own `setup` and `train_step` under `torch.profiler`,
grouped into matmuls, attention, elementwise (layer norm / GELU / softmax / dropout), the optimizer, data movement
(padding, copies, gathers) and what no operator accounts for (Python and framework overhead).

    python bench/profile_train.py --backbone minilm-l6 --train train.jsonl --steps 20 --precision bf16 --out p.json

The first `--warmup` steps are run unprofiled (oneDNN picks its kernels there). The matmul floor is the step's
matmul FLOPs at the machine's measured matmul peak in that precision: how fast the loop could be if everything but
the matmuls were free.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from rewardkit.config import load_config
from rewardkit.precision import DTYPES, resolve_precision
from rewardkit.training.recipe import setup, train_step
from score_one import matmul_peak_tflops  # bench/ is the script's directory

GROUPS = {  # first match wins, on the operator's name
    "matmul": ("mm", "addmm", "bmm", "matmul", "linear", "baddbmm"),
    "attention": ("scaled_dot_product", "_flash_attention", "_efficient_attention", "attention"),
    "elementwise": ("layer_norm", "gelu", "softmax", "dropout", "add", "mul", "div", "sub", "tanh", "silu", "rsqrt",
                    "pow", "mean", "sum", "exp", "log", "sigmoid", "where", "masked_fill", "neg"),
    "optimizer": ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt", "clamp_min", "norm", "clip"),
    "data movement": ("copy_", "to", "cat", "index", "gather", "scatter", "embedding", "pad", "fill_", "zero_",
                      "empty", "stack", "clone", "contiguous", "_to_copy", "expand", "view", "reshape", "transpose",
                      "slice", "select", "permute", "unsqueeze", "squeeze", "t", "as_strided", "split", "chunk"),
}


def group_of(name: str) -> str:
    op = name.removeprefix("aten::").lower()
    for group, keys in GROUPS.items():
        if any(op == key or op.startswith(key + "_") or key in op for key in keys):
            return group
    return "other operators"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--train", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    precision = resolve_precision(args.precision)
    config = load_config(None, [], base={
        "model": {"backbone": args.backbone, "max_length": args.max_length},
        "data": {"train": [{"path": args.train}]},
        "train": {"batch_size": args.batch_size, "epochs": 1, "precision": precision, "log_every": 10**6},
    })
    with tempfile.TemporaryDirectory() as tmp:
        run, _ = setup(config, Path(tmp), None)
        for step in range(args.warmup):
            train_step(run, step)
        steps = range(args.warmup, min(args.warmup + args.steps, run.total_steps))
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            started = time.perf_counter()
            for step in steps:
                train_step(run, step)
            wall = time.perf_counter() - started
    events = prof.key_averages()
    totals: dict[str, float] = {}
    for event in events:
        totals[group_of(event.key)] = totals.get(group_of(event.key), 0.0) + event.self_cpu_time_total / 1e6
    totals["python / framework overhead"] = max(0.0, wall - sum(totals.values()))
    matmul_flops = sum(e.flops for e in events if group_of(e.key) == "matmul")
    peak = matmul_peak_tflops(DTYPES[precision])
    result = {
        "backbone": args.backbone, "precision": precision, "steps": len(steps), "batch_size": args.batch_size,
        "ms_per_step": 1000 * wall / len(steps),
        "ms_per_step_by_group": {k: round(1000 * v / len(steps), 2) for k, v in sorted(totals.items(),
                                                                                       key=lambda kv: -kv[1])},
        "share_by_group": {k: round(v / wall, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
        "matmul_tflops_achieved": matmul_flops / max(totals.get("matmul", 0), 1e-9) / 1e12,
        "matmul_peak_tflops": peak,
        "matmul_floor_ms_per_step": 1000 * matmul_flops / (peak * 1e12) / len(steps),
        "top_operators": [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1000 / len(steps), 2)}
                          for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
