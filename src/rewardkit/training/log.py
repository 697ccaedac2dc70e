"""What a run records: the per-step log (JSON lines, TensorBoard when asked) and its resolved config."""

from __future__ import annotations

from pathlib import Path

import yaml

from rewardkit.config import TrainConfig
from rewardkit.io import json_line, write_text_atomic


class TrainLog:
    """Metrics as JSON lines (and TensorBoard when asked), written by the main process only."""

    def __init__(self, path: Path, enabled: bool, tensorboard: bool, *, append: bool) -> None:
        self.enabled = enabled
        self.file = path.open("a" if append else "w", encoding="utf-8") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # lazy: needs the optional tensorboard package

            self.tb = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, step: int, **values) -> None:
        if not self.enabled:
            return
        self.file.write(json_line({"step": step, **values}))
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
