"""Bias probes: does a reward model refuse, comply, correct and agree when it should?

    metrics, predictions = evaluate_probes(RewardModel.from_pretrained("runs/demo/model"))
    metrics["over-refusal"]["accuracy"], metrics["over-refusal"]["ci95"]

The bundled probes (`rewardkit/probes/`, built by `scripts/build_probes.py`; sources and counts in its README):

    over-refusal     a benign request: chosen complies, rejected refuses
    harmful-refusal  a harmful request: chosen refuses, rejected complies
    sycophancy       the user asserts a wrong answer: chosen corrects them, rejected agrees
    agreement        the user asserts the right answer: chosen agrees, rejected disagrees

Each probe's metrics are `{"expects", "accuracy", "accuracy_half_ties", "ci95", "n", "ties", "total", "coverage",
"length_baseline_accuracy", "subsets": {name: {"accuracy", "ci95", "n"}}}`: the pairs scored exactly as
`rewardkit eval` scores pairs (`evaluate_model` / `evaluate_ensemble`), with a bootstrap CI of strict accuracy
and the accuracy of "pick the longer reply" beside it (refusals are short, so a length-biased model passes
over-refusal for the wrong reason).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.progress import Progress

import rewardkit
from rewardkit.evaluation.inputs import EvalData, load_eval_data
from rewardkit.evaluation.preference import evaluate_ensemble, evaluate_model
from rewardkit.metrics.preference import comparison_metrics
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import SCORING_BATCH_SIZE, RewardModel

PROBES_DIR = Path(rewardkit.__file__).parent / "probes"


PROBES = {  # name: what the chosen reply does
    "over-refusal": "complies with a benign request",
    "harmful-refusal": "refuses a harmful request",
    "sycophancy": "corrects a user who is wrong",
    "agreement": "agrees with a user who is right",
}


def load_probes(directory: Path = PROBES_DIR) -> EvalData:
    """Every probe's pairs, each pair's subset "PROBE/PART" (e.g. "over-refusal/mt-bench") and id "PROBE/ID"."""
    pairs = []
    for name in PROBES:
        for pair in load_eval_data([str(directory / f"{name}.jsonl")], format="pairs").pairs:
            pairs.append(replace(pair, id=f"{name}/{pair.id}", subset=f"{name}/{pair.subset}"))
    return EvalData(pairs=pairs)


def probe_of(subset: str) -> str:
    return subset.partition("/")[0]


def evaluate_probes(model: RewardModel | RewardEnsemble, *, name: str = "model", bootstrap: int = 1000,
                    seed: int = 0, batch_size: int = SCORING_BATCH_SIZE, progress: Progress | None = None,
                    data: EvalData | None = None) -> tuple[dict, list[dict]]:
    """({probe: metrics} in the module docstring's shape, the per-pair predictions) of a model or ensemble on
    the bundled probes (or `data`, pairs whose subsets are "PROBE/PART")."""
    data = data or load_probes()
    evaluate = evaluate_ensemble if isinstance(model, RewardEnsemble) else evaluate_model
    result = evaluate(model, data, name=f"{name} (probes)", bootstrap=0, seed=seed, batch_size=batch_size,
                      progress=progress)
    predictions = [p | {"model": name} for p in result.predictions]
    return probe_metrics(predictions, data, bootstrap=bootstrap, seed=seed), predictions


def probe_metrics(predictions: list[dict], data: EvalData, *, bootstrap: int, seed: int) -> dict:
    """Per probe: accuracy with its CI, coverage, the length baseline and each part's accuracy."""
    metrics = {}
    for probe, expects in PROBES.items():
        scored = [p for p in predictions if probe_of(p["subset"]) == probe]
        total = sum(probe_of(pair.subset) == probe for pair in data.pairs)
        if not total:
            continue
        block = {"expects": expects, "total": total, "coverage": len(scored) / total}
        if scored:
            found = comparison_metrics(scored, bootstrap=bootstrap, seed=seed)
            block |= found["overall"] | {
                "length_baseline_accuracy": found["length_baseline"]["accuracy"],
                "subsets": {subset.partition("/")[2]: {key: part[key] for key in ("accuracy", "ci95", "n")}
                            for subset, part in found["subsets"].items()}}
        metrics[probe] = block
    return metrics
