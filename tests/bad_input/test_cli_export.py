"""The bad-input corpus for `rewardkit export`: what it refuses, with one error line and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import assert_refused, save_tiny_model
from rewardkit.cli.app import app
from rewardkit.models.ensemble import ENSEMBLE_FILE
from rewardkit.models.spec import Normalization

runner = CliRunner()
STATS = Normalization(mean=0.5, std=2.0, n=10)


@pytest.fixture(scope="module")
def model_dir(bert_dir, tmp_path_factory) -> Path:
    return save_tiny_model(bert_dir, tmp_path_factory.mktemp("models") / "rm", seed=0, normalization=None)


def export(*args) -> object:
    return runner.invoke(app, ["export", *map(str, args)])


def test_an_existing_non_empty_directory_is_kept_without_force(model_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert_refused(export(model_dir, "--out", tmp_path / "out"), str(tmp_path / "out"), "--force")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
    result = export(model_dir, "--out", tmp_path / "out", "--force")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "notes.txt").exists() and (tmp_path / "out" / "README.md").is_file()


@pytest.mark.parametrize("content", ["missing", "without a spec"])
def test_a_directory_that_is_not_a_trained_model_is_refused(tmp_path, content):
    source = tmp_path / "not-a-model"
    if content == "without a spec":
        source.mkdir()
        (source / "config.json").write_text("{}")
    assert_refused(export(source, "--out", tmp_path / "out"), str(source), "not a rewardkit model",
                   not_written=(tmp_path / "out",))


def test_an_ensemble_is_refused_naming_its_members(tmp_path):
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / ENSEMBLE_FILE).write_text('{"members": [], "mode": "mean", "std_weight": 1}')
    assert_refused(export(tmp_path / "ens", "--out", tmp_path / "out"), "is an ensemble", "member-",
                   not_written=(tmp_path / "out",))


def test_baking_needs_statistics_and_a_head_with_a_bias(model_dir, llama_dir, tmp_path):
    assert_refused(export(model_dir, "--out", tmp_path / "out", "--bake-normalization"),
                   "no normalization statistics", not_written=(tmp_path / "out",))
    decoder = save_tiny_model(llama_dir, tmp_path / "decoder", seed=0, normalization=STATS)
    assert_refused(export(decoder, "--out", tmp_path / "out", "--bake-normalization"),
                   "LlamaForSequenceClassification has no bias", not_written=(tmp_path / "out",))
