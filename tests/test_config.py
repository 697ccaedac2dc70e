"""Config loading: YAML, dotted overrides, strict validation with messages naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import SHARED_DATA
from rewardkit.config import ConfigError, UniqueKeyLoader, load_config


@pytest.fixture
def config_file(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("")
    path = tmp_path / "run.yaml"
    path.write_text("model: {backbone: minilm-l6}\ndata:\n  train:\n    - {path: pairs.jsonl}\n")
    return path


def test_relative_data_paths_resolve_against_the_config_file(config_file):
    config = load_config(config_file)
    assert config.data.train[0].path == str(config_file.parent / "pairs.jsonl")


def test_overrides_are_parsed_as_yaml(config_file):
    config = load_config(config_file, ["optim.lr=1e-5", "train.epochs=2", "model.lora={r: 8}", "train.resume=latest"])
    assert config.optim.lr == 1e-5 and config.train.epochs == 2 and config.model.lora.r == 8
    assert config.train.resume == "latest"


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=[1", r"override 'optim.lr=\[1': while parsing a flow sequence: expected ',' or ']'"),
        ("model.lora={r: 8, r: 9}", r"override 'model.lora={r: 8, r: 9}': duplicate key 'r'"),
        ("optim.lrr=1", "optim.lrr: Extra inputs are not permitted"),
        ("train.batch_size=0", "train.batch_size: Input should be greater than 0"),
        ("train.precision=fp8", "train.precision"),
        ("nonsense", "is not key=value"),
        ("train.early_stopping_patience=2", "early_stopping_patience needs eval_every"),
    ],
)
def test_bad_values_name_the_key(config_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, [override])


def test_a_number_addresses_a_list_item(config_file):
    config = load_config(config_file, ["data.train.0.ties=keep", "data.train.0.max_pairs=10", "task.loss=davidson"])
    assert config.data.train[0].ties == "keep" and config.data.train[0].max_pairs == 10
    with pytest.raises(ConfigError, match="1 is not an index of a list of 1"):
        load_config(config_file, ["data.train.1.ties=keep"])


@pytest.mark.parametrize(
    "task, message",
    [
        ({"type": "listwise", "loss": "davidson"}, "does not fit task type listwise"),
        ({"type": "pointwise"}, "needs attributes"),
        ({"loss": "rao_kupper", "tie_strength": 0.5}, "theta"),
    ],
)
def test_task_losses_must_fit_their_family(config_file, task, message):
    overrides = [f"task.{key}={value}" for key, value in task.items()]
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, overrides)


def test_unreadable_yaml_is_a_one_line_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="cannot read config .*bad.yaml: while parsing a flow sequence") as error:
        load_config(path)
    assert "\n" not in str(error.value)
    path.write_bytes(b"model: {backbone: caf\xe9}\n")
    with pytest.raises(ConfigError, match="cannot read config .*bad.yaml: 'utf-8' codec can't decode"):
        load_config(path)
    path.write_text("model: {backbone: a\x00}\n")
    with pytest.raises(ConfigError, match="bad.yaml: unacceptable character") as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_a_key_given_twice_names_the_file_line_and_key(config_file):
    config_file.write_text(config_file.read_text() + "optim:\n  lr: 1.0e-5\n  warmup_ratio: 0\n  lr: 2.0e-5\n")
    with pytest.raises(ConfigError, match=r"run.yaml:8: duplicate key 'lr' \(first given on line 6\)"):
        load_config(config_file)
    config_file.write_text(config_file.read_text().replace("optim:\n", "data: {}\noptim:\n"))
    with pytest.raises(ConfigError, match=r"run.yaml:5: duplicate key 'data' \(first given on line 2\)"):
        load_config(config_file)


def test_merge_keys_may_be_overridden_and_a_bom_is_accepted(config_file):
    text = "base: &base {lr: 1.0e-5, weight_decay: 0.1}\noptim:\n  <<: *base\n  lr: 2.0e-5\n"
    assert yaml.load(text, Loader=UniqueKeyLoader)["optim"] == {"lr": 2.0e-5, "weight_decay": 0.1}
    config_file.write_text("\ufeff" + config_file.read_text(), encoding="utf-8")
    assert load_config(config_file).model.backbone == "minilm-l6"


CONFIG_FILES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")) + [
    Path(__file__).resolve().parents[1] / "src" / "rewardkit" / "configs" / "demo.yaml"
]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_shipped_configs_validate_and_point_at_real_files(path):
    config = load_config(path)
    if any("shared/data" in source.path for source in config.data.train) and not SHARED_DATA.is_dir():
        pytest.skip("the shared data sets are not on this machine")
    assert all(Path(source.path).is_file() for source in config.data.train)
    assert path.read_text().startswith("#"), "each config opens with the command that runs it"
