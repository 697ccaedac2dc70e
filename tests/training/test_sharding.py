"""FSDP (FSDP2 `fully_shard` on gloo, two CPU processes): the same model as one process, sharded checkpoints that
resume exactly after SIGKILL, a gathered stock export, and clear refusals of launches that would go wrong."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from test_train import assert_same_weights, run_cli_train, tiny_config

from rewardkit.config import load_config
from rewardkit.errors import TrainingError
from rewardkit.models.reward_model import RewardModel
from rewardkit.training.launch import train

CPU = {"ACCELERATE_USE_CPU": "true"}


def torchrun(port: int, processes: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(port), "-m"]


def fsdp_config(llama_dir, toy_data, **overrides) -> dict:
    settings = {"batch_size": 4, "epochs": 1, "precision": "fp32", "sharding": "fsdp"} | overrides
    return tiny_config(llama_dir, toy_data, **settings)


def test_two_sharded_processes_train_the_same_model_as_one(llama_dir, toy_data, tmp_path):
    single = run_cli_train(tiny_config(llama_dir, toy_data, batch_size=4, epochs=1, precision="fp32"),
                           tmp_path / "one")
    assert single.wait(timeout=300) == 0, single.stdout.read()
    sharded = run_cli_train(fsdp_config(llama_dir, toy_data), tmp_path / "fsdp", launcher=torchrun(29541),
                            extra_env=CPU)
    output = sharded.communicate(timeout=300)[0]
    assert sharded.returncode == 0, output
    summary = json.loads((tmp_path / "fsdp" / "summary.json").read_text())
    assert (summary["processes"], summary["sharding"]) == (2, "fsdp")
    assert_same_weights(tmp_path / "one" / "model", tmp_path / "fsdp" / "model", atol=1e-5)
    scored = [RewardModel.from_pretrained(tmp_path / run / "model").score(["hi"], ["the good answer"])[0]
              for run in ("one", "fsdp")]  # the gathered export loads as a whole, stock directory
    assert abs(scored[0] - scored[1]) < 1e-5
    assert json.loads((tmp_path / "fsdp" / "metrics.json").read_text())["overall"]["n"] > 0


def test_sharded_checkpoint_resumes_after_sigkill_to_the_same_weights(llama_dir, toy_data, tmp_path):
    config = fsdp_config(llama_dir, toy_data, epochs=3, save_every=4, keep_checkpoints=2)
    straight = run_cli_train(config, tmp_path / "straight", launcher=torchrun(29542), extra_env=CPU)
    assert straight.wait(timeout=300) == 0, straight.stdout.read()

    killed = run_cli_train(config, tmp_path / "killed", launcher=torchrun(29543), extra_env=CPU)
    first = tmp_path / "killed" / "checkpoint-000004" / "progress.json"
    deadline = time.monotonic() + 240
    while not first.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = children(killed.pid)
    for pid in [*workers, killed.pid]:  # every process of the run at once, as the OOM killer or a lost node does
        os.kill(pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(workers) == 2
    checkpoint = tmp_path / "killed" / "checkpoint-000004"
    assert sorted(p.name for p in checkpoint.glob("model-rank*")) == [
        "model-rank00000-of-00002.safetensors", "model-rank00001-of-00002.safetensors"]
    assert json.loads((checkpoint / "sharding.json").read_text()) == {"engine": "fsdp2", "world_size": 2}
    assert not (tmp_path / "killed" / "model").exists()

    resume = config | {"train": config["train"] | {"resume": "latest"}}
    resumed = run_cli_train(resume, tmp_path / "killed", launcher=torchrun(29544), extra_env=CPU)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert "resumed from" in output
    assert_same_weights(tmp_path / "straight" / "model", tmp_path / "killed" / "model", atol=1e-6)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (torchrun's workers), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_resuming_with_another_world_size_or_unsharded_is_refused(llama_dir, toy_data, tmp_path):
    config = fsdp_config(llama_dir, toy_data, save_every=2)
    run = run_cli_train(config, tmp_path / "saved", launcher=torchrun(29545), extra_env=CPU)
    assert run.wait(timeout=300) == 0, run.stdout.read()
    checkpoint = sorted((tmp_path / "saved").glob("checkpoint-*"))[-1]

    unsharded = tiny_config(llama_dir, toy_data, batch_size=4, epochs=1, precision="fp32", resume=str(checkpoint))
    refused = run_cli_train(unsharded, tmp_path / "plain")
    output = refused.communicate(timeout=300)[0]
    assert refused.returncode != 0
    assert "was saved by a sharded (FSDP or DeepSpeed) run and this run is unsharded" in output

    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    (moved / "sharding.json").write_text(json.dumps({"engine": "fsdp2", "world_size": 4}))
    other = run_cli_train(fsdp_config(llama_dir, toy_data, resume=str(moved)), tmp_path / "other",
                          launcher=torchrun(29546), extra_env=CPU)
    output = other.communicate(timeout=300)[0]
    assert other.returncode != 0
    assert "was saved sharded over 4 processes; this run has 2: resume with 4 processes" in output


def test_processes_without_a_process_group_are_refused(llama_dir, toy_data, tmp_path):
    # torchrun without ACCELERATE_USE_CPU on a machine without GPUs: accelerate sets up no process group, which is
    # what `accelerate launch --use_fsdp` does here; two unrelated trainings must not start
    run = run_cli_train(tiny_config(llama_dir, toy_data, batch_size=4, epochs=1), tmp_path / "lone",
                        launcher=torchrun(29547), extra_env={"ACCELERATE_USE_CPU": "false"})
    output = run.communicate(timeout=300)[0]
    assert run.returncode != 0
    assert "launched as 2 processes, but accelerate set up no process group" in output
    assert not (tmp_path / "lone" / "model").exists()


def test_shipped_accelerate_configs_load_in_accelerate():
    from accelerate.commands.config.config_args import ClusterConfig

    expected = {"ddp.yaml": "MULTI_GPU", "fsdp2.yaml": "FSDP", "multinode-fsdp2.yaml": "FSDP",
                "zero2.yaml": "DEEPSPEED", "zero3.yaml": "DEEPSPEED"}
    directory = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
    assert sorted(p.name for p in directory.glob("*.yaml")) == sorted(expected)
    for name, kind in expected.items():
        config = ClusterConfig.from_yaml_file(directory / name)
        assert config.distributed_type.value == kind, name
        assert config.mixed_precision == "no"  # rewardkit's train.precision decides
        if kind == "FSDP":
            assert config.fsdp_config["fsdp_version"] == 2
        if kind == "DEEPSPEED":
            assert config.deepspeed_config["gradient_accumulation_steps"] == 1


def test_lora_adapters_are_not_sharded(llama_dir, toy_data, tmp_path):
    config = fsdp_config(llama_dir, toy_data)
    config["model"]["lora"] = {"r": 4}
    with pytest.raises(TrainingError, match="LoRA adapters are not sharded: train them with DDP"):
        train(load_config(None, [], base=config), tmp_path / "lora", show_progress=False)
    assert not (tmp_path / "lora" / "model").exists()
