"""`train(config, output_dir)`: one model through the recipe, or an ensemble of K members on resamples.

    rewardkit train --config c.yaml --output-dir runs/ens --ensemble 4    # runs/ens/model/member-{0..3}"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from rewardkit.config import TrainConfig
from rewardkit.data.preferences import save_preferences
from rewardkit.errors import ConfigError
from rewardkit.evaluation.preference import evaluate_ensemble_pairs
from rewardkit.io import write_json_atomic
from rewardkit.models.ensemble import RewardEnsemble, save_ensemble
from rewardkit.tasks.registry import build_task
from rewardkit.training.recipe import TrainResult, train_model
from rewardkit.training.setup import load_training_data


def train(config: TrainConfig, output_dir: str | Path, *, show_progress: bool = True) -> TrainResult:
    """Train a reward model as `config` says; writes OUTPUT_DIR/model, metrics.json, summary.json, train_log.jsonl.

    With `train.ensemble` K > 1, K members go to OUTPUT_DIR/model/member-{i} (`rewardkit.models.ensemble`)."""
    if config.train.ensemble > 1:
        return train_ensemble(config, output_dir, show_progress=show_progress)
    return train_model(config, output_dir, show_progress=show_progress)


def member_records(records: list, member: int, members: int, sampling: str, seed: int) -> list:
    """Member `member`'s training records: a bootstrap resample (drawn with replacement, as many as there are),
    or every `members`-th record of a seeded shuffle (disjoint shares)."""
    rng = random.Random(f"{seed}:ensemble:{member}")
    if sampling == "bootstrap":
        return [records[rng.randrange(len(records))] for _ in records]
    order = list(range(len(records)))
    random.Random(f"{seed}:ensemble").shuffle(order)
    return [records[i] for i in order[member::members]]


def train_ensemble(config: TrainConfig, output_dir: str | Path, *, show_progress: bool = True):
    """Train `config.train.ensemble` members (seed + i, each on its own resample, all held out on the same split)
    into OUTPUT_DIR/model/member-{i}; OUTPUT_DIR/metrics.json holds the ensemble's held-out metrics and
    OUTPUT_DIR/eval.jsonl the held-out pairs."""
    output_dir = Path(output_dir)
    cfg = config.train
    task = build_task(config.task)
    if task.unit != "pairs":
        raise ConfigError("ensembles are trained on preference pairs (task.type pairwise)")
    data = load_training_data(task, config)
    summaries = []
    for member in range(cfg.ensemble):
        member_train = cfg.model_copy(update={"ensemble": 1, "seed": cfg.seed + member})
        member_config = config.model_copy(update={"train": member_train})
        member_data = replace(data, train=member_records(data.train, member, cfg.ensemble, cfg.ensemble_sampling,
                                                         cfg.seed))
        result = train_model(member_config, output_dir / "members" / f"member-{member}", show_progress=show_progress,
                             data=member_data)
        summaries.append(result.summary)
    model_dir = output_dir / "model"
    save_ensemble(model_dir, [output_dir / "members" / f"member-{i}" / "model" for i in range(cfg.ensemble)],
                  sampling=cfg.ensemble_sampling)
    metrics = None
    if data.eval:
        save_preferences(data.eval, output_dir / "eval.jsonl")  # re-evaluate other modes on exactly these pairs
        metrics = evaluate_ensemble_pairs(RewardEnsemble.from_pretrained(model_dir), data.eval)
        write_json_atomic(output_dir / "metrics.json", metrics)
    seconds = sum(s["train_seconds"] for s in summaries)
    trained = sum(s["trained_examples"] for s in summaries)
    summary = summaries[0] | {
        "ensemble": cfg.ensemble, "sampling": cfg.ensemble_sampling, "members": summaries,
        "train_seconds": round(seconds, 1), "trained_examples": trained,
        "examples_per_s": round(trained * cfg.epochs / seconds, 2) if seconds else None}
    write_json_atomic(output_dir / "summary.json", summary)
    return TrainResult(model_dir, metrics, summary)
