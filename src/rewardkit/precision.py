"""Numeric precision, one choice for every path: `auto` | `bf16` | `fp32`.

`auto` is bf16 where the hardware is fast at it (CUDA with bf16, CPUs with AMX or AVX512-BF16) and fp32 elsewhere;
REWARDKIT_AUTO_PRECISION=bf16|fp32 overrides what `auto` means (CI runs the suite under each). Training runs bf16 as
autocast over fp32 weights; scoring loads bf16 weights (half the memory) and returns fp32 rewards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch

from rewardkit.errors import ConfigError

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS = ("auto", "bf16", "fp32")
AUTO_PRECISION_ENV = "REWARDKIT_AUTO_PRECISION"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_precision(precision: str) -> str:
    """'bf16' or 'fp32' for `precision`; `auto` as REWARDKIT_AUTO_PRECISION says, else as the hardware is fast."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = os.environ.get(AUTO_PRECISION_ENV) or hardware_precision()
        if precision not in DTYPES:
            raise ConfigError(f"{AUTO_PRECISION_ENV}={precision!r}: expected bf16 or fp32")
    return precision


def resolve_dtype(precision: str) -> torch.dtype:
    return DTYPES[resolve_precision(precision)]


def hardware_precision() -> str:
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def default_device() -> torch.device:
    """Where scoring runs unless told: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast(device: torch.device, precision: str):
    """bf16 autocast around the forward and loss (the loss itself is computed in fp32); a no-op for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
