"""The training recipe: reward modeling on `accelerate`, one readable loop for every task family.

    rewardkit train --config configs/minilm.yaml --set optim.lr=1e-5 --output-dir runs/minilm
    accelerate launch --multi_gpu -m rewardkit.cli train --config ... --output-dir ...   # same code, many GPUs

The task (`rewardkit.tasks`: pairs, rankings, rated responses or step-labelled solutions) says what an example
is, its loss and its evaluation; the loop is the same for all. Each optimizer step takes one global batch of
`train.batch_size` examples (the same for a seed, whatever the number of processes); each process takes its
share, in `gradient_accumulation_steps` micro-batches.

`train_model` reads top to bottom: `setup` builds a `Run` (everything fixed for the run) and a `TrainState`
(where the loop stands, what checkpoints save); each step is `train_step`, then the phases that run when due.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.optim.lr_scheduler import LRScheduler

from rewardkit.config import TrainConfig
from rewardkit.errors import TrainingError
from rewardkit.io import finite_or_none, write_json_atomic
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.precision import autocast, resolve_precision
from rewardkit.progress import TrainProgress
from rewardkit.tasks.base import Task, TrainingData
from rewardkit.tasks.registry import build_task
from rewardkit.training import checkpoint, sharding
from rewardkit.training.batches import EpochBatches
from rewardkit.training.debias import quality_head_only, rebalance_training_set
from rewardkit.training.log import TrainLog, save_resolved_config
from rewardkit.training.setup import (
    build_model,
    build_optimizer,
    build_scheduler,
    check_distributed_type,
    check_launch,
    count_steps,
    encode_training_data,
    load_training_data,
    micro_batch_size,
    resolve_share_prefix,
    seed_everything,
)

LN2 = math.log(2)


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict | None
    summary: dict


@dataclass
class TrainState:
    """Where the loop stands. Checkpoints save the first four fields (progress.json); the rest count this process's
    own run (they restart on resume)."""

    step: int = 0  # optimizer steps done
    best_eval_score: float | None = None
    evals_without_improvement: int = 0
    best_step: int | None = None
    examples_seen: int = 0
    steps_at_ln2: int = 0  # consecutive steps whose pair loss sat at ln 2
    started: float = field(default_factory=time.perf_counter, compare=False, repr=False)

    @classmethod
    def from_progress(cls, progress: dict) -> TrainState:
        """The state a checkpoint's progress.json records."""
        return cls(step=progress["step"], best_eval_score=progress["best_eval_score"],
                   evals_without_improvement=progress["evals_without_improvement"],
                   best_step=progress.get("best_step"))

    def progress(self, config: TrainConfig) -> dict:
        """The progress.json record: step, best_eval_score, evals_without_improvement, best_step (once set), config."""
        progress = {"step": self.step, "best_eval_score": self.best_eval_score,
                    "evals_without_improvement": self.evals_without_improvement}
        if self.best_step is not None:
            progress["best_step"] = self.best_step
        return progress | {"config": config.model_dump(mode="json")}

    def record_eval(self, score: float | None) -> bool:
        """Count an evaluation at this step; True when its score is the best so far. An undefined score (None)
        counts for nothing: neither best nor without improvement."""
        if score is None:
            return False
        if self.best_eval_score is None or score > self.best_eval_score:
            self.best_eval_score, self.evals_without_improvement, self.best_step = score, 0, self.step
            return True
        self.evals_without_improvement += 1
        return False

    def seconds(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class Run:
    """What setup builds for the loop: the prepared model and optimizer, the encoded data, the fixed numbers."""

    config: TrainConfig
    output_dir: Path
    accelerator: Accelerator
    precision: str  # bf16 or fp32
    task: Task
    rm: RewardModel  # the bare reward model (its spec tells the loss how to read it)
    peft_model: object | None  # the PEFT wrapper when training LoRA adapters (merged once, at the end)
    model: torch.nn.Module  # rm as accelerate prepared it (DDP-wrapped on several processes; sharded under FSDP)
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    share_prefix: bool
    train_set: list
    eval_set: list
    summary: dict  # what loading and encoding the data reported, the start of summary.json
    batches: EpochBatches
    micro_batch: int  # examples per micro-batch on each process
    steps_per_epoch: int
    total_steps: int
    log: TrainLog
    sharded: bool = False  # FSDP or DeepSpeed: each process holds a slice of the weights (`training.sharding`)

    def unwrapped(self) -> RewardModel:
        return unwrap(self.accelerator, self.model)

    def whole(self) -> RewardModel | None:
        """The bare reward model with all its weights on the main process (gathered from the shards under FSDP;
        every process must call it then), None on the others."""
        if self.sharded:
            return sharding.gather_model(self.model, self.rm, self.accelerator)
        return self.unwrapped() if self.accelerator.is_main_process else None


def train_model(config: TrainConfig, output_dir: str | Path, *, show_progress: bool = True,
                data: TrainingData | None = None) -> TrainResult:
    """One model: the recipe. `data` replaces loading the configured sources (ensemble members' resamples)."""
    run, state = setup(config, Path(output_dir), data)
    bar = TrainProgress(run.total_steps, config.train.batch_size, unit=run.task.unit,
                        enabled=show_progress and run.accelerator.is_main_process)
    with bar:
        bar.advance_to(state.step)
        while state.step < run.total_steps:
            loss, accuracy = train_step(run, state.step)
            state.step += 1
            state.examples_seen += config.train.batch_size
            check_loss(run, state, loss)
            bar.update(state.step, loss, accuracy)
            log_if_due(run, state, loss, accuracy)
            if evaluate_if_due(run, state):  # True: early stopping ends the run
                break
            checkpoint_if_due(run, state)
            run.accelerator.wait_for_everyone()
    return finish(run, state)


# setup: accelerator, task, model, data, optimizer, scheduler; prepare, resume, open the log
def setup(config: TrainConfig, output_dir: Path, data: TrainingData | None) -> tuple[Run, TrainState]:
    """Build and prepare everything the loop uses; the state is a checkpoint's when `train.resume` is set."""
    cfg = config.train
    precision = resolve_precision(cfg.precision)
    # autocast is ours, not accelerate's: its precision is fixed once per process, and one process may train
    # several models (tests, notebooks) in different precisions
    accelerator = Accelerator(mixed_precision="no", log_with=None, kwargs_handlers=sharding.process_group_kwargs())
    check_launch(accelerator)
    check_distributed_type(accelerator)
    fsdp, deepspeed = sharding.uses_fsdp(accelerator, cfg.sharding), sharding.uses_deepspeed(accelerator)
    sharded = fsdp or deepspeed
    shards_itself = fsdp and accelerator.distributed_type.value != "FSDP"  # accelerate's plugin shards in prepare
    if sharded and config.model.lora:
        raise TrainingError("LoRA adapters are not sharded: train them with DDP (train.sharding=none); FSDP and "
                            "DeepSpeed are for full fine-tuning of a model too big for one device")
    if not cfg.resume and checkpoint.list_checkpoints(output_dir):
        raise TrainingError(f"{output_dir} holds checkpoints of an earlier run: resume it with train.resume=latest, "
                            "or choose a new --output-dir")
    seed_everything(cfg.seed)
    task = build_task(config.task, use_margin=cfg.use_margin,
                      center_rewards_coefficient=cfg.center_rewards_coefficient)
    rm, peft_model = build_model(config.model, config.task)
    train_set, eval_set, summary = encode_training_data(task, rm, data or load_training_data(task, config))
    train_set, summary["rebalance"] = rebalance_training_set(train_set, config.data, cfg.seed, accelerator.print)
    micro_batch = micro_batch_size(cfg.batch_size, accelerator.num_processes, cfg.gradient_accumulation_steps)
    steps_per_epoch, total_steps = count_steps(len(train_set), cfg.batch_size, cfg.epochs, task.unit)
    share_prefix = resolve_share_prefix(cfg.share_prefix, rm)
    if shards_itself:
        sharding.shard_model(rm.to(accelerator.device), accelerator)
    optimizer = build_optimizer(rm, config)  # after sharding: the optimizer holds the sharded parameters
    if shards_itself:
        model, optimizer = rm, accelerator.prepare(optimizer)
    else:
        if deepspeed:
            sharding.configure_deepspeed(accelerator, micro_batch, config)
        model, optimizer = accelerator.prepare(rm, optimizer)
    # after prepare: DeepSpeed's ZeRO optimizer brings its own parameter groups
    scheduler = build_scheduler(optimizer, config.optim, total_steps)
    state = (resume(config, output_dir, accelerator, model, optimizer, scheduler, sharded=sharded) if cfg.resume
             else TrainState())
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_resolved_config(config, output_dir / "config.yaml")
    log = TrainLog(output_dir / "train_log.jsonl", accelerator.is_main_process, cfg.tensorboard,
                   append=bool(cfg.resume))
    batches = EpochBatches([e.width for e in train_set], cfg.batch_size, cfg.seed, cfg.length_grouping)
    run = Run(config=config, output_dir=output_dir, accelerator=accelerator, precision=precision, task=task, rm=rm,
              peft_model=peft_model, model=model, optimizer=optimizer, scheduler=scheduler, share_prefix=share_prefix,
              train_set=train_set, eval_set=eval_set, summary=summary, batches=batches, micro_batch=micro_batch,
              steps_per_epoch=steps_per_epoch, total_steps=total_steps, log=log,
              sharded=sharded)
    return run, state


# resume: the checkpoint's weights, optimizer, scheduler, RNG and progress
def resume(config: TrainConfig, output_dir: Path, accelerator: Accelerator, model: torch.nn.Module,
           optimizer: torch.optim.Optimizer, scheduler: LRScheduler, *, sharded: bool) -> TrainState:
    """Load the checkpoint `train.resume` names (latest: the newest under `output_dir`) into the prepared run."""
    found = checkpoint.find_checkpoint(output_dir, config.train.resume)
    if sharding.is_sharded_checkpoint(found) != sharded:
        saved, now = ("sharded (FSDP or DeepSpeed)", "unsharded") if not sharded else ("unsharded", "sharded")
        raise TrainingError(f"{found} was saved by a {saved} run and this run is {now}: resume it the way it "
                            "was trained (train.sharding and the launcher)")
    if sharded:
        progress = sharding.load_sharded_checkpoint(found, model, optimizer, scheduler, accelerator)
    else:
        progress = checkpoint.load_checkpoint(found, unwrap(accelerator, model), optimizer, scheduler)
    warn_on_config_change(accelerator, progress.get("config"), config)
    accelerator.print(f"resumed from {found} at step {progress['step']}")
    return TrainState.from_progress(progress)


# one optimizer step: micro-batches, backward, clip, step
def train_step(run: Run, step: int) -> tuple[float, float | None]:
    """Train on global batch `step` (this process's share, in micro-batches); its mean loss and accuracy (None when
    the task reports none)."""
    accelerator, task = run.accelerator, run.task
    run.model.train()
    batch = [run.train_set[i] for i in run.batches.for_step(step, run.steps_per_epoch)]
    local = batch[accelerator.process_index :: accelerator.num_processes]
    batch_weight = sum(task.weight(e) for e in batch)
    loss_sum, correct = torch.zeros((), device=accelerator.device), None  # correct: None when no accuracy
    micro_batches = [local[i : i + run.micro_batch] for i in range(0, len(local), run.micro_batch)]
    for i, micro in enumerate(micro_batches):
        syncing = i == len(micro_batches) - 1
        with nullcontext() if syncing else accelerator.no_sync(run.model):
            with autocast(accelerator.device, run.precision):
                weighted_sum, micro_correct = task.loss(run.model, run.rm, micro, accelerator.device,
                                                        share_prefix=run.share_prefix)
            # this micro-batch's share of the global batch's weighted mean, scaled so that DDP's average
            # over processes and the sum over micro-batches give exactly that mean, however it is split
            loss = weighted_sum * accelerator.num_processes / batch_weight
            accelerator.backward(loss)
        loss_sum += loss.detach()
        if micro_correct is not None:
            correct = micro_correct if correct is None else correct + micro_correct
    if run.config.optim.max_grad_norm:
        accelerator.clip_grad_norm_(run.model.parameters(), run.config.optim.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    loss = accelerator.reduce(loss_sum, "mean").item()
    return loss, None if correct is None else accelerator.reduce(correct, "sum").item() / len(batch)


# loss checks: stop on a non-finite loss, warn on a pair loss stuck at ln 2
def check_loss(run: Run, state: TrainState, loss: float) -> None:
    """Raise on a non-finite loss; warn once the pair loss has sat at ln 2 for `train.stuck_loss_steps` steps."""
    if not math.isfinite(loss):
        raise TrainingError(f"loss became {loss} at step {state.step}: lower optim.lr, use train.precision=fp32, "
                            "or audit the data (`rewardkit data audit`)")
    stuck = run.task.unit == "pairs" and abs(loss - LN2) < 1e-3
    state.steps_at_ln2 = state.steps_at_ln2 + 1 if stuck else 0
    if state.steps_at_ln2 == run.config.train.stuck_loss_steps:
        run.accelerator.print(
            f"warning: the loss has sat at ln 2 for {state.steps_at_ln2} steps: chosen and rejected get the same "
            "reward. Check that the scored token differs between them (spec pooling, truncation)."
        )


# log: every `log_every` steps and the last
def log_if_due(run: Run, state: TrainState, loss: float, accuracy: float | None) -> None:
    """Write the step's loss, accuracy, learning rate, epoch and throughput to the train log when due."""
    if state.step % run.config.train.log_every == 0 or state.step == run.total_steps:
        run.log.write(state.step, loss=loss, accuracy=accuracy, lr=run.scheduler.get_last_lr()[0],
                      epoch=round(state.step / run.steps_per_epoch, 4),
                      examples_per_s=round(state.examples_seen / state.seconds(), 3))


# evaluate: every `eval_every` steps and the last; keep the best model, stop early when patience runs out
def evaluate_if_due(run: Run, state: TrainState) -> bool:
    """Evaluate on the held-out set when due, saving the model when it is the best so far; True when early
    stopping ends the run."""
    cfg = run.config.train
    due = cfg.eval_every and (state.step % cfg.eval_every == 0 or state.step == run.total_steps)
    if not (due and run.eval_set):
        return False
    evaluation = run.task.evaluate(run.unwrapped(), run.eval_set, bootstrap=0)
    run.log.write(state.step, **{f"eval_{run.task.score_name}": evaluation.score})
    if state.record_eval(evaluation.score):
        if run.peft_model is None:  # adapters are merged once, at the end
            whole = run.whole()
            if whole is not None:
                with quality_head_only(whole, run.config.task.length_head) as scored:  # ODIN: quality alone
                    save_with_normalization(scored, run.output_dir / "model", evaluation.rewards)
        return False
    patience = cfg.early_stopping_patience
    if patience and state.evals_without_improvement >= patience:
        run.accelerator.print(f"early stopping at step {state.step}: no eval improvement in {patience} evaluations")
        return True
    return False


# checkpoint: every `save_every` steps, keeping the newest `keep_checkpoints`
def checkpoint_if_due(run: Run, state: TrainState) -> None:
    """Save a resumable checkpoint when due: by the main process, or each process its shard under FSDP."""
    cfg = run.config.train
    if not (cfg.save_every and state.step % cfg.save_every == 0):
        return
    directory = run.output_dir / f"{checkpoint.PREFIX}{state.step:06d}"
    if run.sharded:
        sharding.save_sharded_checkpoint(directory, run.model, run.optimizer, run.scheduler,
                                         state.progress(run.config), run.accelerator)
    elif run.accelerator.is_main_process:
        checkpoint.save_checkpoint(directory, run.unwrapped(), run.optimizer, run.scheduler,
                                   state.progress(run.config))
    if run.accelerator.is_main_process:
        checkpoint.prune_checkpoints(run.output_dir, cfg.keep_checkpoints)


# finish: the final model, metrics.json, summary.json
def finish(run: Run, state: TrainState) -> TrainResult:
    """Save the final model with its held-out metrics, and the run's summary."""
    elapsed = state.seconds()
    metrics = None
    whole = run.whole()
    if run.accelerator.is_main_process:
        # with early stopping, the model saved at the best evaluation is the final one
        keep_best = (bool(run.config.train.early_stopping_patience) and run.peft_model is None
                     and state.best_eval_score is not None)
        with quality_head_only(whole, run.config.task.length_head) as scored:  # ODIN: quality alone
            metrics = finish_model(run.task, scored, run.peft_model, run.output_dir / "model", run.eval_set,
                                   keep_best=keep_best)
        write_metrics(run.output_dir, metrics)
    summary = run.summary | {
        "steps": state.step, "batch_size": run.config.train.batch_size,
        "trained_examples_seen": state.step * run.config.train.batch_size,
        "share_prefix": run.share_prefix, "eval_score_name": run.task.score_name,
        "best_eval_score": state.best_eval_score, "best_step": state.best_step, "train_seconds": round(elapsed, 1),
        "examples_per_s": round(state.examples_seen / elapsed, 2) if elapsed else None,
        "processes": run.accelerator.num_processes, "precision": run.precision,
        "sharding": sharding.engine(run.accelerator, run.sharded)}
    if run.accelerator.is_main_process:
        write_json_atomic(run.output_dir / "summary.json", summary)
    run.log.close()
    run.accelerator.wait_for_everyone()
    return TrainResult(run.output_dir / "model", metrics, summary)


def unwrap(accelerator: Accelerator, model) -> RewardModel:
    """The bare reward model, without the DDP wrapper: evaluation and saving run in full precision."""
    return accelerator.unwrap_model(model, keep_fp32_wrapper=False)


def warn_on_config_change(accelerator: Accelerator, saved: dict | None, config: TrainConfig) -> None:
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
    return finite_or_none(evaluation.metrics)


def write_metrics(output_dir: Path, metrics: dict | None) -> None:
    """OUTPUT_DIR/metrics.json, or none when there are no metrics (an overwritten run's file does not stay)."""
    if metrics:
        write_json_atomic(output_dir / "metrics.json", metrics)
    else:
        (output_dir / "metrics.json").unlink(missing_ok=True)


def save_with_normalization(rm: RewardModel, directory: Path, rewards: list[float] | None) -> None:
    """Save with the mean and std of `rewards` (every held-out response) stored in the spec (None: save as is)."""
    if rewards is None:
        rm.save_pretrained(directory)
        return
    values = np.array(rewards)
    normalization = Normalization(mean=float(values.mean()), std=float(values.std()) or 1.0, n=len(values))
    rm.spec = rm.spec.model_copy(update={"normalization": normalization})
    rm.save_pretrained(directory)
