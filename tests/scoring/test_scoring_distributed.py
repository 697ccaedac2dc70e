"""Sharded scoring: two real CPU processes (torchrun, accelerate launch) score as one does; a killed run resumes by
shard with no record lost or duplicated; a changed rerun and a broken launch are refused."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import assert_refused, save_tiny_model, write_jsonl
from rewardkit.cli.app import app as cli_app
from rewardkit.errors import ConfigError, DataError
from rewardkit.models.reward_model import RewardModel
from rewardkit.scoring.distributed import ShardPlan, launch_from_env, score_file_sharded, shard_folder
from rewardkit.scoring.files import score_file

DYING_WORKER = Path(__file__).with_name("scoring_dying_worker.py")
RECORDS = [{"prompt": f"question {i}?", "response": "a good answer " * (i % 9), "id": i} for i in range(60)]
SHARD_SIZE = 4  # 15 shards for two processes


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("sharded-model"), max_length=48)


@pytest.fixture
def source(tmp_path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", RECORDS)


def score_args(model_dir: Path, source: Path, output: Path, *options: str) -> list[str]:
    return ["score", "--model", str(model_dir), "--input", str(source), "--output", str(output),
            "--precision", "fp32", "--shard-size", str(SHARD_SIZE), *options]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """Two CPU processes under torchrun (a free port each time)."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args], capture_output=True, text=True, timeout=300)


def one_process(args: list[str]) -> str:
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_accelerate_processes_write_what_one_process_writes(model_dir, source, tmp_path):
    one_process(score_args(model_dir, source, tmp_path / "one.jsonl"))
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(free_port()), "-m", "rewardkit.cli"]
    result = subprocess.run([*accelerate, *score_args(model_dir, source, tmp_path / "two.jsonl")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("scored 60 records") == 1, "rank 0 alone reports"
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert not shard_folder(tmp_path / "two.jsonl").exists(), "the shards go once merged"
    score_file(RewardModel.from_pretrained(model_dir), source, tmp_path / "whole.jsonl")
    whole, two = (read(tmp_path / name) for name in ("whole.jsonl", "two.jsonl"))
    assert [{k: v for k, v in r.items() if k != "reward"} for r in two] == [
        {k: v for k, v in r.items() if k != "reward"} for r in whole]
    assert [r["reward"] for r in two] == pytest.approx([r["reward"] for r in whole], abs=1e-5), (
        "the same rewards as score_file, up to the float noise of other batches")


def test_a_killed_worker_is_resumed_without_a_record_lost_or_duplicated(model_dir, source, tmp_path):
    one_process(score_args(model_dir, source, tmp_path / "reference.jsonl"))
    output, folder = tmp_path / "out.jsonl", shard_folder(tmp_path / "out.jsonl")
    killed = torchrun(str(DYING_WORKER), "1:2", *score_args(model_dir, source, output))
    assert killed.returncode != 0 and "(SIGKILL)" in killed.stderr, killed.stderr
    done = sorted(folder.glob("shard-*.jsonl"))
    assert not output.exists() and 2 <= len(done) < 15, done
    resumed = torchrun("-m", "rewardkit.cli", *score_args(model_dir, source, output))
    assert resumed.returncode == 0, resumed.stderr
    assert f"({len(done)} of 15 shards from an earlier run)" in resumed.stdout
    assert output.read_bytes() == (tmp_path / "reference.jsonl").read_bytes()
    assert [r["id"] for r in read(output)] == list(range(60)), "every record once, in input order"
    assert not folder.exists()


def test_a_bad_input_stops_every_process_with_its_location(model_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:2]) + "{not json\n", encoding="utf-8")
    result = torchrun("-m", "rewardkit.cli", *score_args(model_dir, source, tmp_path / "out.jsonl"))
    assert result.returncode != 0
    assert "error: " in result.stderr and "in.jsonl:3: malformed JSON" in " ".join(result.stderr.split())
    assert "rank 1: stopped, as rank 0 could not plan the shards" in " ".join(result.stderr.split())
    assert not (tmp_path / "out.jsonl").exists()


class Interrupted(BaseException):
    """Stands for a kill: nothing below catches it."""


def interrupted_run(model_dir: Path, source: Path, output: Path, shards: int, monkeypatch) -> None:
    """A one-process sharded run stopped after writing `shards` shards."""
    from rewardkit.scoring import distributed

    write, written = distributed.write_text_atomic, []

    def write_then_stop(path, text):
        write(path, text)
        written.append(path)
        if len(written) == shards:
            raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(distributed, "write_text_atomic", write_then_stop)
        with pytest.raises(Interrupted):
            score_file_sharded(RewardModel.from_pretrained(model_dir), model_dir, source, output,
                               shard_size=SHARD_SIZE)


def test_a_rerun_of_another_input_or_options_is_refused_and_another_world_size_resumes(
        model_dir, source, tmp_path, monkeypatch):
    one_process(score_args(model_dir, source, tmp_path / "reference.jsonl"))
    output, folder = tmp_path / "out.jsonl", shard_folder(tmp_path / "out.jsonl")
    interrupted_run(model_dir, source, output, 3, monkeypatch)
    assert len(list(folder.glob("shard-*.jsonl"))) == 3 and not output.exists()

    changed = CliRunner().invoke(cli_app, score_args(model_dir, source, output, "--max-length", "32"))
    assert_refused(changed, str(folder), "options: max_length changed", "delete", not_written=(output,))
    write_jsonl(source, RECORDS[::-1])
    assert_refused(CliRunner().invoke(cli_app, score_args(model_dir, source, output)), "(input changed since)")
    write_jsonl(source, RECORDS)
    other_size = CliRunner().invoke(cli_app, [*score_args(model_dir, source, output), "--shard-size", "5"])
    assert_refused(other_size, "shard_size changed")

    resumed = torchrun("-m", "rewardkit.cli", *score_args(model_dir, source, output))
    assert resumed.returncode == 0, resumed.stderr
    assert "(3 of 15 shards from an earlier run)" in resumed.stdout
    assert output.read_bytes() == (tmp_path / "reference.jsonl").read_bytes()


def test_a_truncated_shard_is_found_at_the_merge(model_dir, source, tmp_path, monkeypatch):
    from rewardkit.scoring import distributed

    output, plan, write = tmp_path / "out.jsonl", ShardPlan(len(RECORDS), SHARD_SIZE), distributed.write_text_atomic
    monkeypatch.setattr(distributed, "write_text_atomic", lambda path, text: write(
        path, text.split("\n", 1)[1] if Path(path).name == plan.name(3) else text))
    with pytest.raises(DataError, match=f"{plan.name(3)}: holds 3 records, expected 4"):
        score_file_sharded(RewardModel.from_pretrained(model_dir), model_dir, source, output, shard_size=SHARD_SIZE)
    assert not output.exists()


@pytest.mark.parametrize("environ, message", [
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}, "MASTER_ADDR, MASTER_PORT not set"),
    ({"WORLD_SIZE": "2"}, "RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two': expected an integer"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "outside"),
])
def test_a_launch_without_a_process_group_is_refused(environ, message):
    with pytest.raises(ConfigError, match=message):
        launch_from_env(environ)


def test_one_process_is_no_launch():
    assert launch_from_env({}) is None and launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    launch = launch_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h",
                              "MASTER_PORT": "29500"})
    assert (launch.rank, launch.world_size, launch.local_rank) == (3, 4, 1)


def test_the_cli_refuses_a_broken_launch_before_scoring(model_dir, source, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(cli_app, score_args(model_dir, source, tmp_path / "out.jsonl"))
    assert_refused(result, "WORLD_SIZE=2", "torchrun", not_written=(tmp_path / "out.jsonl",))


@pytest.mark.parametrize("io, message", [(("-", "out.jsonl"), "not stdin"), (("in.jsonl", "-"), "not stdout")])
def test_sharded_scoring_refuses_stdin_and_stdout(model_dir, source, tmp_path, monkeypatch, io, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli_app, score_args(model_dir, Path(io[0]), Path(io[1])))
    assert_refused(result, message)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
