"""The GPU check: one GPU, under 10 minutes, no network. Writes OUT/gpu_check.json and OUT/gpu_check.log.

    python bench/gpu_check.py --out runs/gpu-check                   # the bundled backbones (pip-installed)
    python bench/gpu_check.py --out DIR --backbones /tmp/backbones   # SMOLLM2/ and MINILM/ dirs (random weights)

Each part runs on its own and is recorded as ok, failed (with the error's last lines) or skipped (with why):
- lora, qlora: LoRA and QLoRA (4-bit backbone, bitsandbytes) on SmolLM2 for a few steps in bf16: the loss falls,
  and the exported model scores the same in fp32 and bf16 on the GPU (largest difference, preference flips);
- fsdp: FSDP2 through accelerate's plugin (configs/accelerate/fsdp2.yaml), fp32: a run killed (SIGKILL) after
  its first sharded checkpoint and resumed ends with the weights of an uninterrupted run; the export loads;
- zero3: DeepSpeed ZeRO-3 through accelerate (configs/accelerate/zero3.yaml), the same kill and resume, its
  checkpoint DeepSpeed's own files written as safetensors;
- throughput: bf16 training against TRL's RewardTrainer on the same pairs (`bench/train_one.py`), pairs/s and
  model FLOP utilization (6 x parameters x tokens of both full sequences / s / measured bf16 matmul peak);
- scoring: the exported SmolLM2 model in bf16 through `load_scorer`, sequences/s and TFLOP/s, against the
  one-at-a-time fp32 loop;
- vllm: the parity check (`bench/vllm_parity.py`) where vLLM is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from run import fitting_split, train_tokens  # bench/run.py, beside this script

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOG: Path
DEVICE = "cuda"  # --device cpu: a dry run of the logic on a machine without a GPU (the GPU-only parts fail)


def log(text: str) -> None:
    print(text, flush=True)
    with LOG.open("a") as f:
        f.write(text + "\n")


def run(command: list[str], *, timeout: float, env: dict | None = None) -> str:
    """Run a command, its output appended to the log; a non-zero exit raises with the output's tail."""
    log("$ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env=os.environ | {"TOKENIZERS_PARALLELISM": "false"} | (env or {}))
    output = result.stdout + result.stderr
    with LOG.open("a") as f:
        f.write(output[-20000:] + "\n")
    if result.returncode:
        raise RuntimeError(f"exit {result.returncode}: {output[-1500:]}")
    return output


def train_command(launcher: list[str], config: Path, output: Path, overrides: list[str]) -> list[str]:
    command = [*launcher, "rewardkit.cli", "train", "--config", str(config), "--output-dir", str(output)]
    for override in overrides:
        command += ["--set", override]
    return command


def write_config(path: Path, backbone: str, train: Path, eval_file: Path, **train_settings) -> Path:
    import yaml

    config = {"model": {"backbone": backbone, "max_length": 512},
              "data": {"train": [{"path": str(train)}], "eval": [{"path": str(eval_file)}]},
              "optim": {"lr": 1e-4, "warmup_ratio": 0.05},
              "train": {"batch_size": 16, "epochs": 1, "seed": 0, "log_every": 1, **train_settings}}
    path.write_text(yaml.safe_dump(config))
    return path


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()
            if '"loss"' in line]


def loss_fall(run_dir: Path) -> dict:
    values = losses(run_dir)
    k = max(1, min(5, len(values) // 2))
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    return {"steps": len(values), "loss_first": first, "loss_last": last, "loss_fell": last < first}


def precision_parity(model_dir: Path, pairs) -> dict:
    """The exported model in fp32 and in bf16 on the GPU: largest reward difference, preference flips."""
    from rewardkit.scoring.loading import load_scorer

    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    rewards = {precision: load_scorer(model_dir, precision=precision, device=DEVICE).score(prompts, responses)
               for precision in ("fp32", "bf16")}
    n = len(pairs)
    margins = {k: [a - b for a, b in zip(v[:n], v[n:], strict=True)] for k, v in rewards.items()}
    return {"pairs": n, "max_reward_diff": max(abs(a - b) for a, b in zip(*rewards.values(), strict=True)),
            "preference_flips": sum((a > 0) != (b > 0) for a, b in zip(*margins.values(), strict=True))}


def check_lora(work: Path, smollm2: str, data: dict, *, quantize: bool) -> dict:
    name = "qlora" if quantize else "lora"
    config = write_config(work / f"{name}.yaml", smollm2, data["train"], data["eval"], precision="bf16")
    overrides = ["model.lora.r=16", f"model.lora.quantize_4bit={str(quantize).lower()}", "optim.lr=2e-4"]
    started = time.perf_counter()
    run(train_command([sys.executable, "-m"], config, work / name, overrides), timeout=240)
    result = loss_fall(work / name) | {"train_seconds": time.perf_counter() - started}
    return result | precision_parity(work / name / "model", data["eval_pairs"][:64])


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def check_resume(work: Path, smollm2: str, data: dict, name: str, launch_config: str) -> dict:
    """Straight, killed (SIGKILL) after the first checkpoint, resumed: the same weights. fp32, deterministic
    kernels; the export of the resumed run is loaded as a stock directory."""
    if name == "zero3" and importlib.util.find_spec("deepspeed") is None:
        return {"skipped": "deepspeed is not installed"}
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "configs/accelerate" / launch_config), "--num_processes", "1", "-m"]
    config = write_config(work / f"{name}.yaml", smollm2, data["train"], data["eval"], precision="fp32",
                          save_every=8, keep_checkpoints=3)
    env = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    run(train_command(launcher, config, work / f"{name}-straight", []), timeout=200, env=env)
    killed_dir = work / f"{name}-killed"
    process = subprocess.Popen(train_command(launcher, config, killed_dir, []), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ | env | {"TOKENIZERS_PARALLELISM": "false"})
    marker = killed_dir / "checkpoint-000008" / "progress.json"
    deadline = time.monotonic() + 150
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed_early = process.poll() is None
    if killed_early:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    run(train_command(launcher, config, killed_dir, ["train.resume=latest"]), timeout=200, env=env)
    summary = json.loads((work / f"{name}-straight" / "summary.json").read_text())
    from rewardkit.models.reward_model import RewardModel

    RewardModel.from_pretrained(killed_dir / "model")
    files = sorted(str(p.relative_to(killed_dir / "checkpoint-000016"))
                   for p in (killed_dir / "checkpoint-000016").rglob("*.safetensors"))
    return loss_fall(work / f"{name}-straight") | {
        "sharding": summary["sharding"], "killed_before_the_end": killed_early, "checkpoint_files": files,
        "max_weight_diff_resumed_vs_straight": max_weight_diff(work / f"{name}-straight" / "model",
                                                               killed_dir / "model")}


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def matmul_peak_tflops(size: int = 8192) -> float:
    a = torch.randn(size, size, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=DEVICE, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize()
    return 2 * size**3 * 10 / (time.perf_counter() - start) / 1e12


def non_embedding_parameters(backbone: str) -> int:
    from rewardkit.models.reward_model import RewardModel

    rm = RewardModel.from_backbone(backbone, max_length=512)
    return sum(p.numel() for p in rm.model.parameters()) - rm.model.get_input_embeddings().weight.numel()


def check_throughput(work: Path, backbones: dict[str, str], data: dict, peak: float) -> dict:
    results = {}
    for name, backbone in backbones.items():
        runs = {}
        for system in ("rewardkit", "trl"):
            out = work / f"throughput-{name}-{system}.json"
            run([sys.executable, str(BENCH / "train_one.py"), "--system", system, "--backbone", backbone,
                 "--train", str(data["throughput"]), "--eval", str(data["eval"]), "--workdir", str(work),
                 "--batch-size", "32", "--lr", "5e-5", "--precision", "bf16", "--out", str(out)], timeout=300)
            runs[system] = json.loads(out.read_text())
        tokens = train_tokens(backbone, data["throughput"])
        flops = 6 * non_embedding_parameters(backbone) * tokens
        results[name] = {
            "pairs": runs["rewardkit"]["pairs"], "tokens_both_sides": tokens,
            "precision": [runs["rewardkit"]["precision"], runs["trl"]["precision"]],
            "rewardkit_pairs_per_s": runs["rewardkit"]["pairs_per_s"], "trl_pairs_per_s": runs["trl"]["pairs_per_s"],
            "speedup": runs["rewardkit"]["pairs_per_s"] / runs["trl"]["pairs_per_s"],
            "rewardkit_mfu": flops / runs["rewardkit"]["seconds"] / (peak * 1e12),
            "trl_mfu": flops / runs["trl"]["seconds"] / (peak * 1e12),
            "rewardkit_accuracy": runs["rewardkit"]["accuracy"], "trl_accuracy": runs["trl"]["accuracy"],
            "rewardkit_share_prefix": runs["rewardkit"]["share_prefix"]}
    return results


def check_scoring(model_dir: Path, pairs, peak: float) -> dict:
    """bf16 batched scoring through `load_scorer` against the one-at-a-time fp32 loop, both on the GPU."""
    from rewardkit.scoring.loading import load_scorer

    prompts = [p.prompt for p in pairs for _ in (0, 1)]
    responses = [r for p in pairs for r in (p.chosen, p.rejected)]
    fast = load_scorer(model_dir, precision="bf16", device=DEVICE)
    fast.score(prompts[:64], responses[:64], batch_size=64)  # warm-up
    synchronize()
    start = time.perf_counter()
    rewards = fast.score(prompts, responses, batch_size=64)
    synchronize()
    seconds = time.perf_counter() - start
    exact = load_scorer(model_dir, precision="fp32", device=DEVICE)
    naive_n = min(200, len(prompts))
    start = time.perf_counter()
    naive = [exact.score([p], [r])[0] for p, r in zip(prompts[:naive_n], responses[:naive_n], strict=True)]
    synchronize()
    naive_seconds = time.perf_counter() - start
    lengths = [len(e.input_ids) for e in fast.spec.encode_batch(fast.tokenizer, prompts, responses) if e]
    config = fast.model.config
    params = sum(p.numel() for p in fast.model.parameters()) - fast.model.get_input_embeddings().weight.numel()
    flops = sum(2 * params * t + 4 * config.num_hidden_layers * config.hidden_size * t * t for t in lengths)
    return {"sequences": len(prompts), "mean_tokens": sum(lengths) / len(lengths),
            "bf16_seqs_per_s": len(prompts) / seconds, "naive_fp32_seqs_per_s": naive_n / naive_seconds,
            "speedup_vs_naive": (len(prompts) / seconds) / (naive_n / naive_seconds),
            "model_tflops": flops / seconds / 1e12, "fraction_of_peak": flops / seconds / 1e12 / peak,
            "max_abs_diff_vs_fp32": max(abs(a - b) for a, b in zip(rewards[:naive_n], naive, strict=True)
                                        if math.isfinite(a))}


def prepare_data(work: Path, smollm2: str, n_pairs: int, steps_pairs: int) -> dict:
    from rewardkit.data.preferences import load_preferences, save_preferences

    train, eval_file = fitting_split(smollm2, n_pairs, 128, work)
    pairs = load_preferences(str(train)).pairs
    small = work / "steps-train.jsonl"
    save_preferences(pairs[:steps_pairs], small)
    return {"train": small, "throughput": train, "eval": eval_file,
            "eval_pairs": load_preferences(str(eval_file)).pairs}


def main() -> None:
    global LOG, DEVICE
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backbones", type=Path, help="a folder with smollm2/ and minilm/ (random weights)")
    parser.add_argument("--only", nargs="*", help="run only these parts")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--score-repeats", type=int, default=16, help="scoring: the held-out pairs this many times")
    parser.add_argument("--pairs", type=int, default=2048, help="throughput pairs")
    parser.add_argument("--steps-pairs", type=int, default=320, help="LoRA, QLoRA, FSDP and ZeRO-3 pairs (16 a step)")
    args = parser.parse_args()
    DEVICE = args.device
    args.out.mkdir(parents=True, exist_ok=True)
    LOG = args.out / "gpu_check.log"
    LOG.write_text("")
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    backbones = ({"smollm2": str(args.backbones / "smollm2"), "minilm": str(args.backbones / "minilm")}
                 if args.backbones else {"smollm2": "smollm2-135m", "minilm": "minilm-l6"})
    peak = matmul_peak_tflops(8192 if DEVICE == "cuda" else 1024)
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run)"
    results = {"device": device, "torch": torch.__version__, "bf16_matmul_peak_tflops": peak,
               "backbones": backbones, "random_weights": bool(args.backbones), "parts": {}}
    data = prepare_data(work, backbones["smollm2"], args.pairs, args.steps_pairs)
    parts = {
        "lora": lambda: check_lora(work, backbones["smollm2"], data, quantize=False),
        "qlora": lambda: (check_lora(work, backbones["smollm2"], data, quantize=True)
                          if importlib.util.find_spec("bitsandbytes") else {"skipped": "bitsandbytes not installed"}),
        "fsdp": lambda: check_resume(work, backbones["smollm2"], data, "fsdp", "fsdp2.yaml"),
        "zero3": lambda: check_resume(work, backbones["smollm2"], data, "zero3", "zero3.yaml"),
        "scoring": lambda: check_scoring(work / "lora" / "model", data["eval_pairs"] * args.score_repeats, peak),
        "throughput": lambda: check_throughput(work, backbones, data, peak),
        "vllm": lambda: ({"skipped": "vllm is not installed"} if importlib.util.find_spec("vllm") is None
                         else {"output": run([sys.executable, str(BENCH / "vllm_parity.py"), "--model",
                                              str(work / "lora" / "model")], timeout=300)[-2000:]}),
    }
    for name, part in parts.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        try:
            outcome = {"status": "ok"} | part()
        except Exception as err:  # a failed part is recorded; the others still run
            outcome = {"status": "failed", "error": "".join(traceback.format_exception(err))[-2000:]}
        outcome["seconds"] = round(time.perf_counter() - started, 1)
        results["parts"][name] = outcome
        log(f"== {name}: {json.dumps(outcome)[:3000]}")
        (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
