"""The speed benchmark: rewardkit against TRL's RewardTrainer and against simple scoring loops, same machine, same
data, same models. `make bench` (MiniLM-L6 and SmolLM2-135M) or `make bench-quick` (fewer pairs, MiniLM training).

Writes bench/results/<machine>-<date>.json (quick: bench/results/quick.json) and prints a table.
Data: HH-RLHF harmless-base test pairs (../shared/data, or the identical bundled copy), restricted to pairs whose
both sides fit the max length for the backbone at hand (so TRL's dropping of long pairs does not skew counts),
split train/eval by prompt.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from rewardkit.data.preferences import load_preferences, save_preferences
from rewardkit.data.split import prepare_preferences
from rewardkit.models.backbones import backbone_tokenizer_and_spec
from rewardkit.precision import cpu_has_fast_bf16, resolve_precision

BENCH = Path(__file__).resolve().parent
MAX_LENGTH = 512
# backbone -> (train pairs, eval pairs, learning rate); SmolLM2 is about 10x the compute of MiniLM per pair
FULL = {"minilm-l6": (400, 100, 5e-5), "smollm2-135m": (64, 32, 1e-5)}
QUICK = {"minilm-l6": (300, 100, 5e-5)}
HH = "hh-rlhf-harmless-base-test.jsonl.gz"


def hh_path() -> str:
    shared = BENCH.parents[1] / "shared" / "data" / HH
    return str(shared if shared.is_file() else resources.files("rewardkit") / "demo_data" / HH)


def fitting_split(backbone: str, n_train: int, n_eval: int, workdir: Path) -> tuple[Path, Path]:
    """Train and eval files of pairs whose both sides fit MAX_LENGTH for this backbone."""
    tokenizer, spec = backbone_tokenizer_and_spec(backbone, max_length=MAX_LENGTH)
    pairs = [p for p in load_preferences(hh_path(), on_bad_record="skip").pairs
             if max(spec.untruncated_length(tokenizer, p.prompt, r) for r in (p.chosen, p.rejected)) <= MAX_LENGTH - 8]
    split = prepare_preferences(pairs, eval_fraction=n_eval / len(pairs) * 1.05, seed=0)
    train_file, eval_file = workdir / f"{backbone}-train.jsonl", workdir / f"{backbone}-eval.jsonl"
    save_preferences(split.train[:n_train], train_file)
    save_preferences(split.eval[:n_eval], eval_file)
    return train_file, eval_file


def run_script(script: str, *args: str) -> dict:
    """Run one benchmark script in a fresh process (its own peak memory) and read its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, str(BENCH / script), *args, "--out", out.name], check=True,
                       stdout=subprocess.DEVNULL, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})
        return json.loads(Path(out.name).read_text())


def train_comparison(backbone: str, sizes: tuple[int, int, float], workdir: Path, precision: str) -> dict:
    """Both systems on the same pairs in the same `precision`; a comparison whose precisions differ is refused."""
    n_train, n_eval, lr = sizes
    train_file, eval_file = fitting_split(backbone, n_train, n_eval, workdir)
    runs = {system: run_script("train_one.py", "--system", system, "--backbone", backbone, "--train", str(train_file),
                               "--eval", str(eval_file), "--workdir", str(workdir), "--lr", str(lr),
                               "--max-length", str(MAX_LENGTH), "--precision", precision)
            for system in ("rewardkit", "trl")}
    ours, trl = runs["rewardkit"], runs["trl"]
    if ours["precision"] != trl["precision"]:
        raise SystemExit(f"unfair comparison: rewardkit ran {ours['precision']}, TRL {trl['precision']}")
    tokens = train_tokens(backbone, train_file)
    return {"backbone": backbone, "train_tokens": tokens,
            "rewardkit_precision": ours["precision"], "trl_precision": trl["precision"],
            "rewardkit_tokens_per_s": tokens / ours["seconds"], "trl_tokens_per_s": tokens / trl["seconds"],
            "train_pairs": ours["pairs"], "trl_train_pairs": trl["pairs"], "eval_pairs": n_eval,
            "rewardkit_pairs_per_s": ours["pairs_per_s"], "trl_pairs_per_s": trl["pairs_per_s"],
            "speedup": ours["pairs_per_s"] / trl["pairs_per_s"], "rewardkit_accuracy": ours["accuracy"],
            "trl_accuracy": trl["accuracy"], "rewardkit_peak_rss_mb": ours["peak_rss_mb"],
            "trl_peak_rss_mb": trl["peak_rss_mb"], "rewardkit_share_prefix": ours["share_prefix"]}


def train_tokens(backbone: str, train_file: Path) -> int:
    """Real (unpadded) tokens of both sides of every training pair under rewardkit's spec; the same pairs for both
    systems, so tokens/s compares like with like."""
    tokenizer, spec = backbone_tokenizer_and_spec(backbone, max_length=MAX_LENGTH)
    pairs = load_preferences(str(train_file)).pairs
    return sum(len(e.input_ids) for p in pairs
               for e in spec.encode_batch(tokenizer, [p.prompt] * 2, [p.chosen, p.rejected]))


def describe_machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    bf16 = "with" if cpu_has_fast_bf16() else "without"
    return (f"{cpu}, {os.cpu_count()} cores, {bf16} AMX/AVX512-BF16, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, {platform.system()}")


def machine_slug() -> str:
    """A file-name version of the machine: e.g. cpu-amd-epyc-2cores."""
    cpu = describe_machine().split(",")[0].lower()
    words = "".join(c if c.isalnum() else "-" for c in cpu).split("-")
    return "-".join(["cpu", *[w for w in words if w][:3], f"{os.cpu_count()}cores"])


def print_table(results: dict) -> None:
    table = Table(title=f"rewardkit benchmark ({results['machine']})")
    for column in ("measure", "rewardkit", "baseline", "ratio"):
        table.add_column(column)
    for run in results["train"]:
        if run["rewardkit_precision"] != run["trl_precision"]:
            raise SystemExit(f"{run['backbone']}: the two systems ran in different precisions; not comparable")
        table.add_row(f"train {run['backbone']} precision", run["rewardkit_precision"], run["trl_precision"], "")
        table.add_row(f"train {run['backbone']} pairs/s", f"{run['rewardkit_pairs_per_s']:.2f}",
                      f"TRL {run['trl_pairs_per_s']:.2f}", f"{run['speedup']:.2f}x")
        table.add_row(f"train {run['backbone']} tokens/s", f"{run['rewardkit_tokens_per_s']:.0f}",
                      f"TRL {run['trl_tokens_per_s']:.0f}", "")
        table.add_row(f"train {run['backbone']} held-out acc", f"{run['rewardkit_accuracy']:.3f}",
                      f"TRL {run['trl_accuracy']:.3f}", "")
        table.add_row(f"train {run['backbone']} peak RSS MB", f"{run['rewardkit_peak_rss_mb']:.0f}",
                      f"TRL {run['trl_peak_rss_mb']:.0f}", "")
    score, bon = results["score"], results["bon"]
    table.add_row(f"score seq/s ({score['precision']})", f"{score['seqs_per_s']:.1f}",
                  f"one-at-a-time fp32 {score['naive_seqs_per_s']:.1f}", f"{score['speedup_vs_naive']:.2f}x")
    table.add_row("score seq/s", "", f"rewardkit fp32 {score['fp32_seqs_per_s']:.1f}",
                  f"{score['speedup_vs_fp32']:.2f}x")
    table.add_row("score seq/s", "", f"padded batches of 32 fp32 {score['padded32_seqs_per_s']:.1f}",
                  f"{score['speedup_vs_padded32']:.2f}x")
    table.add_row("score model TFLOP/s", f"{score['model_tflops']:.3f}",
                  f"matmul peak fp32 {score['matmul_peak_tflops']['fp32']:.3f} / "
                  f"bf16 {score['matmul_peak_tflops']['bf16']:.3f}", f"{score['fraction_of_peak']:.0%} of peak")
    table.add_row("score max |reward - fp32|", f"{score['max_abs_diff_vs_fp32']:.2g}", "", "")
    table.add_row(f"best-of-{bon['n']} ({bon['backbone']}) s", f"{bon['shared_seconds']:.1f}",
                  f"independent {bon['independent_seconds']:.1f}", f"{bon['speedup']:.2f}x")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer pairs, MiniLM training only (under 10 minutes)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="the same for every system; auto: bf16 where the hardware is fast at it")
    args = parser.parse_args()
    precision = resolve_precision(args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plan = QUICK if args.quick else FULL
        results = {"machine": describe_machine(), "date": datetime.date.today().isoformat(), "quick": args.quick,
                   "precision": precision, "max_length": MAX_LENGTH,
                   "train": [train_comparison(b, s, workdir, precision) for b, s in plan.items()]}
        score_pairs, _ = fitting_split("minilm-l6", 1200, 0, workdir)
        results |= run_script("score_one.py", "--pairs", str(score_pairs), "--responses", "2000",
                              "--bon-prompts", "4" if args.quick else "8", "--precision", precision)
    name = "quick.json" if args.quick else f"{machine_slug()}-{results['date']}-{precision}.json"
    (BENCH / "results").mkdir(exist_ok=True)
    (BENCH / "results" / name).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
