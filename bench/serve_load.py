"""Load test for `rewardkit serve`: loopback only, bounded in time and in requests.

    .venv/bin/python bench/serve_load.py --model /tmp/demo2/model --clients 32 --seconds 15

Starts `rewardkit serve` twice in a subprocess on a free 127.0.0.1 port: once with dynamic batching (the server's
defaults) and once serving one pair per forward pass (`--max-batch-size 1`, i.e. one request at a time for these
single-item requests). Each run drives it with `--clients` concurrent clients sending one (prompt, response) each,
responses of mixed lengths, for `--seconds` or `--max-requests`, whichever ends first. Reports requests/s, p50/p99
latency, errors, forwards and mean batch size (from /metrics), and the speedup of batching; `--output` saves JSON.
`--threads N` sets the server's torch intra-op threads (OMP_NUM_THREADS): on a busy CPU, single-row forwards with
several threads can stall on each other, which flatters batching.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rewardkit.precision import resolve_precision
from run import describe_machine  # bench/ is the script's directory

WORDS = "the a good bad answer helpful rude tea rain map cat dog is was because therefore however".split()


def mixed_items(n: int, seed: int = 0) -> list[dict]:
    """Prompts of 5-40 words and responses of 3-150 words, so batches mix short and long rows."""
    rng = random.Random(seed)

    def words(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [{"prompt": f"Question {i}: {words(5, 40)}?", "response": words(3, 150)} for i in range(n)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, port: int, extra: list[str], threads: int | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "rewardkit.cli", "serve", "--model", f"bench={model}", "--host", "127.0.0.1",
               "--port", str(port), *extra]
    env = os.environ | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_until_ready(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout_s} s")


async def drive(url: str, clients: int, seconds: float, max_requests: int) -> dict:
    """`clients` loops posting one item each until the time or request budget is spent."""
    items, latencies, errors = mixed_items(512), [], []
    end, sent = time.perf_counter() + seconds, 0

    async def client_loop(client: httpx.AsyncClient, worker: int) -> None:
        nonlocal sent
        while time.perf_counter() < end and sent < max_requests:
            sent += 1
            item = items[(sent * 7 + worker) % len(items)]
            started = time.perf_counter()
            try:
                status = (await client.post("/v1/score", json={"items": [item]})).status_code
            except httpx.TransportError as err:
                status = type(err).__name__
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(str(status))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(client_loop(client, w) for w in range(clients)))
    elapsed = time.perf_counter() - started
    if len(latencies) < 2:
        raise RuntimeError(f"too few successful requests to measure ({len(latencies)}); errors: {sorted(set(errors))}")
    cuts = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "seconds": round(elapsed, 2), "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(cuts[49] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1)}


def batch_stats(url: str) -> dict:
    text = httpx.get(f"{url}/metrics").text

    def metric(name: str) -> float:
        return float(re.search(rf'^{name}{{model="bench"}} (\S+)$', text, re.M).group(1))

    forwards, pairs = metric("rewardkit_batch_size_count"), metric("rewardkit_batch_size_sum")
    return {"forwards": int(forwards), "mean_batch_size": round(pairs / forwards, 2)}


def run(model: str, extra: list[str], args) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(model, port, extra, args.threads)
    try:
        wait_until_ready(url, process)
        result = asyncio.run(drive(url, args.clients, args.seconds, args.max_requests))
        return result | batch_stats(url)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="A trained reward model directory.")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15, help="Per run (there are two runs).")
    parser.add_argument("--max-requests", type=int, default=100_000, help="Per run.")
    parser.add_argument("--threads", type=int, help="torch intra-op threads in the server (default: torch's).")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="The server's --precision, the same for both runs.")
    parser.add_argument("--output", type=Path, help="Also write the results here as JSON.")
    args = parser.parse_args()
    if args.seconds > 300 or args.clients > 256:
        parser.error("keep it bounded: at most 300 s per run and 256 clients")

    precision = ["--precision", args.precision]
    results = {"dynamic": run(args.model, precision, args),
               "one_at_a_time": run(args.model, [*precision, "--max-batch-size", "1"], args)}
    results["speedup"] = round(results["dynamic"]["requests_per_s"] / results["one_at_a_time"]["requests_per_s"], 2)
    results["setup"] = {"model": args.model, "clients": args.clients, "seconds": args.seconds,
                        "threads": args.threads, "precision": resolve_precision(args.precision),
                        "machine": describe_machine()}
    print(json.dumps(results, indent=2))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
