"""The task families end to end on tiny models: ties, rankings, ratings, verifiers, process rewards, ensembles."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from conftest import asgi_client, toy_pairs, write_jsonl
from rewardkit.config import TaskConfig, load_config
from rewardkit.data.records import StepSolution
from rewardkit.evaluation.run import EvalConfig, evaluate
from rewardkit.models.ensemble import RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.scoring.files import score_file
from rewardkit.serving.app import create_app, load_models
from rewardkit.serving.requests import ServeConfig
from rewardkit.tasks.comparisons import group_rewards
from rewardkit.tasks.process import ProcessTask
from rewardkit.tasks.registry import build_task
from rewardkit.training.launch import member_records, train

WORDS = ["cats", "dogs", "tea", "rain", "maps"]


def config(backbone: Path, data: Path, task: dict, lr: float = 3e-3, **train_overrides) -> dict:
    return {
        "model": {"backbone": str(backbone), "max_length": 64},
        "task": task,
        "data": {"train": [{"path": str(data)}], "eval_fraction": 0.25},
        "optim": {"lr": lr, "warmup_ratio": 0.0},
        "train": {"batch_size": 8, "epochs": 3, "log_every": 1, "seed": 0, **train_overrides},
    }


def topic(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))


# ---- ties ----------------------------------------------------------------------------------------------------------
def tie_data(path: Path) -> Path:
    """Decided pairs (good over bad), and pairs annotated as ties: the same kind of replies to prompts that say
    anything goes."""
    rng = random.Random(1)
    decided = [p.to_dict() for p in toy_pairs(48)]
    ties = [{"prompt": f"anything goes {i} {topic(rng)}", "chosen": f"a good helpful answer {i % 7}",
             "rejected": f"a bad rude answer {i % 5}", "tie": True, "id": f"tie-{i}"} for i in range(48)]
    return write_jsonl(path, decided + ties)


def tie_gap(model_dir: Path) -> float:
    """Mean |reward difference| of good and bad replies to unseen anything-goes prompts."""
    rm = RewardModel.from_pretrained(model_dir)
    prompts = [f"anything goes {w}" for w in WORDS]
    good, bad = rm.score(prompts, ["a good helpful answer 1"] * 5), rm.score(prompts, ["a bad rude answer 2"] * 5)
    return sum(abs(a - b) for a, b in zip(good, bad, strict=True)) / len(prompts)


@pytest.mark.parametrize("loss", ["davidson", "rao_kupper"])
def test_annotated_ties_train_both_sides_alike(llama_dir, tmp_path, loss):
    data = tie_data(tmp_path / "ties.jsonl")
    tie_aware = load_config(None, [], base=config(llama_dir, data, {"loss": loss}))
    tie_aware.data.train[0].ties = "keep"
    result = train(tie_aware, tmp_path / loss, show_progress=False)
    assert result.summary["ties"]["train"] > 0
    assert result.metrics["ties"]["n"] > 0 and result.metrics["overall"]["accuracy"] >= 0.75
    assert result.metrics["ties"]["mean_abs_difference_ties"] < result.metrics["ties"]["mean_abs_difference_decided"]
    plain = train(load_config(None, [], base=config(llama_dir, data, {})), tmp_path / "bt", show_progress=False)
    assert plain.summary["ties"]["train"] == 0, "Bradley-Terry drops annotated ties (by default, at loading)"
    assert tie_gap(result.model_dir) < tie_gap(plain.model_dir)


def test_bradley_terry_leaves_kept_ties_out_of_training_but_in_the_evaluation(llama_dir, tmp_path):
    data = tie_data(tmp_path / "ties.jsonl")
    tie_aware_config = load_config(None, ["data.train.0.ties=keep", "task.loss=davidson"],
                                   base=config(llama_dir, data, {}))
    tie_aware = train(tie_aware_config, tmp_path / "davidson", show_progress=False)
    plain = train(load_config(None, ["data.train.0.ties=keep"], base=config(llama_dir, data, {})), tmp_path / "bt",
                  show_progress=False)
    assert plain.summary["ties"]["train"] == 0
    assert plain.summary["ties"]["not_trained"] == tie_aware.summary["ties"]["train"]
    assert plain.metrics["ties"]["n"] == tie_aware.metrics["ties"]["n"] > 0, "the same held-out pairs"
    assert plain.metrics["overall"]["n"] == tie_aware.metrics["overall"]["n"]
    assert tie_aware.metrics["ties"]["mean_abs_difference_ties"] < plain.metrics["ties"]["mean_abs_difference_ties"]


# ---- rankings ----------------------------------------------------------------------------------------------------
def ranking_records(n: int) -> list[dict]:
    rng = random.Random(2)
    return [{"prompt": f"question {i} about {topic(rng)}?", "id": f"r{i}",
             "responses": [f"a good helpful answer {i % 7}", f"an okay answer {i % 3}", f"a bad rude answer {i % 5}"]}
            for i in range(n)]


@pytest.mark.parametrize("task", [{"loss": "plackett_luce"}, {"loss": "bradley_terry"},
                                  {"loss": "bradley_terry", "weight_per_prompt": True}])
def test_rankings_train_listwise(llama_dir, tmp_path, task):
    data = write_jsonl(tmp_path / "ranked.jsonl", ranking_records(48))
    result = train(load_config(None, [], base=config(llama_dir, data, {"type": "listwise", **task})), tmp_path / "pl",
                   show_progress=False)
    assert result.summary["task"] == "rankings" and result.summary["trained_examples"] == 36
    assert result.metrics["rankings"] == 12
    assert result.metrics["overall"]["n"] == 36, "every ordered pair of each held-out ranking"
    assert result.metrics["overall"]["accuracy"] >= 0.8 and result.metrics["top1_accuracy"] >= 0.8


def test_prompt_weighting_makes_each_prompt_count_once(llama_dir, tmp_path):
    records = [{"instruction": r["prompt"], "input": "", "output": r["responses"]} for r in ranking_records(24)]
    data = write_jsonl(tmp_path / "ranked.jsonl", records)
    cfg = load_config(None, [], base=config(llama_dir, data, {"weight_per_prompt": True}, epochs=1))
    loaded = build_task(cfg.task).load(cfg.data, 0)
    per_prompt: dict = {}
    for pair in loaded.train:
        per_prompt[str(pair.prompt)] = per_prompt.get(str(pair.prompt), 0) + pair.weight
    assert all(total == pytest.approx(1.0) for total in per_prompt.values())


def test_packed_rankings_give_the_rewards_of_separate_rows(llama_dir):
    rm = RewardModel.from_backbone(str(llama_dir), max_length=64).eval()
    records = ranking_records(3)
    rankings = [rm.spec.encode_batch(rm.tokenizer, [r["prompt"]] * k, r["responses"][:k])
                for r, k in zip(records, (3, 2, 3), strict=True)]
    with torch.no_grad():
        packed, mask = group_rewards(rm, rm, rankings, "cpu", share_prefix=True)
        separate, same_mask = group_rewards(rm, rm, rankings, "cpu", share_prefix=False)
    assert torch.equal(mask, same_mask) and mask.sum() == 8
    torch.testing.assert_close(packed[mask], separate[mask], atol=1e-4, rtol=0)


# ---- ratings and verifiers -----------------------------------------------------------------------------------------
def rating_records(n: int) -> list[dict]:
    """helpfulness follows 'good'/'bad'; verbosity counts the words; a third of the records lack verbosity."""
    rng = random.Random(3)
    records = []
    for i in range(n):
        good = i % 2 == 0
        extra = " and more" * (i % 4)
        record = {"prompt": f"question {i // 2} about {topic(rng)}?", "id": f"x{i}",
                  "response": f"a {'good helpful' if good else 'bad rude'} answer{extra}",
                  "helpfulness": 4.0 if good else 1.0}
        if i % 3:
            record["verbosity"] = float(i % 4)
        records.append(record)
    return records


def test_multi_attribute_heads_learn_with_missing_labels_and_export_stock(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "ratings.jsonl", rating_records(64))
    task = {"type": "pointwise", "attributes": ["helpfulness", "verbosity"],
            "attribute_weights": {"helpfulness": 1.0, "verbosity": -0.5}}
    result = train(load_config(None, [], base=config(llama_dir, data, task, epochs=20)), tmp_path / "rated",
                   show_progress=False)
    attributes = result.metrics["attributes"]
    assert attributes["helpfulness"]["pearson"] > 0.8
    assert attributes["verbosity"]["n"] < attributes["helpfulness"]["n"], "missing labels are not scored"
    rm = RewardModel.from_pretrained(result.model_dir)
    assert rm.spec.attributes == ["helpfulness", "verbosity"] and rm.spec.attribute_weights == [1.0, -0.5]
    values = rm.score_attributes(["q?"], ["a good helpful answer and more"])[0]
    assert set(values) == {"helpfulness", "verbosity"}
    default = rm.score(["q?"], ["a good helpful answer and more"])[0]
    assert default == pytest.approx(values["helpfulness"] - 0.5 * values["verbosity"], abs=1e-5)
    only_help = rm.score(["q?"], ["a good helpful answer and more"], attribute_weights={"helpfulness": 1.0})[0]
    assert only_help == pytest.approx(values["helpfulness"], abs=1e-5)
    [evaluated] = evaluate(EvalConfig(models=[result.model_dir], data=[str(data)], out_dir=tmp_path / "eval",
                                      bootstrap=0, progress=False))
    assert evaluated.metrics["task"] == "pointwise" and evaluated.metrics["attributes"]["helpfulness"]["n"] == 64
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["attributes"]["verbosity"]["n"] < 64
    plain = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    assert plain.config.num_labels == 2
    batch = rm.collate([rm.spec.encode(rm.tokenizer, "q?", "a good helpful answer and more")])
    with torch.no_grad():
        torch.testing.assert_close(plain(**batch).logits[0], torch.tensor(list(values.values())), atol=1e-5, rtol=0)


def test_unknown_attribute_weights_are_refused(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "ratings.jsonl", rating_records(16))
    with pytest.raises(Exception, match="not in attributes"):
        load_config(None, [], base=config(llama_dir, data, {"type": "pointwise", "attributes": ["helpfulness"],
                                                             "attribute_weights": {"verbosity": 1.0}}))


def test_a_verifier_picks_correct_solutions_better_than_chance(llama_dir, tmp_path):
    rng = random.Random(4)
    records = []
    for q in range(24):
        for k in range(4):
            correct = (q + k) % 3 == 0
            records.append({"prompt": f"sum {q} about {topic(rng)}?", "id": f"q{q}-{k}", "group": f"q{q}",
                            "response": f"{'a good helpful' if correct else 'a bad rude'} answer {k}",
                            "correct": 1.0 if correct else 0.0, "answer": str(q if correct else k)})
    data = write_jsonl(tmp_path / "solutions.jsonl", records)
    task = {"type": "pointwise", "attributes": ["correct"], "loss": "bce"}
    result = train(load_config(None, [], base=config(llama_dir, data, task, epochs=8)), tmp_path / "orm",
                   show_progress=False)
    best = result.metrics["best_of_n"]
    assert best["n"] >= 4 and best["best_of_n"]["accuracy"] > best["random_pick"]
    assert result.metrics["attributes"]["correct"]["accuracy"] >= 0.8


# ---- process rewards -----------------------------------------------------------------------------------------------
def step_records(n: int) -> list[dict]:
    """Solutions whose first 'bad' step is the first error; every step from there on is labelled wrong."""
    rng = random.Random(5)
    records = []
    for i in range(n):
        steps = [f"step {k} is good" for k in range(rng.randint(2, 4))]
        if i % 2:
            wrong = rng.randrange(len(steps))
            steps[wrong] = f"step {wrong} is bad"
            labels = [1] * wrong + [0] * (len(steps) - wrong)
        else:
            labels = [1] * len(steps)
        records.append({"prompt": f"problem {i} about {topic(rng)}", "steps": steps, "labels": labels, "id": f"p{i}"})
    return records


def test_a_process_reward_model_finds_the_first_error(llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "steps.jsonl", step_records(64))
    result = train(load_config(None, [], base=config(llama_dir, data, {"type": "process"}, lr=1e-2, epochs=20)),
                   tmp_path / "prm", show_progress=False)
    metrics = result.metrics
    assert metrics["step_accuracy"] >= 0.8 and metrics["processbench"]["f1"] >= 0.6
    rm = RewardModel.from_pretrained(result.model_dir)
    assert rm.spec.task == "process" and rm.spec.step_separator == "<|step|>"
    good, bad = rm.score_steps(["problem x"] * 2,
                               [["step 0 is good", "step 1 is good"], ["step 0 is good", "step 1 is bad"]])
    assert len(good) == len(bad) == 2 and bad[1] < 0.5 < good[1]
    with pytest.raises(ValueError, match="score_steps"):
        rm.score(["q"], ["a"])
    [evaluated] = evaluate(EvalConfig(models=[result.model_dir], data=[str(data)], out_dir=tmp_path / "eval",
                                      bootstrap=0, progress=False))
    assert evaluated.metrics["solutions"] == 64 and evaluated.metrics["processbench"]["n_error"] == 32
    lines = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 64 and {"first_error", "predicted_first_error", "step_probabilities"} <= lines[0].keys()


def test_process_models_need_a_decoder(bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "steps.jsonl", step_records(16))
    with pytest.raises(Exception, match="decoder"):
        train(load_config(None, [], base=config(bert_dir, data, {"type": "process"})), tmp_path / "prm",
              show_progress=False)


# ---- ensembles ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_ensemble(llama_dir, tmp_path_factory):
    """Three members trained on resamples of the toy pairs: (train result, the toy data file)."""
    root = tmp_path_factory.mktemp("ensemble")
    toy_data = write_jsonl(root / "toy.jsonl", [p.to_dict() for p in toy_pairs(48)])
    cfg = load_config(None, ["train.ensemble=3"], base=config(llama_dir, toy_data, {}, epochs=2))
    return train(cfg, root / "ens", show_progress=False), toy_data


def test_an_ensemble_trains_saves_scores_evaluates_and_serves(trained_ensemble, tmp_path):
    result, toy_data = trained_ensemble
    assert is_ensemble(result.model_dir) and len(result.summary["members"]) == 3
    by_uncertainty = result.metrics["ensemble"]["by_uncertainty"]
    assert sum(b["n"] for b in by_uncertainty["bins"]) == result.metrics["overall"]["n"]
    assert len(result.metrics["ensemble"]["member_accuracy"]) == 3
    ensemble = RewardEnsemble.from_pretrained(result.model_dir, mode="min")
    scored = ensemble.score(["q?", "r?"], ["a good helpful answer 1", "a bad rude answer 2"])
    assert scored.rewards == [min(values) for values in zip(*scored.members, strict=True)]
    assert all(u >= 0 for u in scored.uncertainty)
    members = [json.loads((result.model_dir / m / "scoring_spec.json").read_text())["normalization"]
               for m in ("member-0", "member-1")]
    assert members[0] != members[1], "members differ (seeds and resamples)"
    [evaluated] = evaluate(EvalConfig(models=[result.model_dir], data=[str(toy_data)], out_dir=tmp_path / "eval",
                                      bootstrap=0, progress=False))
    assert "by_uncertainty" in evaluated.metrics["ensemble"]
    held_out = result.model_dir.parent / "eval.jsonl"
    [pessimistic] = evaluate(EvalConfig(models=[result.model_dir], data=[str(held_out)], out_dir=tmp_path / "eval-min",
                                        bootstrap=0, progress=False, ensemble_mode="min"))
    assert pessimistic.metrics["ensemble"]["mode"] == "min"
    assert pessimistic.metrics["overall"]["n"] == result.metrics["overall"]["n"], "eval.jsonl holds the held-out pairs"
    with pytest.raises(ValueError, match="unknown ensemble mode"):
        RewardEnsemble.from_pretrained(result.model_dir, mode="max")
    _, ensembles = load_models([], [f"ens={result.model_dir}"])
    assert len(ensembles["ens"].members) == 3


def test_eval_score_and_serve_combine_an_ensemble_alike(trained_ensemble, tmp_path):
    """A trained ensemble whose manifest says mean - 2 * std: `RewardEnsemble.score`, `rewardkit eval`, `score_file`
    and the service give the same rewards (and uncertainties), and the overrides change all of them alike."""
    model_dir = tmp_path / "ensemble"
    shutil.copytree(trained_ensemble[0].model_dir, model_dir)
    manifest = json.loads((model_dir / "ensemble.json").read_text())
    (model_dir / "ensemble.json").write_text(json.dumps(manifest | {"mode": "mean-minus-std", "std_weight": 2.0}))
    pairs = toy_pairs(6, seed=1)
    prompts, responses = [p.prompt for p in pairs], [p.chosen for p in pairs]
    items = [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]

    def by_library(mode=None, std_weight=None) -> tuple[list[float], list[float]]:
        scored = RewardEnsemble.from_pretrained(model_dir, mode=mode, std_weight=std_weight).score(prompts, responses)
        return scored.rewards, scored.uncertainty

    def by_score_file(mode=None, std_weight=None) -> tuple[list[float], list[float]]:
        ensemble = RewardEnsemble.from_pretrained(model_dir, mode=mode, std_weight=std_weight)
        score_file(ensemble, write_jsonl(tmp_path / "items.jsonl", items), tmp_path / "scored.jsonl")
        scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
        return [r["reward"] for r in scored], [r["uncertainty"] for r in scored]

    def by_service(mode=None, std_weight=None) -> tuple[list[float], list[float]]:
        async def post() -> dict:
            _, ensembles = load_models([], [f"ens={model_dir}"], ensemble_mode=mode, std_weight=std_weight)
            async with asgi_client(create_app({}, ServeConfig(), ensembles)) as client:
                return (await client.post("/v1/score", json={"items": items})).json()
        body = asyncio.run(post())
        return body["rewards"], body["uncertainty"]

    def by_eval(mode=None, std_weight=None) -> tuple[list[float], None]:
        data = write_jsonl(tmp_path / "pairs.jsonl", [p.to_dict() for p in pairs])
        [evaluated] = evaluate(EvalConfig(models=[model_dir], data=[str(data)], out_dir=tmp_path / "eval", bootstrap=0,
                                          progress=False, ensemble_mode=mode, std_weight=std_weight))
        chosen = {p["id"]: p["reward_chosen"] for p in evaluated.predictions}
        return [chosen[p.id] for p in pairs], None  # eval's uncertainty is the spread of the margins

    members = [RewardModel.from_pretrained(model_dir / name).score(prompts, responses, normalize=True)
               for name in manifest["members"]]
    mean = [sum(values) / len(values) for values in zip(*members, strict=True)]
    std = [(sum((v - m) ** 2 for v in values) / len(values)) ** 0.5
           for values, m in zip(zip(*members, strict=True), mean, strict=True)]
    assert min(std) > 1e-4, "the members disagree, so the combinations differ"
    expected = {
        (): [m - 2.0 * s for m, s in zip(mean, std, strict=True)],  # the manifest's combination
        (None, 0.5): [m - 0.5 * s for m, s in zip(mean, std, strict=True)],
        ("min",): [min(values) for values in zip(*members, strict=True)],
    }
    for overrides, rewards in expected.items():
        for way in (by_library, by_score_file, by_service, by_eval):
            got, uncertainty = way(*overrides)
            assert got == pytest.approx(rewards, abs=1e-5), (way.__name__, overrides)
            if uncertainty is not None:
                assert uncertainty == pytest.approx(std, abs=1e-5), (way.__name__, overrides)


def test_last_step_only_supervises_one_position_per_solution(llama_dir):
    rm = RewardModel.from_backbone(str(llama_dir), max_length=64, step_separator="<|step|>")
    records = [StepSolution(prompt="p", steps=["a", "b", "c"], labels=[1.0, 0.0, 0.0], id="s", first_error=1)]
    [every] = ProcessTask(TaskConfig(type="process")).encode(rm, records)[0]
    [last] = ProcessTask(TaskConfig(type="process", last_step_only=True)).encode(rm, records)[0]
    assert every.labelled == (True, True, True) and last.labelled == (False, False, True)
    assert len(every.encoded.step_positions) == 3


def test_ensemble_members_get_bootstrap_resamples_or_disjoint_shares():
    records = list(range(30))
    shares = [member_records(records, i, 3, "disjoint", seed=0) for i in range(3)]
    assert sorted(x for share in shares for x in share) == records and all(len(s) == 10 for s in shares)
    resamples = [member_records(records, i, 3, "bootstrap", seed=0) for i in range(3)]
    assert all(len(r) == 30 for r in resamples) and len(set(resamples[0])) < 30, "drawn with replacement"
    assert resamples[0] != resamples[1] and resamples[0] == member_records(records, 0, 3, "bootstrap", seed=0)
