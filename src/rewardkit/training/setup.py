"""Everything the recipe builds before its loop: precision, seeds, the model (LoRA or full), data, step counts,
optimizer and scheduler."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import torch
from accelerate import Accelerator
from torch.optim.lr_scheduler import LRScheduler
from transformers import get_scheduler

from rewardkit.config import LoraConfig, ModelConfig, OptimConfig, TaskConfig, TrainConfig
from rewardkit.errors import TrainingError
from rewardkit.models.backbones import backbone_config, head_module, resolve_backbone
from rewardkit.models.reward_model import RewardModel
from rewardkit.tasks.base import NoTrainingData, Task, TrainingData
from rewardkit.training.debias import add_length_head


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


def check_backbone(config: ModelConfig) -> None:
    """What building the model refuses about its backbone (an unknown name, `max_length` over its positions),
    found from its config alone: an ensemble checks it before loading its data."""
    backbone_config(config.backbone, resolve_backbone(config.backbone), max_length=config.max_length,
                    trust_remote_code=config.trust_remote_code)


def build_model(config: ModelConfig, task: TaskConfig) -> tuple[RewardModel, object | None]:
    """The reward model to train (its outputs and spec as the task needs), and its PEFT wrapper when training
    LoRA adapters."""
    rm = RewardModel.from_backbone(config.backbone, max_length=config.max_length, format=config.format,
                                   trust_remote_code=config.trust_remote_code,
                                   quantize_4bit=bool(config.lora and config.lora.quantize_4bit),
                                   attributes=task.attributes if task.type == "pointwise" else None,
                                   step_separator=task.step_separator if task.type == "process" else None,
                                   token_types=config.token_type_ids)
    weights = task.attribute_weights
    attribute_weights = None if weights is None else [weights.get(name, 0.0) for name in task.attributes]
    rm.spec = rm.spec.model_copy(update={"task": task.type, "loss": task.loss, "attribute_weights": attribute_weights})
    if task.length_head:
        add_length_head(rm)  # ODIN: a second output row, trained and checkpointed but never exported
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
    # lazy: peft is imported only by LoRA runs (it pulls in more of transformers at import time)
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


def load_training_data(task: Task, config: TrainConfig) -> TrainingData:
    """The task's records from every source: eval sources held out, else the training records split by prompt."""
    try:
        return task.load(config.data, config.train.seed)
    except NoTrainingData as error:
        raise TrainingError(str(error)) from None


def encode_training_data(task: Task, rm: RewardModel, data: TrainingData):
    train_set, dropped_train = task.encode(rm, data.train)
    eval_set, dropped_eval = task.encode(rm, data.eval)
    summary = data.summary | {"task": task.unit, "dropped_too_long": {"train": dropped_train, "eval": dropped_eval},
                              "trained_examples": len(train_set), "evaluated_examples": len(eval_set),
                              "spec": rm.spec.model_dump(mode="json", exclude={"chat_template"})}
    return train_set, eval_set, summary


def count_steps(examples: int, global_batch: int, epochs: float, unit: str) -> tuple[int, int]:
    """(steps per epoch, total steps): each step takes one full global batch; `epochs` may be fractional."""
    steps_per_epoch = examples // global_batch
    if steps_per_epoch == 0:
        raise TrainingError(f"{examples} usable training {unit} is fewer than one batch of {global_batch}")
    return steps_per_epoch, max(1, math.ceil(epochs * steps_per_epoch))


def micro_batch_size(global_batch: int, processes: int, accumulation: int) -> int:
    if global_batch % (processes * accumulation):
        raise TrainingError(f"train.batch_size {global_batch} must divide by processes ({processes}) x "
                            f"gradient_accumulation_steps ({accumulation})")
    return global_batch // (processes * accumulation)


def build_optimizer(rm: RewardModel, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel for all parameters instead of a handful per parameter) where every trainable
    parameter is a float tensor on CPU or CUDA; biases and norm weights get no weight decay."""
    decay, no_decay = [], []
    for p in rm.parameters():
        if p.requires_grad:  # a ZeRO-3 partitioned parameter is a flat placeholder; ds_shape is its real shape
            (no_decay if len(getattr(p, "ds_shape", p.shape)) < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    trainable = decay + no_decay
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in trainable)
    return torch.optim.AdamW(groups, lr=config.optim.lr, betas=config.optim.betas, fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> LRScheduler:
    """The `optim.schedule` learning rate over `total_steps`, after `optim.warmup_ratio` of them warming up."""
    return get_scheduler(
        config.schedule if config.schedule != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=round(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )


def check_distributed_type(accelerator: Accelerator) -> None:
    """The engines the recipe runs on: DDP, FSDP and DeepSpeed ZeRO (`rewardkit.training.sharding`)."""
    kind = accelerator.distributed_type.value
    if kind == "MEGATRON_LM":
        raise TrainingError(f"{kind} is not supported: launch with DDP (accelerate launch --multi_gpu), FSDP "
                            "(--config_file configs/accelerate/fsdp2.yaml, or train.sharding=fsdp) or DeepSpeed")


def check_launch(accelerator: Accelerator) -> None:
    """A launcher that started N processes but no process group would train N unrelated models: refuse it (e.g.
    `accelerate launch --use_fsdp` on a machine without GPUs, whose plugin does not engage)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and accelerator.num_processes == 1:
        kind = accelerator.distributed_type.value
        raise TrainingError(
            f"launched as {world} processes, but accelerate set up no process group ({kind}): each would train "
            "its own model. On CPUs launch with torchrun and ACCELERATE_USE_CPU=true (or "
            "accelerate launch --cpu), with train.sharding=fsdp for FSDP; accelerate's FSDP plugin needs GPUs")
