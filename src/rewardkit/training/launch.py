"""`train(config, output_dir)`: one model through the recipe, or an ensemble of K members on resamples.

    rewardkit train --config c.yaml --output-dir runs/ens --ensemble 4    # runs/ens/model/member-{0..3}

summary.json (and `TrainResult.summary`) counts examples in the task's unit (`summary["task"]`: pairs, rankings,
responses, solutions): `trained_examples` is the usable training set (after encoding), `trained_examples_seen` the
examples the optimizer stepped on, `steps` x `batch_size`. An ensemble's summary sums `steps`, `trained_examples` and
`trained_examples_seen` over its members."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from rewardkit.config import TrainConfig
from rewardkit.data.preferences import save_preferences
from rewardkit.errors import ConfigError, TrainingError
from rewardkit.evaluation.preference import evaluate_ensemble_pairs
from rewardkit.io import check_output_dir, finite_or_none, write_json_atomic
from rewardkit.models.ensemble import RewardEnsemble, save_ensemble
from rewardkit.tasks.registry import build_task
from rewardkit.training.recipe import TrainResult, train_model, write_metrics
from rewardkit.training.setup import check_backbone, load_training_data


def train(config: TrainConfig, output_dir: str | Path, *, show_progress: bool = True,
          overwrite: bool = False) -> TrainResult:
    """Train a reward model as `config` says; writes OUTPUT_DIR/model, metrics.json, summary.json, train_log.jsonl.

    With `train.ensemble` K > 1, K members go to OUTPUT_DIR/model/member-{i} (`rewardkit.models.ensemble`).
    A model already in OUTPUT_DIR/model is refused unless `overwrite` (or `train.resume` continues its run)."""
    check_output_dir(output_dir)
    refuse_existing_model(Path(output_dir) / "model", overwrite or bool(config.train.resume))
    if config.train.ensemble > 1:
        return train_ensemble(config, output_dir, show_progress=show_progress)
    return train_model(config, output_dir, show_progress=show_progress)


def refuse_existing_model(model_dir: Path, replace_it: bool) -> None:
    """An earlier run's model is kept unless the caller asked to replace it."""
    if model_dir.exists() and not replace_it:
        raise TrainingError(f"{model_dir} holds a model from an earlier run: pass --overwrite (overwrite=True) to "
                            "replace it, or choose a new --output-dir")


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
    check_backbone(config.model)
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
        metrics = finite_or_none(evaluate_ensemble_pairs(RewardEnsemble.from_pretrained(model_dir), data.eval))
    write_metrics(output_dir, metrics)
    seconds = sum(s["train_seconds"] for s in summaries)
    totals = {key: sum(s[key] for s in summaries) for key in ("steps", "trained_examples", "trained_examples_seen")}
    summary = summaries[0] | totals | {
        "ensemble": cfg.ensemble, "sampling": cfg.ensemble_sampling, "members": summaries,
        "train_seconds": round(seconds, 1),
        "examples_per_s": round(totals["trained_examples_seen"] / seconds, 2) if seconds else None}
    write_json_atomic(output_dir / "summary.json", summary)
    return TrainResult(model_dir, metrics, summary)
