"""DeepSpeed's resumable checkpoints without pickle: its own `save_checkpoint` / `load_checkpoint` (ZeRO-2 and -3:
every process's slice of the weights and optimizer state, its step counters), with each of its state files written
as safetensors instead of `torch.save`.

    checkpoint-000200/deepspeed/
      zero_pp_rank_0_mp_rank_00_model_states.safetensors   (ZeRO-2: mp_rank_00_model_states.safetensors)
      zero_pp_rank_0_mp_rank_00_optim_states.safetensors   one per process: its optimizer partition

A state file's tensors are the safetensors' tensors; the rest of DeepSpeed's structure (dicts, lists, numbers and
strings) is JSON in the file's metadata, where a tensor is `{"$tensor": key}`. DeepSpeed also stores a few objects
of its own (the loss scaler, the ZeRO stage, fragment addresses): they are written by class name and fields, and
read back only as classes of the `deepspeed` package of those kinds, so loading a checkpoint runs no code it names.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import tempfile
from pathlib import Path

import torch
from deepspeed.runtime.checkpoint_engine.checkpoint_engine import CheckpointEngine
from deepspeed.runtime.fp16.loss_scaler import LossScalerBase
from safetensors import safe_open
from safetensors.torch import save_file

from rewardkit.errors import ConfigError

TAG = "deepspeed"  # the checkpoint's one DeepSpeed tag: its subfolder
TREE = "rewardkit.deepspeed_state"  # the safetensors metadata key holding the structure


class SafetensorsCheckpointEngine(CheckpointEngine):
    """DeepSpeed's checkpoint engine with safetensors files: `X.pt` is written as `X.safetensors`."""

    def create(self, info) -> None:
        pass

    def save(self, state_dict: dict, path: str) -> None:
        tensors: dict[str, torch.Tensor] = {}
        tree = encode(state_dict, tensors)
        save_file(tensors, str(Path(path).with_suffix(".safetensors")), metadata={TREE: json.dumps(tree)})

    def load(self, path: str, map_location=None) -> dict:
        with safe_open(path, framework="pt") as file:
            tree = json.loads(file.metadata()[TREE])
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open has no iteration)
        return decode(tree, tensors)

    def commit(self, info) -> bool:
        return True


def save_deepspeed_state(directory: Path, engine) -> None:
    """Every process writes its part of the DeepSpeed engine's state under DIRECTORY/deepspeed (all must call)."""
    engine.checkpoint_engine = SafetensorsCheckpointEngine()
    engine.save_checkpoint(str(directory), tag=TAG, save_latest=False)
    for script in directory.glob("zero_to_*.py"):  # DeepSpeed's recovery scripts, which read torch.save files
        script.unlink(missing_ok=True)


def load_deepspeed_state(directory: Path, engine) -> None:
    """Restore this process's part into a freshly prepared engine. DeepSpeed finds its files by their `.pt` names,
    so it reads them through links of those names in a temporary folder."""
    engine.checkpoint_engine = SafetensorsCheckpointEngine()
    with tempfile.TemporaryDirectory(prefix="rewardkit-deepspeed-") as links:
        (Path(links) / TAG).mkdir()
        for file in (directory / TAG).glob("*.safetensors"):
            (Path(links) / TAG / f"{file.stem}.pt").symlink_to(file.resolve())
        loaded, _ = engine.load_checkpoint(links, tag=TAG, load_lr_scheduler_states=False)
    if loaded is None:
        raise ConfigError(f"{directory / TAG} holds no DeepSpeed state this run can load")


def encode(value, tensors: dict[str, torch.Tensor]):
    """A JSON-able copy of `value`, its tensors moved into `tensors` (CPU copies sharing no memory)."""
    if torch.is_tensor(value):
        key = str(len(tensors))
        tensors[key] = standalone(value)
        return {"$tensor": key}
    if isinstance(value, torch.Size):
        return {"$size": list(value)}
    if isinstance(value, torch.dtype):
        return {"$dtype": str(value).removeprefix("torch.")}
    if isinstance(value, enum.Enum):  # before int and str: DeepSpeed's enums are also ints or strings
        return {"$enum": class_name(type(value)), "value": value.value}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"$tuple": [encode(item, tensors) for item in value]}
    if isinstance(value, list):
        return [encode(item, tensors) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: encode(item, tensors) for key, item in value.items()}
        return {"$items": [[encode(key, tensors), encode(item, tensors)] for key, item in value.items()]}
    if dataclasses.is_dataclass(value):
        return {"$dataclass": class_name(type(value)),
                "fields": {f.name: encode(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}}
    if isinstance(value, LossScalerBase):
        return {"$object": class_name(type(value)), "state": encode(vars(value), tensors)}
    raise TypeError(f"a DeepSpeed checkpoint holds a {class_name(type(value))}, which rewardkit cannot write "
                    "without pickle")


def decode(value, tensors: dict[str, torch.Tensor]):
    """The structure `encode` wrote, its tensors taken from `tensors`."""
    if isinstance(value, list):
        return [decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$size" in value:
        return torch.Size(value["$size"])
    if "$dtype" in value:
        dtype = getattr(torch, value["$dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise ConfigError(f"a DeepSpeed checkpoint names an unknown dtype {value['$dtype']!r}")
        return dtype
    if "$tuple" in value:
        return tuple(decode(item, tensors) for item in value["$tuple"])
    if "$items" in value:
        return {decode(key, tensors): decode(item, tensors) for key, item in value["$items"]}
    if "$enum" in value:
        return deepspeed_class(value["$enum"], enum.Enum)(value["value"])
    if "$dataclass" in value:
        cls = deepspeed_class(value["$dataclass"], object)
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"a DeepSpeed checkpoint names {value['$dataclass']} as a dataclass; it is not one")
        return cls(**decode(value["fields"], tensors))
    if "$object" in value:
        cls = deepspeed_class(value["$object"], LossScalerBase)
        scaler = cls.__new__(cls)
        vars(scaler).update(decode(value["state"], tensors))
        return scaler
    return {key: decode(item, tensors) for key, item in value.items()}


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def deepspeed_class(name: str, kind: type) -> type:
    """The class `module:qualname` names, accepted only from the deepspeed package and as a subclass of `kind`."""
    module, _, qualname = name.partition(":")
    if module.split(".")[0] != "deepspeed" or not qualname:
        raise ConfigError(f"a DeepSpeed checkpoint names {name!r}: only DeepSpeed's own classes are read back")
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, kind)):
        raise ConfigError(f"a DeepSpeed checkpoint names {name!r}, which is not a {kind.__name__}")
    return found


def standalone(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy (safetensors refuses tensors that share memory, as tied weights do)."""
    tensor = tensor.detach()
    copy = tensor.cpu() if tensor.device.type != "cpu" else tensor.clone()
    return copy.contiguous()
