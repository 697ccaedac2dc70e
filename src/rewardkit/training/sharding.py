"""Sharded training: each process holds 1/N of every weight, gradient and optimizer state (FSDP2, DeepSpeed ZeRO).

    torchrun --nproc_per_node 2 -m rewardkit.cli train --config c.yaml --set train.sharding=fsdp ...   # CPUs, gloo
    accelerate launch --config_file configs/accelerate/fsdp2.yaml -m rewardkit.cli train --config c.yaml ...  # GPUs
    accelerate launch --config_file configs/accelerate/zero3.yaml -m rewardkit.cli train --config c.yaml ...  # either

FSDP has two ways in and one way on: accelerate's FSDP plugin shards the model in `accelerate.prepare` (it engages
on GPUs only), and `train.sharding=fsdp` under any multi-process launch shards it here with `fully_shard` over a
one-dimensional device mesh (each transformer block, then the whole model). Either way the parameters become
DTensors sharded along their first dimension, and everything below reads them through
`torch.distributed.checkpoint.state_dict`.

DeepSpeed ZeRO-2/3 runs through accelerate's DeepSpeed plugin, on GPUs or (gloo) on CPUs: the recipe fills in the
micro-batch and clipping, and its checkpoints are DeepSpeed's own, written as safetensors
(`rewardkit.training.deepspeed_checkpoint`).

- a checkpoint is sharded: each process writes its own slice of the weights and optimizer state
  (`model-rank00001-of-00002.safetensors`, `optimizer-rank...` under FSDP; DeepSpeed's per-process files in
  `deepspeed/`) and its RNG, and `sharding.json` records the engine and the world size; resuming with another
  engine or number of processes is refused (the slices would not line up);
- the exported model is gathered: the full weights are collected on the main process and saved by the same
  `save_pretrained` as a one-process run (a stock Hugging Face directory).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor
from transformers import AutoModelForSequenceClassification
from transformers.modeling_utils import set_zero3_state

from rewardkit.config import TrainConfig
from rewardkit.errors import ConfigError, TrainingError
from rewardkit.io import write_json_atomic
from rewardkit.models.reward_model import RewardModel
from rewardkit.training.checkpoint import capture_rng, restore_rng

MANIFEST = "sharding.json"


def uses_fsdp(accelerator: Accelerator, setting: str) -> bool:
    """Whether this run trains sharded with FSDP: accelerate's FSDP plugin engaged, or `train.sharding=fsdp`."""
    return accelerator.distributed_type.value == "FSDP" or setting == "fsdp"


def process_group_kwargs() -> list:
    """What the Accelerator needs for DeepSpeed on CPUs: accelerate finds no process-group backend on a machine
    without an accelerator and would give DeepSpeed a one-process view of an N-process launch, so name gloo."""
    from accelerate.utils import InitProcessGroupKwargs

    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    return [InitProcessGroupKwargs(backend="gloo")] if deepspeed and not torch.cuda.is_available() else []


def uses_deepspeed(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type.value == "DEEPSPEED"


def engine(accelerator: Accelerator, sharded: bool) -> str:
    """What summary.json records: deepspeed, fsdp or none."""
    return "deepspeed" if uses_deepspeed(accelerator) else "fsdp" if sharded else "none"


def shard_model(rm: RewardModel, accelerator: Accelerator) -> None:
    """`fully_shard` every transformer block of the backbone (the model's `_no_split_modules`), then the whole
    reward model, over all processes; in place. Needs a multi-process launch."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        raise TrainingError("train.sharding=fsdp needs several processes: launch with torchrun --nproc_per_node N "
                            "(on CPUs also set ACCELERATE_USE_CPU=true) or accelerate launch --num_processes N")
    # the reward model's output is a view (one value per row): no loss changes it in place, which is what the
    # warning guards against, so it is silenced rather than paid for with a copy every forward
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    blocks = set(getattr(rm.model, "_no_split_modules", None) or [])
    for module in rm.model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(rm, mesh=mesh)


def configure_deepspeed(accelerator: Accelerator, micro_batch: int, config: TrainConfig) -> None:
    """Fill in what DeepSpeed's config leaves to the recipe (accelerate cannot infer it: the recipe has no
    dataloader): the micro-batch, no accumulation of DeepSpeed's own, gradient clipping."""
    cfg = config.train
    if cfg.gradient_accumulation_steps != 1:
        raise ConfigError("under DeepSpeed, train.gradient_accumulation_steps must be 1 (DeepSpeed steps on its own "
                          "accumulation boundaries): raise train.batch_size or the number of processes instead")
    ds = accelerator.state.deepspeed_plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = micro_batch
    ds["train_batch_size"] = micro_batch * accelerator.num_processes
    ds["gradient_accumulation_steps"] = 1
    ds["gradient_clipping"] = config.optim.max_grad_norm or 0.0


def gather_model(model: torch.nn.Module, rm: RewardModel, accelerator: Accelerator) -> RewardModel | None:
    """The whole model, gathered from every process's shards (FSDP or DeepSpeed ZeRO) onto the main process's CPU
    as a plain (unsharded) RewardModel with the same tokenizer and spec; None on the other processes. Every process
    must call it."""
    if uses_deepspeed(accelerator):  # ZeRO-3: stage3_gather_16bit_weights_on_model_save; None off the main process
        full = {key: value.cpu() for key, value in (accelerator.get_state_dict(model) or {}).items()}
    else:
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not accelerator.is_main_process:
        return None
    # transformers builds every model partitioned while ZeRO-3 is configured, which needs all processes; this
    # one is whole and the main process's alone
    with set_zero3_state() if uses_deepspeed(accelerator) else nullcontext():
        backbone = AutoModelForSequenceClassification.from_config(rm.model.config)
    plain = RewardModel(backbone, rm.tokenizer, rm.spec)
    plain.load_state_dict(full)
    return plain.eval()


def rank_file(kind: str, rank: int, world: int) -> str:
    return f"{kind}-rank{rank:05d}-of-{world:05d}.safetensors"


def local_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """This process's slice of every tensor of a flat state dict, and its other (plain) values."""
    tensors, plain = {}, {}
    for key, value in state.items():
        if isinstance(value, DTensor):
            tensors[key] = value.to_local().detach().cpu().contiguous()
        elif torch.is_tensor(value):
            tensors[key] = value.detach().cpu().contiguous()
        else:
            plain[key] = value
    return tensors, plain


def save_sharded_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler, progress: dict,
                            accelerator: Accelerator) -> None:
    """Every process writes its slice into DIRECTORY.tmp (FSDP's DTensor shards, or DeepSpeed's own files in
    safetensors); once all have, the main process adds the scheduler, the manifest and progress.json (what marks a
    checkpoint complete) and renames the folder into place."""
    rank, world = accelerator.process_index, accelerator.num_processes
    tmp = directory.with_name(directory.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if uses_deepspeed(accelerator):
        from rewardkit.training.deepspeed_checkpoint import save_deepspeed_state

        save_deepspeed_state(tmp, model)
    else:
        save_fsdp_state(tmp, model, optimizer, rank, world)
    rng_tensors, rng_meta = capture_rng()
    save_file(rng_tensors, str(tmp / rank_file("rng", rank, world)))
    write_json_atomic(tmp / f"rng-rank{rank:05d}.json", rng_meta)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / "scheduler.json", scheduler.state_dict())
        write_json_atomic(tmp / MANIFEST, {"engine": checkpoint_engine(accelerator), "world_size": world})
        write_json_atomic(tmp / "progress.json", progress)
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
    accelerator.wait_for_everyone()


def checkpoint_engine(accelerator: Accelerator) -> str:
    """What wrote a sharded checkpoint (its manifest's `engine`): DeepSpeed's ZeRO stage, or FSDP2."""
    if uses_deepspeed(accelerator):
        return f"deepspeed-zero{accelerator.state.deepspeed_plugin.zero_stage}"
    return "fsdp2"


def save_fsdp_state(directory: Path, model: torch.nn.Module, optimizer, rank: int, world: int) -> None:
    """This process's DTensor shards of the weights and optimizer state, and the optimizer's plain values."""
    weights, _ = local_tensors(get_model_state_dict(model))
    save_file(weights, str(directory / rank_file("model", rank, world)))
    optimizer_state = get_optimizer_state_dict(model, inner(optimizer),
                                               options=StateDictOptions(flatten_optimizer_state_dict=True))
    tensors, plain = local_tensors(optimizer_state)
    save_file(tensors, str(directory / rank_file("optimizer", rank, world)))
    if rank == 0:
        write_json_atomic(directory / "optimizer.json", plain)


def is_sharded_checkpoint(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def load_sharded_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler,
                            accelerator: Accelerator) -> dict:
    """Restore this process's slice of a sharded checkpoint; another engine or world size than the one that saved
    it is a ConfigError."""
    rank, world = accelerator.process_index, accelerator.num_processes
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest["engine"] != checkpoint_engine(accelerator):
        raise ConfigError(f"{directory} was saved by {manifest['engine']}; this run is "
                          f"{checkpoint_engine(accelerator)}: resume with the launcher config it was trained with")
    if manifest["world_size"] != world:
        raise ConfigError(f"{directory} was saved sharded over {manifest['world_size']} processes; this run has "
                          f"{world}: resume with {manifest['world_size']} processes (the shards of one process do not "
                          "fit another's)")
    if uses_deepspeed(accelerator):
        from rewardkit.training.deepspeed_checkpoint import load_deepspeed_state

        load_deepspeed_state(directory, model)
    else:
        load_fsdp_state(directory, model, optimizer, rank, world)
    scheduler.load_state_dict(json.loads((directory / "scheduler.json").read_text()))
    restore_rng(load_file(str(directory / rank_file("rng", rank, world))),
                json.loads((directory / f"rng-rank{rank:05d}.json").read_text()))
    return json.loads((directory / "progress.json").read_text())


def load_fsdp_state(directory: Path, model: torch.nn.Module, optimizer, rank: int, world: int) -> None:
    template = get_model_state_dict(model)
    set_model_state_dict(model, as_shards(template, load_file(str(directory / rank_file("model", rank, world)))))
    optimizer_template = get_optimizer_state_dict(model, inner(optimizer),
                                                  options=StateDictOptions(flatten_optimizer_state_dict=True))
    state = as_shards(optimizer_template, load_file(str(directory / rank_file("optimizer", rank, world))))
    state |= json.loads((directory / "optimizer.json").read_text())
    set_optimizer_state_dict(model, inner(optimizer), state,
                             options=StateDictOptions(flatten_optimizer_state_dict=True))


def as_shards(template: dict, local: dict[str, torch.Tensor]) -> dict:
    """Saved local slices as the DTensors (or plain tensors) that `template` holds under the same keys."""
    missing = sorted(set(k for k, v in template.items() if torch.is_tensor(v)) - set(local))
    if missing:
        raise ConfigError(f"the sharded checkpoint lacks {len(missing)} tensors of this model (first: {missing[0]}): "
                          "it was saved from another model or config")
    restored = {}
    for key, value in template.items():
        if isinstance(value, DTensor):
            restored[key] = DTensor.from_local(local[key].to(value.device, value.dtype), value.device_mesh,
                                               value.placements, shape=value.shape, stride=value.stride())
        elif torch.is_tensor(value):
            restored[key] = local[key].to(value.device, value.dtype)
    return restored


def inner(optimizer):
    """The torch optimizer inside accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)
