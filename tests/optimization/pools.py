"""Small pools written as JSONL directly, and tiny reward models / ensembles to score them (call them from
module fixtures: a conftest.py here would shadow tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import save_tiny_model
from rewardkit.models.ensemble import save_ensemble
from rewardkit.models.spec import Normalization

SAMPLER = {"kind": "local", "model": "tiny", "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 16, "seed": 0}


def pool_line(prompt_id: str, index: int, response: str, **extra) -> dict:
    return {"prompt_id": prompt_id, "prompt": f"question {prompt_id}?", "sample_index": index, "response": response,
            "tokens": len(response.split()), "finish_reason": extra.pop("finish_reason", "stop"), "sampler": SAMPLER,
            **extra}


def write_pool(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def tiny_rm(llama_dir: Path, root: Path) -> Path:
    """A tiny Llama reward model (max_length 64) with normalization statistics."""
    return save_tiny_model(llama_dir, root / "rm", 0, Normalization(mean=0.1, std=0.5, n=9))


def tiny_ensemble(llama_dir: Path, root: Path) -> Path:
    """Three tiny Llama members on different scales, combined by their mean."""
    members = [save_tiny_model(llama_dir, root / f"m{i}", i + 1, Normalization(mean=0.05 * i, std=0.3 + i, n=9))
               for i in range(3)]
    save_ensemble(root / "ensemble", members, mode="mean")
    return root / "ensemble"
