"""Scoring on Ray Data actors, on a local Ray instance (2 CPUs): the records and rewards of `score_file`, in input
order, JSONL or Parquet; a bad record or an option the model cannot honour is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import assert_refused, save_tiny_model, write_jsonl
from rewardkit.cli.app import app as cli_app
from rewardkit.errors import DataError, ModelError
from rewardkit.models.reward_model import RewardModel
from rewardkit.scoring.files import score_file
from rewardkit.scoring.ray_scoring import score_with_ray

RECORDS = [{"prompt": f"question {i}?", "response": "a good answer " * (i % 9), "id": i} for i in range(40)]
RECORDS[5] = {"messages": [{"role": "user", "content": "tea?"}, {"role": "assistant", "content": "yes"}], "id": 5}
RECORDS[7] = {"prompt": "q", "response": "word " * 100, "id": 7}  # too long: reward null and an error


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("ray-model"), max_length=48)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_scores(scored: list[dict], expected: list[dict]) -> None:
    """The same records in the same order; rewards equal up to the float noise of other batches."""
    assert [{k: v for k, v in r.items() if k != "reward"} for r in scored] == [
        {k: v for k, v in r.items() if k != "reward"} for r in expected]
    assert [r["reward"] for r in scored] == pytest.approx([r["reward"] for r in expected], abs=1e-5)


@pytest.mark.ray
def test_ray_actors_write_the_records_and_rewards_of_score_file(local_ray, model_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    score_file(RewardModel.from_pretrained(model_dir), source, tmp_path / "one.jsonl")
    count = score_with_ray(model_dir, source, tmp_path / "ray.jsonl", num_workers=2, precision="fp32")
    expected, scored = read_jsonl(tmp_path / "one.jsonl"), read_jsonl(tmp_path / "ray.jsonl")
    assert count == 40 and [r["id"] for r in scored] == list(range(40))
    assert scored[7]["reward"] is None and "max_length" in scored[7]["error"]
    assert_same_scores(scored, expected)


@pytest.mark.ray
def test_parquet_in_and_out(local_ray, model_dir, tmp_path):
    rows = [{"prompt": r["prompt"], "response": r["response"], "id": r["id"]} for r in RECORDS if "prompt" in r]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    score_file(RewardModel.from_pretrained(model_dir), tmp_path / "in.parquet", tmp_path / "one.jsonl")
    score_with_ray(model_dir, tmp_path / "in.parquet", tmp_path / "out.parquet", num_workers=1, precision="fp32")
    scored = pq.read_table(tmp_path / "out.parquet").to_pylist()
    expected = [r | {"error": r.get("error")} for r in read_jsonl(tmp_path / "one.jsonl")]  # a column for all
    assert_same_scores(scored, expected)


@pytest.mark.ray
def test_a_bad_record_or_an_unusable_option_is_one_clear_error(local_ray, model_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q", "response": "a"}, {"prompt": "q"}])
    with pytest.raises(DataError, match=r"^.*in\.jsonl:2: missing field 'response' \(records need"):
        score_with_ray(model_dir, source, tmp_path / "out.jsonl", precision="fp32")
    with pytest.raises(ModelError, match="^this model has no normalization statistics"):
        score_with_ray(model_dir, source, tmp_path / "out.jsonl", precision="fp32", normalize=True)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.ray
def test_cli_score_with_ray(local_ray, model_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", RECORDS[:6])
    result = CliRunner().invoke(cli_app, ["score", "--model", str(model_dir), "--input", str(source), "--output",
                                          str(tmp_path / "out.jsonl"), "--precision", "fp32", "--ray",
                                          "--num-workers", "2"])
    assert result.exit_code == 0, result.output
    assert "scored 6 records on 2 Ray workers" in result.stdout
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == list(range(6))


@pytest.mark.parametrize("options, needles", [
    (["--num-workers", "2"], ["--num-workers apply to --ray"]),
    (["--ray-address", "auto", "--gpus-per-worker", "1"], ["--ray-address, --gpus-per-worker apply to --ray"]),
    (["--ray", "--shard-size", "10"], ["--shard-size", "--ray splits the work itself"]),
    (["--ray", "--output", "out.csv"], ["out.csv", "expected a .jsonl or .parquet file"]),
])
def test_cli_refuses_ray_options_that_do_not_fit(model_dir, tmp_path, monkeypatch, options, needles):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "in.jsonl", RECORDS[:2])
    result = CliRunner().invoke(cli_app, ["score", "--model", str(model_dir), "--input", "in.jsonl", "--output",
                                          "out.jsonl", *options])
    assert_refused(result, *needles, not_written=(tmp_path / "out.jsonl", tmp_path / "out.csv"))
