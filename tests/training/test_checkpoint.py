"""Checkpoints: progress.json keeps its format, so a checkpoint written before TrainState resumes after it."""

from __future__ import annotations

import json

import torch

from rewardkit.config import load_config
from rewardkit.training import checkpoint
from rewardkit.training.recipe import TrainState

CONFIG = {"model": {"backbone": "tiny"}, "data": {"train": [{"path": "pairs.jsonl"}]}}


def old_progress(**extra) -> dict:
    """What the dict-based loop wrote: step, best_eval_score, evals_without_improvement, best_step once set, config."""
    return {"step": 6, "best_eval_score": 0.75, "evals_without_improvement": 2, **extra,
            "config": load_config(None, [], base=CONFIG).model_dump(mode="json")}


def save_and_load(tmp_path, progress: dict) -> dict:
    module = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(module.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    checkpoint.save_checkpoint(tmp_path / "checkpoint-000006", module, optimizer, scheduler, progress)
    return checkpoint.load_checkpoint(tmp_path / "checkpoint-000006", module, optimizer, scheduler)


def test_an_old_progress_record_loads_into_train_state(tmp_path):
    state = TrainState.from_progress(save_and_load(tmp_path, old_progress(best_step=4)))
    assert (state.step, state.best_eval_score, state.evals_without_improvement, state.best_step) == (6, 0.75, 2, 4)
    before_any_eval = TrainState.from_progress(
        save_and_load(tmp_path, {"step": 3, "best_eval_score": None, "evals_without_improvement": 0, "config": {}}))
    assert before_any_eval == TrainState(step=3)


def test_train_state_writes_the_old_progress_record(tmp_path):
    config = load_config(None, [], base=CONFIG)
    for progress in (old_progress(), old_progress(best_step=4)):
        written = TrainState.from_progress(progress).progress(config)
        assert list(written) == list(progress) and written == progress
        assert json.loads(json.dumps(written)) == save_and_load(tmp_path, written)


def test_record_eval_tracks_the_best_score_and_the_evaluations_since():
    state = TrainState()
    for step, score, improved in [(2, 0.5, True), (4, 0.9, True), (6, 0.9, False), (8, 0.7, False), (10, 0.95, True)]:
        state.step = step
        assert state.record_eval(score) == improved
        if step == 8:
            assert (state.best_eval_score, state.best_step, state.evals_without_improvement) == (0.9, 4, 2)
    assert (state.best_eval_score, state.best_step, state.evals_without_improvement) == (0.95, 10, 0)
