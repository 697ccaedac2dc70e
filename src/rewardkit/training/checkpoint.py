"""Resumable training state in safetensors and JSON (no pickle): weights, optimizer, scheduler, RNG, progress.

    checkpoint-000200/
      model.safetensors       all weights of the training module (adapters included)
      optimizer.safetensors   optimizer tensors, flattened as "state.{param}.{name}"
      optimizer.json          optimizer param groups and non-tensor state
      scheduler.json          LR scheduler state
      rng.safetensors         torch (and CUDA) generator states
      rng.json                python and numpy generator states
      progress.json           step, best_eval_score, evals_without_improvement, best_step (once set), config
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from rewardkit.errors import ConfigError
from rewardkit.io import write_json_atomic

PREFIX = "checkpoint-"


def save_checkpoint(directory: Path, module: torch.nn.Module, optimizer, scheduler, progress: dict) -> None:
    """Write the state to a temporary folder, then rename it into place (a crash never leaves half a checkpoint)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(module, str(tmp / "model.safetensors"))
    tensors, meta = flatten_optimizer_state(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    write_json_atomic(tmp / "optimizer.json", meta)
    write_json_atomic(tmp / "scheduler.json", scheduler.state_dict())
    rng_tensors, rng_meta = capture_rng()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    write_json_atomic(tmp / "rng.json", rng_meta)
    write_json_atomic(tmp / "progress.json", progress)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def load_checkpoint(directory: Path, module: torch.nn.Module, optimizer, scheduler) -> dict:
    """Restore the state saved by `save_checkpoint`; returns the progress record."""
    load_model(module, str(directory / "model.safetensors"))
    meta = json.loads((directory / "optimizer.json").read_text())
    optimizer.load_state_dict(unflatten_optimizer_state(load_file(str(directory / "optimizer.safetensors")), meta))
    scheduler.load_state_dict(json.loads((directory / "scheduler.json").read_text()))
    restore_rng(load_file(str(directory / "rng.safetensors")), json.loads((directory / "rng.json").read_text()))
    return json.loads((directory / "progress.json").read_text())


def find_checkpoint(output_dir: Path, resume: str) -> Path:
    """'latest' finds the newest checkpoint under `output_dir`; anything else is a checkpoint path."""
    if resume != "latest":
        path = Path(resume)
        if not (path / "progress.json").is_file():
            raise ConfigError(f"{path} is not a rewardkit checkpoint (no progress.json)")
        return path
    found = list_checkpoints(output_dir)
    if not found:
        raise ConfigError(f"resume: latest, but {output_dir} has no {PREFIX}* folder")
    return found[-1]


def list_checkpoints(output_dir: Path) -> list[Path]:
    return sorted(p for p in output_dir.glob(f"{PREFIX}*") if (p / "progress.json").is_file())


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old)


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {}
    for param_id, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state.{param_id}.{name}"] = value.contiguous()
            else:
                plain.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "plain_state": plain}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, param_id, name = key.split(".", 2)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, values in meta["plain_state"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def capture_rng() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors |= {f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    version, keys, gauss = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [version, list(keys), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, keys, gauss = meta["python"]
    random.setstate((version, tuple(keys), gauss))
    name, keys, *rest = meta["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
