"""The bad-input corpus for models and outputs: misused scoring APIs, backbones and model files that cannot be used,
output paths that cannot be written, count options out of range, and JSON that must stay strict.

Each case asserts the exact outcome: the error type, a message naming what and where, and that nothing was
written. Library cases call the functions; CLI cases go through `assert_refused` (tests/conftest.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from huggingface_hub import constants
from typer.testing import CliRunner

from conftest import assert_refused, save_tiny_model, toy_pairs, write_jsonl
from rewardkit.cli.app import app
from rewardkit.config import load_config
from rewardkit.errors import ConfigError, ModelError, TrainingError
from rewardkit.evaluation.run import EvalConfig, evaluate
from rewardkit.models.ensemble import ENSEMBLE_FILE, RewardEnsemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import SPEC_FILE, Normalization
from rewardkit.scoring.files import score_file
from rewardkit.training.launch import train

runner = CliRunner()
BUILTINS = "not a built-in backbone (minilm-l6, smollm2-135m)"


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("models") / "rm", seed=0, normalization=None)


@pytest.fixture(scope="module")
def rm(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


@pytest.fixture
def copied_model(model_dir, tmp_path) -> Path:
    """A fresh copy of the tiny model to damage."""
    copy = tmp_path / "damaged"
    copy.mkdir()
    for file in model_dir.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    return copy


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [{"prompt": "Is tea good?", "response": "a good helpful answer"}])


def cli_score(model: Path, input: Path, output: Path):
    """`rewardkit score --model MODEL --input INPUT --output OUTPUT` in process."""
    return runner.invoke(app, ["score", "--model", str(model), "--input", str(input), "--output", str(output)])

def train_config(backbone: Path, data_file: Path, **sections) -> dict:
    """A tiny, quick training config; `sections` update its sections (model=..., data=..., train=...)."""
    config = {"model": {"backbone": str(backbone), "max_length": 64}, "data": {"train": [{"path": str(data_file)}]},
              "optim": {"lr": 3e-3}, "train": {"batch_size": 8, "epochs": 0.5, "precision": "fp32"}}
    for section, values in sections.items():
        config[section] = config.get(section, {}) | values
    return config


def config_file(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity, as strict parsers (and other languages) do."""
    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# ---- scoring API misuse: at the spec's encode_batch, so every path refuses it ---------------------------------------
@pytest.mark.parametrize("prompts, responses, needle", [
    ("a prompt", "a response", r"^prompts must be a list \(one entry per pair; for one pair, wrap it in a list\), "
                               r"not str$"),
    (["a prompt"], "a response", "responses must be a list .*not str"),
    (iter(["a prompt"]), ["a response"], "prompts must be a list .*not list_iterator"),
])
def test_scoring_refuses_a_bare_string_or_a_non_list(rm, prompts, responses, needle):
    with pytest.raises(TypeError, match=needle):
        rm.score(prompts, responses)


def test_scoring_refuses_lists_of_different_lengths_and_a_candidate_group_that_is_a_string(rm):
    with pytest.raises(ValueError, match="2 prompts but 1 responses: pass one per prompt"):
        rm.score(["a prompt", "another"], ["a response"])
    with pytest.raises(ValueError, match="1 prompts but 2 responses"):
        rm.spec.encode_batch(rm.tokenizer, ["a prompt"], ["a", "b"])
    with pytest.raises(TypeError, match=r"candidates\[0\] must be a list \(the candidate responses to prompts\[0\]\)"):
        rm.score_candidates(["a prompt"], ["a response"])


# ---- the backbone: position limit, unknown names ------------------------------------------------------------------
@pytest.mark.parametrize("ensemble", [1, 2])
def test_max_length_over_the_position_limit_is_refused_before_any_data_loads(bert_dir, tmp_path, ensemble):
    missing = tmp_path / "no-such-data.jsonl"  # loading data first would fail on this file instead
    config = load_config(None, base=train_config(bert_dir, missing, model={"max_length": 100000},
                                                 train={"ensemble": ensemble}))
    with pytest.raises(ConfigError, match=r"^model.max_length 100000 is more than backbone .*tiny-bert.* its position "
                                          r"embeddings hold 512 tokens; set model.max_length to 512 or less$"):
        train(config, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_max_length_over_the_position_limit(bert_dir, toy_data, tmp_path):
    result = runner.invoke(app, ["train", "--config", str(config_file(tmp_path, train_config(bert_dir, toy_data))),
                                 "--output-dir", str(tmp_path / "run"), "--set", "model.max_length=100000"])
    assert_refused(result, "model.max_length 100000", "512 tokens", not_written=(tmp_path / "run",))


def test_an_unknown_backbone_fails_at_once_naming_the_built_in_ones(toy_data, tmp_path):
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"^backbone 'nosuch' is not a built-in backbone \(minilm-l6, smollm2-135m\), "
                                         r"a local directory or a .gguf file, and .*hub"):
        RewardModel.from_backbone("nosuch")
    assert time.perf_counter() - started < constants.HF_HUB_ETAG_TIMEOUT + 2, "no hub retries"

    started = time.perf_counter()
    config = config_file(tmp_path, train_config(Path("nosuch"), toy_data))
    result = runner.invoke(app, ["train", "--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert_refused(result, "'nosuch'", BUILTINS, not_written=(tmp_path / "run",))
    assert time.perf_counter() - started < constants.HF_HUB_ETAG_TIMEOUT + 5


def test_an_unknown_backbone_offline_says_a_hub_id_needs_the_network(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match=r"no hub model of that id is cached here; a hub id needs network access "
                                         r"\(HF_HUB_OFFLINE is set\)$"):
        RewardModel.from_backbone("org/nosuch")


@pytest.mark.parametrize("backbone, needle", [
    ("{tmp}", "has no config.json: it is not a Hugging Face model directory"),
    ("{tmp}/no-such-dir", "nor a hub model id"),
])
def test_a_backbone_path_that_is_no_model_is_refused(tmp_path, backbone, needle):
    with pytest.raises(ModelError, match=needle):
        RewardModel.from_backbone(backbone.format(tmp=tmp_path))


# ---- damaged model files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_weights_are_a_model_error_naming_the_file(copied_model, pairs_file, tmp_path, damage):
    weights = copied_model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a safetensors file " * 40,
                         "empty": b""}[damage])
    with pytest.raises(ModelError, match=rf"^{copied_model}: the weights file \(model.safetensors\) is damaged "
                                         r"\(.*\); re-export or retrain the model$"):
        RewardModel.from_pretrained(copied_model)
    output = tmp_path / "out.jsonl"
    result = cli_score(copied_model, pairs_file, output)
    assert_refused(result, str(copied_model), "model.safetensors) is damaged", not_written=(output,))


def test_an_ensemble_with_a_damaged_member_names_the_member(llama_dir, tmp_path):
    ensemble = tmp_path / "ensemble"
    for i in range(2):
        save_tiny_model(llama_dir, ensemble / f"member-{i}", seed=i, normalization=Normalization(mean=0, std=1, n=2))
    (ensemble / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member-0", "member-1"], "mode": "mean",
                                                      "std_weight": 1.0}))
    (ensemble / "member-1" / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelError, match=rf"^{ensemble / 'member-1'}: the weights file .* is damaged"):
        RewardEnsemble.from_pretrained(ensemble)
    (ensemble / ENSEMBLE_FILE).write_text('{"members": ["member-0",')
    with pytest.raises(ModelError, match=rf"^{ensemble / ENSEMBLE_FILE} is damaged \(not valid JSON: "):
        RewardEnsemble.from_pretrained(ensemble)

    (ensemble / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member-0", "member-1"]}))
    with pytest.raises(ModelError, match=rf"^{ensemble / ENSEMBLE_FILE}: missing mode, std_weight; it is not"):
        RewardEnsemble.from_pretrained(ensemble)


@pytest.mark.parametrize("std_weight", [float("inf"), float("nan"), -1.0])
def test_an_ensemble_std_weight_must_be_finite_and_not_negative(rm, std_weight):
    member = RewardModel(rm.model, rm.tokenizer, rm.spec.model_copy(update={
        "normalization": Normalization(mean=0, std=1, n=2)}))
    with pytest.raises(ConfigError, match="std weight must be a finite number >= 0"):
        RewardEnsemble([member, member], mode="mean-minus-std", std_weight=std_weight)


@pytest.mark.parametrize("damage, needle", [("no weights", "no weights to load"),
                                            ("tokenizer", "the tokenizer files cannot be read")])
def test_missing_weights_or_a_damaged_tokenizer_is_one_line(copied_model, pairs_file, tmp_path, damage, needle):
    if damage == "no weights":
        (copied_model / "model.safetensors").unlink()
    else:
        (copied_model / "tokenizer.json").write_text("{garbage")
    output = tmp_path / "out.jsonl"
    result = cli_score(copied_model, pairs_file, output)
    assert_refused(result, str(copied_model), needle, not_written=(output,))


@pytest.mark.parametrize("override", ["train.epochs=.inf", "optim.betas=[.nan, 0.9]", "optim.lr=.nan"])
def test_non_finite_config_values_are_refused_naming_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(None, [override], base={"data": {"train": [{"path": "x.jsonl"}]}})


def test_a_saved_max_length_beyond_the_position_limit_is_refused_at_load(copied_model):
    spec = json.loads((copied_model / SPEC_FILE).read_text())
    (copied_model / SPEC_FILE).write_text(json.dumps(spec | {"max_length": 100000}))
    with pytest.raises(ModelError, match=rf"^{copied_model}: its scoring spec's max_length 100000 is more than the "
                                         r"model's position embeddings hold \(512 tokens\)"):
        RewardModel.from_pretrained(copied_model)

def test_a_scoring_spec_that_is_not_json_names_the_file(copied_model, pairs_file, tmp_path):
    (copied_model / SPEC_FILE).write_text('{"backbone": "x", "format": ')
    with pytest.raises(ModelError, match=rf"^{copied_model / SPEC_FILE} is damaged \(not valid JSON: Expecting value: "
                                         r"line 1 column 29 \(char 28\)\): re-export or retrain the model$"):
        RewardModel.from_pretrained(copied_model)
    output = tmp_path / "out.jsonl"
    result = cli_score(copied_model, pairs_file, output)
    assert_refused(result, str(copied_model / SPEC_FILE), "not valid JSON", not_written=(output,))


def test_a_scoring_spec_with_wrong_field_types_lists_each_field_on_one_line(copied_model):
    spec = json.loads((copied_model / SPEC_FILE).read_text())
    (copied_model / SPEC_FILE).write_text(json.dumps(spec | {"max_length": "long", "pooling": 3, "extra": 1}))
    with pytest.raises(ModelError) as refused:
        RewardModel.from_pretrained(copied_model)
    message = str(refused.value)
    assert message.startswith(f"{copied_model / SPEC_FILE} is not a valid scoring spec: ") and "\n" not in message
    for problem in ("pooling: Input should be 'last' or 'first'",
                    "max_length: Input should be a valid integer, unable to parse string as an integer",
                    "extra: Extra inputs are not permitted"):
        assert problem in message, (problem, message)


# ---- training outputs: an existing model, an output dir that is a file ---------------------------------------------
def test_train_refuses_to_replace_a_model_unless_overwrite(llama_dir, toy_data, tmp_path):
    config = load_config(None, base=train_config(llama_dir, toy_data))
    train(config, tmp_path / "run", show_progress=False)
    weights = tmp_path / "run" / "model" / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(TrainingError, match=rf"^{tmp_path / 'run' / 'model'} holds a model from an earlier run: pass "
                                            r"--overwrite \(overwrite=True\) to replace it, or choose a new "
                                            r"--output-dir$"):
        train(config, tmp_path / "run", show_progress=False)
    assert weights.read_bytes() == before, "the model is untouched"
    assert (tmp_path / "run" / "metrics.json").is_file()
    no_eval = load_config(None, base=train_config(llama_dir, toy_data, train={"seed": 1}, data={"eval_fraction": 0}))
    train(no_eval, tmp_path / "run", show_progress=False, overwrite=True)
    assert weights.read_bytes() != before, "overwrite replaces it"
    assert not (tmp_path / "run" / "metrics.json").exists(), "the earlier run's metrics do not stay"


def test_cli_train_over_an_existing_model_is_refused(llama_dir, toy_data, tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    result = runner.invoke(app, ["train", "--config", str(config_file(tmp_path, train_config(llama_dir, toy_data))),
                                 "--output-dir", str(tmp_path / "run")])
    assert_refused(result, str(tmp_path / "run" / "model"), "holds a model from an earlier run", "--overwrite",
                   not_written=(tmp_path / "run" / "summary.json",))


def test_cli_train_overwrite_replaces_the_model(llama_dir, toy_data, tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    result = runner.invoke(app, ["train", "--config", str(config_file(tmp_path, train_config(llama_dir, toy_data))),
                                 "--output-dir", str(tmp_path / "run"), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model" / SPEC_FILE).is_file()


def test_train_into_a_file_is_refused_before_the_model_is_built(tmp_path):
    (tmp_path / "run").write_text("not a directory")
    config = load_config(None, base=train_config(Path("nosuch"), tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match=rf"^output directory {tmp_path / 'run'} is a file: give a directory$"):
        train(config, tmp_path / "run", show_progress=False)


# ---- scoring and evaluation outputs -------------------------------------------------------------------------------
def test_score_output_that_is_a_directory_is_refused_before_reading_or_scoring(rm, tmp_path):
    (tmp_path / "out").mkdir()
    missing = tmp_path / "missing.jsonl"  # reading the input first would fail on this file instead
    with pytest.raises(ConfigError, match=rf"^output {tmp_path / 'out'} is a directory: give a file path$"):
        score_file(rm, missing, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=rf"^output {tmp_path / 'file' / 'o.jsonl'}: {tmp_path / 'file'} is a file"):
        score_file(rm, missing, tmp_path / "file" / "o.jsonl")


def test_cli_score_output_directory(model_dir, pairs_file, tmp_path):
    (tmp_path / "out").mkdir()
    result = cli_score(model_dir, pairs_file, tmp_path / "out")
    assert_refused(result, f"output {tmp_path / 'out'} is a directory")
    assert not any((tmp_path / "out").iterdir())


def test_eval_out_that_is_a_file_is_refused_before_loading_anything(model_dir, toy_data, tmp_path):
    out = tmp_path / "out"
    out.write_text("keep me")
    config = EvalConfig(models=[tmp_path / "no-model"], data=[str(toy_data)], out_dir=out, progress=False)
    with pytest.raises(ConfigError, match=rf"^output directory {out} is a file: give a directory$"):
        evaluate(config)
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(toy_data), "--out", str(out)])
    assert_refused(result, f"output directory {out} is a file")
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_batch_size_below_one_is_refused_where_it_enters(rm, model_dir, pairs_file, toy_data, tmp_path, batch_size):
    needle = rf"^batch_size must be at least 1, got {batch_size}$"
    with pytest.raises(ConfigError, match=needle):
        rm.score(["a prompt"], ["a response"], batch_size=batch_size)
    with pytest.raises(ConfigError, match=needle):
        score_file(rm, pairs_file, tmp_path / "out.jsonl", batch_size=batch_size)
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(ConfigError, match=needle):
        EvalConfig(models=[model_dir], data=[str(toy_data)], out_dir=tmp_path / "eval", batch_size=batch_size)
    with pytest.raises(ConfigError, match=rf"^rows_per_batch must be at least 1, got {batch_size}$"):
        rm.score_candidates(["a prompt"], [["a", "b"]], rows_per_batch=batch_size)


def test_a_negative_bootstrap_is_refused(model_dir, toy_data, tmp_path):
    with pytest.raises(ConfigError, match=r"^bootstrap must be at least 0, got -5$"):
        EvalConfig(models=[model_dir], data=[str(toy_data)], out_dir=tmp_path / "eval", bootstrap=-5)
    assert not (tmp_path / "eval").exists()


def test_score_file_writes_json_lines_to_stdout_for_dash(rm, pairs_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert score_file(rm, pairs_file, "-") == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and isinstance(strict_json(lines[0])["reward"], float)
    assert not Path("-").exists()


def test_cli_score_to_stdout_prints_only_the_records(model_dir, pairs_file):
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(pairs_file), "--output", "-"])
    assert result.exit_code == 0, result.output
    records = [strict_json(line) for line in result.stdout.splitlines()]
    assert len(records) == 1 and isinstance(records[0]["reward"], float)


# ---- strict JSON everywhere ---------------------------------------------------------------------------------------
def test_every_json_file_of_a_train_eval_score_run_is_strict(llama_dir, toy_data, tmp_path):
    """Constant ratings leave the pointwise eval score undefined (it was NaN in summary.json and the train log), a
    response too long to score has no reward: every file written must still parse with a strict parser."""
    ratings = write_jsonl(tmp_path / "ratings.jsonl", [{"prompt": p.prompt, "response": p.chosen, "score": 3.0}
                                                       for p in toy_pairs(48)])
    config = load_config(None, base=train_config(
        llama_dir, ratings, task={"type": "pointwise", "attributes": ["score"]}, data={"eval_fraction": 0.25},
        train={"epochs": 1, "eval_every": 2, "save_every": 2, "log_every": 1}))
    result = train(config, tmp_path / "run", show_progress=False)
    assert result.summary["best_eval_score"] is None and result.metrics["attributes"]["score"]["pearson"] is None
    logged = [strict_json(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["eval_pearson"] for entry in logged if "eval_pearson" in entry] == [None] * 2
    model = tmp_path / "run" / "model"
    evaluate(EvalConfig(models=[model], data=[str(ratings)], out_dir=tmp_path / "labels", progress=False))
    evaluate(EvalConfig(models=[model], data=[str(toy_data)], out_dir=tmp_path / "pairs", progress=False))
    too_long = {"prompt": "q", "response": "word " * 200}
    write_jsonl(tmp_path / "score.jsonl", [too_long, {"prompt": "q", "response": "a good helpful answer"}])
    score_file(RewardModel.from_pretrained(model), tmp_path / "score.jsonl", tmp_path / "scores" / "scored.jsonl")
    scored = [strict_json(line) for line in (tmp_path / "scores" / "scored.jsonl").read_text().splitlines()]
    assert scored[0]["reward"] is None and scored[0]["error"].startswith("response longer than max_length")
    written = [p for p in tmp_path.rglob("*") if p.suffix in (".json", ".jsonl") and p.parent != tmp_path]
    assert len(written) > 10
    for path in written:
        text = path.read_text(encoding="utf-8")
        for document in text.splitlines() if path.suffix == ".jsonl" else [text]:
            strict_json(document)
