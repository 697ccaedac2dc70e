"""The training recipe: Bradley-Terry reward modeling on `accelerate`, one readable loop.

    rewardkit train --config configs/minilm.yaml --set optim.lr=1e-5 --output-dir runs/minilm
    accelerate launch --multi_gpu -m rewardkit.cli train --config ... --output-dir ...   # same code, many GPUs

Each optimizer step takes one global batch of `train.batch_size` pairs (the same for a seed, whatever the number
of processes); each process takes its share, in `gradient_accumulation_steps` micro-batches.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from transformers import get_scheduler

from rewardkit import checkpoint
from rewardkit.config import LoraConfig, ModelConfig, TrainConfig
from rewardkit.data import PreferencePair, load_preferences, prepare_preferences
from rewardkit.io import write_json_atomic, write_text_atomic
from rewardkit.losses import bradley_terry_loss
from rewardkit.model import RewardModel, head_module
from rewardkit.pairs import EncodedComparison, comparison_rewards, encode_comparisons, evaluate_comparisons, pair_batches
from rewardkit.progress import TrainProgress
from rewardkit.spec import Normalization

LN2 = math.log(2)


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, no usable data); the message says what to change."""


@dataclass
class TrainingData:
    train: list[PreferencePair]
    eval: list[PreferencePair]
    summary: dict


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict | None
    summary: dict


def train(config: TrainConfig, output_dir: str | Path, *, show_progress: bool = True) -> TrainResult:
    """Train a reward model as `config` says; writes OUTPUT_DIR/model, metrics.json, summary.json, train_log.jsonl."""
    output_dir = Path(output_dir)
    cfg = config.train
    accelerator = Accelerator(mixed_precision=resolve_precision(cfg.precision), log_with=None)
    check_distributed_type(accelerator)
    if not cfg.resume and checkpoint.list_checkpoints(output_dir):
        raise TrainingError(f"{output_dir} holds checkpoints of an earlier run: resume it with train.resume=latest, "
                            "or choose a new --output-dir")
    seed_everything(cfg.seed)
    rm, peft_model = build_model(config.model)
    data = load_training_data(config, cfg.seed)
    train_set, eval_set, summary = encode_training_data(rm, data)
    global_batch = cfg.batch_size
    local_micro = micro_batch_size(global_batch, accelerator.num_processes, cfg.gradient_accumulation_steps)
    steps_per_epoch = len(train_set) // global_batch
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(train_set)} usable training pairs is fewer than one batch of {global_batch}")
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
    progress_state = {"step": 0, "best_eval_accuracy": None, "evals_without_improvement": 0}
    if cfg.resume:
        found = checkpoint.find_checkpoint(output_dir, cfg.resume)
        progress_state = checkpoint.load_checkpoint(found, unwrap(accelerator, model), optimizer, scheduler)
        warn_on_config_change(accelerator, progress_state.get("config"), config)
        accelerator.print(f"resumed from {found} at step {progress_state['step']}")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_resolved_config(config, output_dir / "config.yaml")
    log = TrainLog(output_dir / "train_log.jsonl", accelerator.is_main_process, cfg.tensorboard, append=bool(cfg.resume))
    epoch_batches = EpochBatches(train_set, global_batch, cfg.seed, cfg.length_grouping)
    bar = TrainProgress(total_steps, global_batch, enabled=show_progress and accelerator.is_main_process)
    stuck_logs, metrics, start_time = 0, None, time.perf_counter()
    pairs_seen = 0
    with bar:
        bar.advance_to(progress_state["step"])
        for step in range(progress_state["step"], total_steps):
            model.train()
            batch = [train_set[i] for i in epoch_batches.for_step(step, steps_per_epoch)]
            local = batch[accelerator.process_index :: accelerator.num_processes]
            loss_sum, correct = torch.zeros((), device=accelerator.device), torch.zeros((), device=accelerator.device)
            micro_batches = [local[i : i + local_micro] for i in range(0, len(local), local_micro)]
            for i, micro in enumerate(micro_batches):
                syncing = i == len(micro_batches) - 1
                with nullcontext() if syncing else accelerator.no_sync(model):
                    rewards_chosen, rewards_rejected = comparison_rewards(model, rm, micro, accelerator.device,
                                                                          share_prefix=share_prefix)
                    loss = pair_loss(rewards_chosen, rewards_rejected, micro, cfg, batch, accelerator.num_processes)
                    accelerator.backward(loss)
                loss_sum += loss.detach()
                correct += (rewards_chosen > rewards_rejected).sum().detach()
            if config.optim.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step_loss = accelerator.reduce(loss_sum, "mean").item()
            step_accuracy = accelerator.reduce(correct, "sum").item() / len(batch)
            pairs_seen += len(batch)
            if not math.isfinite(step_loss):
                raise TrainingError(
                    f"loss became {step_loss} at step {step + 1}: lower optim.lr, use train.precision=fp32, "
                    "or audit the data (`rewardkit data audit`)"
                )
            stuck_logs = stuck_logs + 1 if abs(step_loss - LN2) < 1e-3 else 0
            if stuck_logs == cfg.stuck_loss_steps:
                accelerator.print(
                    f"warning: the loss has sat at ln 2 for {stuck_logs} steps: chosen and rejected get the same "
                    "reward. Check that the scored token differs between them (spec pooling, truncation)."
                )
            bar.update(step + 1, step_loss, step_accuracy)
            if (step + 1) % cfg.log_every == 0 or step + 1 == total_steps:
                elapsed = time.perf_counter() - start_time
                log.write(step + 1, loss=step_loss, accuracy=step_accuracy, lr=scheduler.get_last_lr()[0],
                          epoch=round((step + 1) / steps_per_epoch, 4), pairs_per_s=round(pairs_seen / elapsed, 3))
            progress_state["step"] = step + 1
            if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == total_steps) and eval_set:
                metrics, rewards = evaluate_comparisons(unwrap(accelerator, model), eval_set, bootstrap=0)
                log.write(step + 1, eval_accuracy=metrics["overall"]["accuracy"])
                if track_improvement(progress_state, metrics["overall"]["accuracy"]):
                    progress_state["best_step"] = step + 1
                    if accelerator.is_main_process and peft_model is None:  # adapters are merged once, at the end
                        save_with_normalization(unwrap(accelerator, model), output_dir / "model", rewards)
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
        keep_best = cfg.early_stopping_patience and peft_model is None and progress_state["best_eval_accuracy"] is not None
        metrics = finish_model(unwrap(accelerator, model), peft_model, output_dir / "model", eval_set,
                               keep_best=bool(keep_best))
        if metrics:
            write_json_atomic(output_dir / "metrics.json", metrics)
    summary |= {"steps": progress_state["step"], "share_prefix": share_prefix,
                "best_eval_accuracy": progress_state["best_eval_accuracy"], "best_step": progress_state.get("best_step"), "train_seconds": round(elapsed, 1),
                "pairs_per_s": round(pairs_seen / elapsed, 2) if elapsed else None,
                "processes": accelerator.num_processes, "precision": accelerator.mixed_precision}
    if accelerator.is_main_process:
        write_json_atomic(output_dir / "summary.json", summary)
    log.close()
    accelerator.wait_for_everyone()
    return TrainResult(output_dir / "model", metrics, summary)


# ---- setup --------------------------------------------------------------------------------------------------------
def resolve_precision(precision: str) -> str:
    """'bf16' or 'no' (fp32); auto picks bf16 on CUDA with bf16 and on CPUs with AMX / AVX512-BF16."""
    if precision == "fp32":
        return "no"
    if precision == "bf16":
        return "bf16"
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_fast_bf16() else "no"


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_share_prefix(setting: bool | str, rm: RewardModel) -> bool:
    """Prefix sharing needs a causal backbone scored at the last token; auto turns it on exactly then."""
    causal = rm.spec.pooling == "last"
    if setting is True and not causal:
        raise TrainingError("train.share_prefix needs a decoder backbone (an encoder's prompt tokens see the reply)")
    return causal if setting == "auto" else setting


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: ModelConfig) -> tuple[RewardModel, object | None]:
    """The reward model to train, and its PEFT wrapper when training LoRA adapters."""
    rm = RewardModel.from_backbone(config.backbone, max_length=config.max_length, format=config.format,
                                   trust_remote_code=config.trust_remote_code,
                                   quantize_4bit=bool(config.lora and config.lora.quantize_4bit))
    if config.disable_dropout:
        disable_dropout(rm.model)
    if config.gradient_checkpointing:
        rm.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    peft_model = add_lora(rm, config.lora) if config.lora else None
    return rm, peft_model


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every dropout: the two sides of a pair then see the same network (and training is faster)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def add_lora(rm: RewardModel, config: LoraConfig):
    """Inject LoRA adapters into the backbone; the score head stays fully trainable."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if config.quantize_4bit:
        rm.model = prepare_model_for_kbit_training(rm.model)
    head = head_module(rm.model)
    head_names = {name for name, module in rm.model.named_modules() if module is head}
    peft_model = get_peft_model(rm.model, PeftLoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=config.target_modules,
        exclude_modules=list(head_names)))
    rm.model = peft_model.get_base_model()
    for p in head.parameters():
        p.requires_grad_(True)
    return peft_model


def load_training_data(config: TrainConfig, seed: int) -> TrainingData:
    """Load every source; hold out eval sources, or split the training pairs by prompt when there are none."""
    data = config.data
    train_pairs, train_notes = load_sources(data.train, data.on_bad_record, seed)
    if data.eval:
        eval_pairs, eval_notes = load_sources(data.eval, data.on_bad_record, seed)
        split = prepare_preferences(train_pairs, eval_fraction=0.0, max_pairs_per_prompt=data.max_pairs_per_prompt, seed=seed)
    else:
        eval_notes = {}
        split = prepare_preferences(train_pairs, eval_fraction=data.eval_fraction,
                                    max_pairs_per_prompt=data.max_pairs_per_prompt, seed=seed)
        eval_pairs = split.eval
    if not split.train:
        raise TrainingError("no usable training pairs: see `rewardkit data audit` for what the sources hold")
    summary = {"sources": {"train": train_notes, "eval": eval_notes}, "prepare": split.stats,
               "train_pairs": len(split.train), "eval_pairs": len(eval_pairs)}
    return TrainingData(split.train, eval_pairs if data.eval else split.eval, summary)


def load_sources(sources, on_bad_record: str, seed: int) -> tuple[list[PreferencePair], dict]:
    pairs, notes = [], {}
    for source in sources:
        result = load_preferences(source.path, format=source.format, split=source.split,
                                  on_bad_record=on_bad_record, subset=source.subset)
        loaded = result.pairs
        if source.max_pairs and len(loaded) > source.max_pairs:
            loaded = random.Random(seed).sample(loaded, source.max_pairs)
        notes[source.path] = {"subset": source.subset, "pairs": len(loaded), "loaded": len(result.pairs),
                                               "skipped": len(result.skipped), **result.notes,
                                               "skip_reasons": [f"{s.location}: {s.reason}" for s in result.skipped[:20]]}
        pairs.extend(loaded)
    return pairs, notes


def encode_training_data(rm: RewardModel, data: TrainingData):
    train_set, dropped_train = encode_comparisons(rm, data.train)
    eval_set, dropped_eval = encode_comparisons(rm, data.eval)
    summary = data.summary | {"dropped_too_long": {"train": dropped_train, "eval": dropped_eval},
                              "trained_pairs": len(train_set), "evaluated_pairs": len(eval_set),
                              "spec": rm.spec.model_dump(mode="json", exclude={"chat_template"})}
    return train_set, eval_set, summary


def micro_batch_size(global_batch: int, processes: int, accumulation: int) -> int:
    if global_batch % (processes * accumulation):
        raise TrainingError(f"train.batch_size {global_batch} must divide by processes ({processes}) x "
                            f"gradient_accumulation_steps ({accumulation})")
    return global_batch // (processes * accumulation)


def build_optimizer(rm: RewardModel, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights get no weight decay."""
    decay, no_decay = [], []
    for name, p in rm.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.optim.lr, betas=config.optim.betas)


# ---- loop helpers ---------------------------------------------------------------------------------------------------
def pair_loss(rewards_chosen, rewards_rejected, micro: list[EncodedComparison], cfg, batch: list[EncodedComparison],
              processes: int) -> torch.Tensor:
    """This micro-batch's share of the global batch's (weighted) mean loss, scaled so that DDP's average over
    processes and the sum over accumulated micro-batches give exactly that mean, however the batch is split."""
    device = rewards_chosen.device
    margin = weight = None
    if cfg.use_margin:
        margin = torch.tensor([c.pair.margin or 0.0 for c in micro], device=device)
    if any(c.pair.weight is not None for c in micro):
        weight = torch.tensor([1.0 if c.pair.weight is None else c.pair.weight for c in micro], device=device)
    loss = bradley_terry_loss(rewards_chosen, rewards_rejected, margin=margin, weight=weight,
                              center_rewards_coefficient=cfg.center_rewards_coefficient)
    return loss * processes * pair_weight(micro) / pair_weight(batch)


def pair_weight(comparisons: list[EncodedComparison]) -> float:
    return sum(1.0 if c.pair.weight is None else c.pair.weight for c in comparisons)


def unwrap(accelerator: Accelerator, model) -> RewardModel:
    """The bare reward model, without the autocast wrapper: evaluation and saving run in full precision."""
    return accelerator.unwrap_model(model, keep_fp32_wrapper=False)


def check_distributed_type(accelerator: Accelerator) -> None:
    """Checkpoints and exports gather nothing: sharded setups (DeepSpeed ZeRO, FSDP) would save partial state."""
    kind = accelerator.distributed_type.value
    if kind in ("DEEPSPEED", "FSDP", "MEGATRON_LM"):
        raise TrainingError(f"{kind} is not supported yet: launch with plain DDP (accelerate launch --multi_gpu)")


class EpochBatches:
    """The global batches of each epoch, computed from the seed (so a resumed run sees the same order)."""

    def __init__(self, train_set: list[EncodedComparison], batch_size: int, seed: int, group_by_length: bool) -> None:
        self.lengths = [c.width for c in train_set]
        self.batch_size, self.seed, self.group = batch_size, seed, group_by_length
        self.cached: tuple[int, list[list[int]]] | None = None

    def for_step(self, step: int, steps_per_epoch: int) -> list[int]:
        epoch, index = divmod(step, steps_per_epoch)
        if self.cached is None or self.cached[0] != epoch:
            self.cached = (epoch, pair_batches(self.lengths, self.batch_size, self.seed + epoch, group_by_length=self.group))
        return self.cached[1][index]


def track_improvement(state: dict, accuracy: float) -> bool:
    best = state["best_eval_accuracy"]
    if best is None or accuracy > best:
        state["best_eval_accuracy"], state["evals_without_improvement"] = accuracy, 0
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


def finish_model(rm: RewardModel, peft_model, directory: Path, eval_set: list[EncodedComparison], *,
                 keep_best: bool) -> dict | None:
    """Save the final model (LoRA merged; or keep the best one already saved) and return its held-out metrics."""
    if keep_best:
        rm = RewardModel.from_pretrained(directory)
    elif peft_model is not None:
        rm.model = peft_model.merge_and_unload()
    if not eval_set:
        rm.save_pretrained(directory)
        return None
    metrics, rewards = evaluate_comparisons(rm, eval_set, bootstrap=1000)
    save_with_normalization(rm, directory, rewards)
    return metrics


def save_with_normalization(rm: RewardModel, directory: Path, rewards: list[float]) -> None:
    """Save with the mean and std of `rewards` (every held-out response) stored in the spec."""
    values = np.array(rewards)
    normalization = Normalization(mean=float(values.mean()), std=float(values.std()) or 1.0, n=len(values))
    rm.spec = rm.spec.model_copy(update={"normalization": normalization})
    rm.save_pretrained(directory)


class TrainLog:
    """Metrics as JSON lines (and TensorBoard when asked), written by the main process only."""

    def __init__(self, path: Path, enabled: bool, tensorboard: bool, *, append: bool) -> None:
        self.enabled = enabled
        self.file = path.open("a" if append else "w", encoding="utf-8") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, step: int, **values) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        for key, value in values.items():
            if self.tb is not None and isinstance(value, (int, float)):
                self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()


def save_resolved_config(config: TrainConfig, path: Path) -> None:
    write_text_atomic(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
