"""The training recipe: reward modeling on `accelerate`, one readable loop for every task family.

    rewardkit train --config configs/minilm.yaml --set optim.lr=1e-5 --output-dir runs/minilm
    accelerate launch --multi_gpu -m rewardkit.cli train --config ... --output-dir ...   # same code, many GPUs

The task (`rewardkit.tasks`: pairs, rankings, rated responses or step-labelled solutions) says what an example
is, its loss and its evaluation; the loop is the same for all. Each optimizer step takes one global batch of
`train.batch_size` examples (the same for a seed, whatever the number of processes); each process takes its
share, in `gradient_accumulation_steps` micro-batches.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from transformers import get_scheduler

from rewardkit.config import TrainConfig
from rewardkit.errors import TrainingError
from rewardkit.io import write_json_atomic
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.progress import TrainProgress
from rewardkit.tasks.base import Task, TrainingData
from rewardkit.tasks.registry import build_task
from rewardkit.training import checkpoint
from rewardkit.training.batches import EpochBatches
from rewardkit.training.log import TrainLog, save_resolved_config
from rewardkit.training.setup import (
    autocast,
    build_model,
    build_optimizer,
    check_distributed_type,
    encode_training_data,
    load_training_data,
    micro_batch_size,
    resolve_precision,
    resolve_share_prefix,
    seed_everything,
)

LN2 = math.log(2)


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict | None
    summary: dict


def train_model(config: TrainConfig, output_dir: str | Path, *, show_progress: bool = True,
                data: TrainingData | None = None) -> TrainResult:
    """One model: the recipe. `data` replaces loading the configured sources (ensemble members' resamples)."""
    output_dir = Path(output_dir)
    cfg = config.train
    precision = resolve_precision(cfg.precision)
    # autocast is ours, not accelerate's: its precision is fixed once per process, and one process may train
    # several models (tests, notebooks) in different precisions
    accelerator = Accelerator(mixed_precision="no", log_with=None)
    check_distributed_type(accelerator)
    if not cfg.resume and checkpoint.list_checkpoints(output_dir):
        raise TrainingError(f"{output_dir} holds checkpoints of an earlier run: resume it with train.resume=latest, "
                            "or choose a new --output-dir")
    seed_everything(cfg.seed)
    task = build_task(config.task, use_margin=cfg.use_margin, center_rewards_coefficient=cfg.center_rewards_coefficient)
    rm, peft_model = build_model(config.model, config.task)
    data = data or load_training_data(task, config)
    train_set, eval_set, summary = encode_training_data(task, rm, data)
    global_batch = cfg.batch_size
    local_micro = micro_batch_size(global_batch, accelerator.num_processes, cfg.gradient_accumulation_steps)
    steps_per_epoch = len(train_set) // global_batch
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(train_set)} usable training {task.unit} is fewer than one batch of {global_batch}")
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = build_optimizer(rm, config)
    scheduler = get_scheduler(
        config.optim.schedule if config.optim.schedule != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=round(config.optim.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    share_prefix = resolve_share_prefix(cfg.share_prefix, rm)
    model, optimizer = accelerator.prepare(rm, optimizer)
    progress_state = {"step": 0, "best_eval_score": None, "evals_without_improvement": 0}
    if cfg.resume:
        found = checkpoint.find_checkpoint(output_dir, cfg.resume)
        progress_state = checkpoint.load_checkpoint(found, unwrap(accelerator, model), optimizer, scheduler)
        warn_on_config_change(accelerator, progress_state.get("config"), config)
        accelerator.print(f"resumed from {found} at step {progress_state['step']}")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_resolved_config(config, output_dir / "config.yaml")
    log = TrainLog(output_dir / "train_log.jsonl", accelerator.is_main_process, cfg.tensorboard, append=bool(cfg.resume))
    epoch_batches = EpochBatches([e.width for e in train_set], global_batch, cfg.seed, cfg.length_grouping)
    bar = TrainProgress(total_steps, global_batch, unit=task.unit, enabled=show_progress and accelerator.is_main_process)
    stuck_logs, metrics, start_time = 0, None, time.perf_counter()
    examples_seen = 0
    with bar:
        bar.advance_to(progress_state["step"])
        for step in range(progress_state["step"], total_steps):
            model.train()
            batch = [train_set[i] for i in epoch_batches.for_step(step, steps_per_epoch)]
            local = batch[accelerator.process_index :: accelerator.num_processes]
            batch_weight = sum(task.weight(e) for e in batch)
            loss_sum, correct = torch.zeros((), device=accelerator.device), None  # correct: None when no accuracy
            micro_batches = [local[i : i + local_micro] for i in range(0, len(local), local_micro)]
            for i, micro in enumerate(micro_batches):
                syncing = i == len(micro_batches) - 1
                with nullcontext() if syncing else accelerator.no_sync(model):
                    with autocast(accelerator.device, precision):
                        weighted_sum, micro_correct = task.loss(model, rm, micro, accelerator.device,
                                                                share_prefix=share_prefix)
                    # this micro-batch's share of the global batch's weighted mean, scaled so that DDP's average
                    # over processes and the sum over micro-batches give exactly that mean, however it is split
                    loss = weighted_sum * accelerator.num_processes / batch_weight
                    accelerator.backward(loss)
                loss_sum += loss.detach()
                if micro_correct is not None:
                    correct = micro_correct if correct is None else correct + micro_correct
            if config.optim.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_loss = accelerator.reduce(loss_sum, "mean").item()
            step_accuracy = None if correct is None else accelerator.reduce(correct, "sum").item() / len(batch)
            examples_seen += len(batch)
            if not math.isfinite(step_loss):
                raise TrainingError(
                    f"loss became {step_loss} at step {step + 1}: lower optim.lr, use train.precision=fp32, "
                    "or audit the data (`rewardkit data audit`)"
                )
            stuck_logs = stuck_logs + 1 if task.unit == "pairs" and abs(step_loss - LN2) < 1e-3 else 0
            if stuck_logs == cfg.stuck_loss_steps:
                accelerator.print(
                    f"warning: the loss has sat at ln 2 for {stuck_logs} steps: chosen and rejected get the same "
                    "reward. Check that the scored token differs between them (spec pooling, truncation)."
                )
            bar.update(step + 1, step_loss, step_accuracy)
            if (step + 1) % cfg.log_every == 0 or step + 1 == total_steps:
                elapsed = time.perf_counter() - start_time
                log.write(step + 1, loss=step_loss, accuracy=step_accuracy, lr=scheduler.get_last_lr()[0],
                          epoch=round((step + 1) / steps_per_epoch, 4), examples_per_s=round(examples_seen / elapsed, 3))
            progress_state["step"] = step + 1
            if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == total_steps) and eval_set:
                evaluation = task.evaluate(unwrap(accelerator, model), eval_set, bootstrap=0)
                log.write(step + 1, **{f"eval_{task.score_name}": evaluation.score})
                if track_improvement(progress_state, evaluation.score):
                    progress_state["best_step"] = step + 1
                    if accelerator.is_main_process and peft_model is None:  # adapters are merged once, at the end
                        save_with_normalization(unwrap(accelerator, model), output_dir / "model", evaluation.rewards)
                elif cfg.early_stopping_patience and progress_state["evals_without_improvement"] >= cfg.early_stopping_patience:
                    accelerator.print(f"early stopping at step {step + 1}: no eval improvement in "
                                      f"{cfg.early_stopping_patience} evaluations")
                    break
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and accelerator.is_main_process:
                progress_state["config"] = config.model_dump(mode="json")
                checkpoint.save_checkpoint(output_dir / f"{checkpoint.PREFIX}{step + 1:06d}",
                                           unwrap(accelerator, model), optimizer, scheduler, progress_state)
                checkpoint.prune_checkpoints(output_dir, cfg.keep_checkpoints)
            accelerator.wait_for_everyone()
    elapsed = time.perf_counter() - start_time
    if accelerator.is_main_process:
        keep_best = cfg.early_stopping_patience and peft_model is None and progress_state["best_eval_score"] is not None
        metrics = finish_model(task, unwrap(accelerator, model), peft_model, output_dir / "model", eval_set,
                               keep_best=bool(keep_best))
        if metrics:
            write_json_atomic(output_dir / "metrics.json", metrics)
    summary |= {"steps": progress_state["step"], "share_prefix": share_prefix, "eval_score_name": task.score_name,
                "best_eval_score": progress_state["best_eval_score"], "best_step": progress_state.get("best_step"),
                "train_seconds": round(elapsed, 1),
                "examples_per_s": round(examples_seen / elapsed, 2) if elapsed else None,
                "processes": accelerator.num_processes, "precision": precision}
    if accelerator.is_main_process:
        write_json_atomic(output_dir / "summary.json", summary)
    log.close()
    accelerator.wait_for_everyone()
    return TrainResult(output_dir / "model", metrics, summary)


def unwrap(accelerator: Accelerator, model) -> RewardModel:
    """The bare reward model, without the DDP wrapper: evaluation and saving run in full precision."""
    return accelerator.unwrap_model(model, keep_fp32_wrapper=False)


def track_improvement(state: dict, score: float) -> bool:
    best = state["best_eval_score"]
    if best is None or score > best:
        state["best_eval_score"], state["evals_without_improvement"] = score, 0
        return True
    state["evals_without_improvement"] += 1
    return False


def warn_on_config_change(accelerator, saved: dict | None, config: TrainConfig) -> None:
    current = config.model_dump(mode="json")
    current["train"].pop("resume", None)
    if saved:
        saved = json.loads(json.dumps(saved))
        saved["train"].pop("resume", None)
        if saved != current:
            accelerator.print("warning: the config differs from the one the checkpoint was saved with")


def finish_model(task: Task, rm: RewardModel, peft_model, directory: Path, eval_set: list, *,
                 keep_best: bool) -> dict | None:
    """Save the final model (LoRA merged; or keep the best one already saved) and return its held-out metrics."""
    if keep_best:
        rm = RewardModel.from_pretrained(directory)
    elif peft_model is not None:
        rm.model = peft_model.merge_and_unload()
    if not eval_set:
        rm.save_pretrained(directory)
        return None
    evaluation = task.evaluate(rm, eval_set, bootstrap=1000)
    save_with_normalization(rm, directory, evaluation.rewards)
    return evaluation.metrics


def save_with_normalization(rm: RewardModel, directory: Path, rewards: list[float] | None) -> None:
    """Save with the mean and std of `rewards` (every held-out response) stored in the spec (None: save as is)."""
    if rewards is None:
        rm.save_pretrained(directory)
        return
    values = np.array(rewards)
    normalization = Normalization(mean=float(values.mean()), std=float(values.std()) or 1.0, n=len(values))
    rm.spec = rm.spec.model_copy(update={"normalization": normalization})
    rm.save_pretrained(directory)
