"""Sampling throughput: a prompt's N samples decoded in one batch with the KV cache (what `rewardkit sample` does)
against the naive counterpart, one sequence at a time (also with the KV cache), same policy, precision, prompts and
sampling parameters.

    python bench/sample_speed.py --prompts 4 --n 8 --max-new-tokens 32

Tokens/s counts the tokens the samples keep (up to and including EOS): the rows of a batch that stop early still
cost compute until its longest row ends, and that waste is in the batched number. Writes a JSON result (default
bench/results/sample-speed-<machine>-<date>.json) with the machine's description.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from importlib import resources
from pathlib import Path

import torch

from rewardkit.io import write_json_atomic
from rewardkit.sampling.local import LocalSampler, SamplingParams, derived_seed, policy_precision
from rewardkit.sampling.prompts import load_prompts
from run import describe_machine, machine_slug

BENCH = Path(__file__).resolve().parent
PROMPTS = "dpo-en-demo.json"  # bundled preference data: its prompts


def machine() -> dict:
    """CPU model, its bf16 flags, cores, threads, torch version (and the one-line description bench/run.py uses)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
               platform.processor())
    return {"description": describe_machine(), "cpu": cpu, "bf16_flags": sorted(f for f in flags if "bf16" in f),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def timed_tokens(draw) -> dict:
    """Run `draw()` (a list of completions); its tokens, seconds and tokens/s."""
    start = time.perf_counter()
    completions = draw()
    seconds = time.perf_counter() - start
    tokens = sum(c.tokens for c in completions)
    return {"samples": len(completions), "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1), "stopped": sum(c.finish_reason == "stop" for c in completions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=4, help="prompts from the bundled preference data")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    precision = policy_precision(args.precision, args.policy)
    params = SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=0)
    sampler = LocalSampler(args.policy, params, precision=precision, batch_size=args.n)
    prompts = load_prompts(resources.files("rewardkit") / "demo_data" / PROMPTS, limit=args.prompts).prompts
    encoded = [(p.prompt_id, sampler.prompt_ids(p.prompt)) for p in prompts]
    sampler.generate(encoded[0][1], 2, seed=0)  # warm-up: first-call allocations, kernels

    def batched():
        return [c for pid, ids in encoded for c in sampler.generate(ids, args.n, derived_seed(0, pid, 0))]

    def one_at_a_time():
        return [c for pid, ids in encoded for i in range(args.n)
                for c in sampler.generate(ids, 1, derived_seed(0, pid, i))]

    results = {"batched": timed_tokens(batched), "one_at_a_time": timed_tokens(one_at_a_time)}
    results["speedup_tokens_per_s"] = round(results["batched"]["tokens_per_s"]
                                            / results["one_at_a_time"]["tokens_per_s"], 2)
    record = {"bench": "sample_speed", "date": datetime.date.today().isoformat(), "machine": machine(),
              "policy": args.policy, "precision": precision, "prompts": len(encoded), "n": args.n,
              "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
              "prompt_tokens": [int(ids.shape[1]) for _, ids in encoded], **results}
    out = args.out or BENCH / "results" / f"sample-speed-{machine_slug()}-{record['date']}.json"
    write_json_atomic(out, record)
    for name in ("batched", "one_at_a_time"):
        r = results[name]
        print(f"{name:>14}: {r['tokens']} tokens in {r['seconds']} s = {r['tokens_per_s']} tokens/s")
    print(f"speedup {results['speedup_tokens_per_s']}x ({precision}) -> {out}")


if __name__ == "__main__":
    main()
