"""Progress bars (rich) for training and scoring, on stderr: stdout is for results."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PROGRESS_CONSOLE = Console(stderr=True)


def smoothed(old: float | None, new: float, decay: float = 0.9) -> float:
    return new if old is None else decay * old + (1 - decay) * new


class TrainProgress:
    """A training bar showing examples/s, loss and batch accuracy (running averages); silent when disabled."""

    def __init__(self, total_steps: int, examples_per_step: int, *, unit: str = "pairs", enabled: bool = True) -> None:
        self.examples_per_step, self.unit = examples_per_step, unit
        self.progress = Progress(
            TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=PROGRESS_CONSOLE, disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total_steps, stats="")
        self.loss: float | None = None
        self.accuracy: float | None = None

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance_to(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def update(self, step: int, loss: float, accuracy: float | None) -> None:
        """`accuracy` None: the task has none (regression heads)."""
        self.loss = smoothed(self.loss, loss)
        speed = (self.progress.tasks[0].speed or 0.0) * self.examples_per_step
        stats = f"{speed:.1f} {self.unit}/s  loss {self.loss:.4f}"
        if accuracy is not None:
            self.accuracy = smoothed(self.accuracy, accuracy)
            stats += f"  acc {self.accuracy:.3f}"
        self.progress.update(self.task, completed=step, stats=stats)


def counting_progress(*, enabled: bool = True) -> Progress:
    """A counter bar with items/s, for scoring and evaluation."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=PROGRESS_CONSOLE,
        disable=not enabled,
    )
