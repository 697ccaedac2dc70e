"""One training run of the benchmark, in its own process so that its peak RSS is its own.

    python bench/train_one.py --system rewardkit|trl --backbone minilm-l6 --train train.jsonl --eval eval.jsonl \
        --max-length 512 --batch-size 8 --lr 5e-5 --precision bf16 --out result.json

Both systems start from the same weights (the backbone with the same seeded score head), see the same pairs,
and use AdamW, cosine schedule with 5% warmup, gradient clipping at 1.0, no dropout, one epoch, the same precision
(`--precision`: bf16 autocast for both, or fp32 for both; `auto` resolves as `rewardkit.precision` says), and the
same gradient checkpointing setting (TRL's RewardConfig turns it on by default; `--gradient-checkpointing` turns it
on for both). Throughput counts the training loop only. The result records the precision each system ran in.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

from rewardkit.config import load_config
from rewardkit.data.preferences import load_preferences
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import as_messages, render_plain
from rewardkit.precision import resolve_precision

WARMUP, SEED = 0.05, 0


def run_rewardkit(args) -> dict:
    from rewardkit.training.launch import train

    config = load_config(None, [], base={
        "model": {"backbone": args.backbone, "max_length": args.max_length,
                  "gradient_checkpointing": args.gradient_checkpointing},
        "data": {"train": [{"path": args.train}], "eval": [{"path": args.eval}]},
        "optim": {"lr": args.lr, "warmup_ratio": WARMUP, "schedule": "cosine", "max_grad_norm": 1.0},
        "train": {"batch_size": args.batch_size, "epochs": 1, "seed": SEED, "log_every": 10**6,
                  "precision": args.precision},
    })
    result = train(config, Path(args.workdir) / f"rewardkit-{args.backbone}", show_progress=False)
    return {"seconds": result.summary["train_seconds"], "pairs": result.summary["train_records"],
            "accuracy": result.metrics["overall"]["accuracy"], "share_prefix": result.summary["share_prefix"],
            "precision": result.summary["precision"]}


def trl_records(path: str, conversational: bool) -> list[dict]:
    """The same pairs in TRL's explicit-prompt layout: messages for chat models, rendered plain text otherwise."""
    records = []
    for pair in load_preferences(path).pairs:
        prompt, chosen, rejected = (as_messages(t, role) for t, role in
                                    ((pair.prompt, "user"), (pair.chosen, "assistant"), (pair.rejected, "assistant")))
        if conversational:
            records.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        else:  # the text rewardkit's plain format gives the encoder, prompt and reply joined by a space
            text = render_plain(prompt)
            records.append({"prompt": text, "chosen": " " + render_plain(chosen, leading_role=False),
                            "rejected": " " + render_plain(rejected, leading_role=False)})
    return records


def run_trl(args) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    torch.manual_seed(SEED)
    rm = RewardModel.from_backbone(args.backbone, max_length=args.max_length)
    conversational = rm.spec.format == "chat_template"
    train_set = Dataset.from_list(trl_records(args.train, conversational))
    eval_set = Dataset.from_list(trl_records(args.eval, conversational))
    config = RewardConfig(
        output_dir=str(Path(args.workdir) / f"trl-{args.backbone}"), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=32, num_train_epochs=1, learning_rate=args.lr, lr_scheduler_type="cosine",
        warmup_steps=WARMUP, max_grad_norm=1.0, weight_decay=0.0, max_length=args.max_length, seed=SEED,
        eos_token=rm.tokenizer.eos_token or rm.tokenizer.sep_token, report_to=[], save_strategy="no",
        eval_strategy="no", logging_steps=10**6, disable_dropout=True,
        gradient_checkpointing=args.gradient_checkpointing, use_cpu=not torch.cuda.is_available(),
        bf16=resolve_precision(args.precision) == "bf16", dataloader_num_workers=0,
    )
    trainer = RewardTrainer(model=rm.model, args=config, train_dataset=train_set, eval_dataset=eval_set,
                            processing_class=rm.tokenizer)
    output = trainer.train()
    accuracy = trainer.evaluate()["eval_accuracy"]
    return {"seconds": output.metrics["train_runtime"], "pairs": len(trainer.train_dataset), "accuracy": accuracy,
            "precision": "bf16" if config.bf16 else "fp32"}


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("system", "backbone", "train", "eval", "workdir", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    args = parser.parse_args()
    result = run_rewardkit(args) if args.system == "rewardkit" else run_trl(args)
    result["pairs_per_s"] = result["pairs"] / result["seconds"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(result))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
