"""DeepSpeed ZeRO-2 and ZeRO-3 through `accelerate launch` on two CPU processes (gloo): the same model as one
process, checkpoints in safetensors (no pickle) that resume exactly after SIGKILL, a gathered stock export, and
refusals of a resume that would load the wrong slices."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from test_sharding import children
from test_train import assert_same_weights, run_cli_train, tiny_config

from rewardkit.errors import ConfigError
from rewardkit.models.reward_model import RewardModel

pytest.importorskip("deepspeed")

from rewardkit.training.deepspeed_checkpoint import SafetensorsCheckpointEngine, decode, encode  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def accelerate_launch(stage: int, port: int) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / f"zero{stage}.yaml"),
            "--num_processes", "2", "--main_process_port", str(port), "-m"]


def zero_config(llama_dir, toy_data, **overrides) -> dict:
    return tiny_config(llama_dir, toy_data, **{"batch_size": 4, "epochs": 3, "precision": "fp32"} | overrides)


def finished(run) -> str:
    output = run.communicate(timeout=300)[0]
    assert run.returncode == 0, output
    return output


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_trains_the_same_model_as_one_process_and_resumes_exactly_after_sigkill(stage, llama_dir, toy_data,
                                                                                     tmp_path):
    port = 29560 + 10 * stage
    finished(run_cli_train(zero_config(llama_dir, toy_data), tmp_path / "one"))
    config = zero_config(llama_dir, toy_data, save_every=4, keep_checkpoints=2)
    finished(run_cli_train(config, tmp_path / "straight", launcher=accelerate_launch(stage, port)))
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert (summary["processes"], summary["sharding"]) == (2, "deepspeed")
    assert_same_weights(tmp_path / "one" / "model", tmp_path / "straight" / "model", atol=1e-5)
    scored = [RewardModel.from_pretrained(tmp_path / run / "model").score(["hi"], ["the good answer"])[0]
              for run in ("one", "straight")]  # the gathered export is a whole, stock directory
    assert scored[0] == pytest.approx(scored[1], rel=1e-4)

    killed = run_cli_train(config, tmp_path / "killed", launcher=accelerate_launch(stage, port + 1))
    first = tmp_path / "killed" / "checkpoint-000004" / "progress.json"
    deadline = time.monotonic() + 240
    while not first.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = children(killed.pid)
    for pid in [*workers, killed.pid]:  # every process of the run at once
        os.kill(pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    checkpoint = tmp_path / "killed" / "checkpoint-000004"
    assert json.loads((checkpoint / "sharding.json").read_text()) == {"engine": f"deepspeed-zero{stage}",
                                                                      "world_size": 2}
    files = [p for p in checkpoint.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".safetensors", ".json"}, files  # DeepSpeed's .pt files are safetensors
    assert len(list((checkpoint / "deepspeed").glob("*optim_states.safetensors"))) == 2  # one slice per process

    resume = config | {"train": config["train"] | {"resume": "latest"}}
    output = finished(run_cli_train(resume, tmp_path / "killed", launcher=accelerate_launch(stage, port + 2)))
    assert "resumed from" in output
    assert_same_weights(tmp_path / "straight" / "model", tmp_path / "killed" / "model", atol=0)


def test_a_zero2_checkpoint_is_not_resumed_under_zero3(llama_dir, toy_data, tmp_path):
    config = zero_config(llama_dir, toy_data, epochs=1, save_every=4)
    finished(run_cli_train(config, tmp_path / "saved", launcher=accelerate_launch(2, 29590)))
    checkpoint = sorted((tmp_path / "saved").glob("checkpoint-*"))[-1]
    resume = zero_config(llama_dir, toy_data, epochs=1, resume=str(checkpoint))
    refused = run_cli_train(resume, tmp_path / "other", launcher=accelerate_launch(3, 29591))
    output = refused.communicate(timeout=300)[0]
    assert refused.returncode != 0
    assert "was saved by deepspeed-zero2; this run is deepspeed-zero3" in output


def test_deepspeed_state_round_trips_through_safetensors(tmp_path):
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    shared = torch.arange(6.0)
    state = {"module": {"a.weight": shared, "b.weight": shared[:3]}, "stage": ZeroStageEnum.weights,
             "scaler": DynamicLossScaler(init_scale=2.0**16, scale_window=100, min_scale=1.0, delayed_shift=2,
                                         consecutive_hysteresis=False, raise_error_at_min_scale=True,
                                         dtype=torch.bfloat16),
             "shapes": [{"w": torch.Size([2, 3])}], "groups": {0: {"step": torch.tensor(3.0)}},
             "betas": (0.9, 0.999), "address": fragment_address(numel=4, start=2), "steps": float("inf"),
             "empty": torch.zeros(0)}
    engine = SafetensorsCheckpointEngine()
    engine.save(state, str(tmp_path / "zero_pp_rank_0_mp_rank_00_model_states.pt"))
    loaded = engine.load(str(tmp_path / "zero_pp_rank_0_mp_rank_00_model_states.safetensors"))
    assert torch.equal(loaded["module"]["a.weight"], shared) and torch.equal(loaded["module"]["b.weight"], shared[:3])
    assert loaded["stage"] is ZeroStageEnum.weights and loaded["address"] == fragment_address(numel=4, start=2)
    assert isinstance(loaded["scaler"], DynamicLossScaler) and vars(loaded["scaler"]) == vars(state["scaler"])
    assert loaded["shapes"] == [{"w": torch.Size([2, 3])}] and loaded["betas"] == (0.9, 0.999)
    assert list(loaded["groups"]) == [0] and loaded["groups"][0]["step"].item() == 3.0
    assert loaded["steps"] == float("inf") and loaded["empty"].shape == (0,)


def test_only_deepspeed_classes_are_read_back():
    with pytest.raises(ConfigError, match="only DeepSpeed's own classes are read back"):
        decode({"$object": "os:system", "state": {}}, {})
    with pytest.raises(ConfigError, match="not a LossScalerBase"):
        decode({"$object": "deepspeed.runtime.zero.config:ZeroStageEnum", "state": {}}, {})
    with pytest.raises(TypeError, match="cannot write without pickle|which rewardkit cannot write"):
        encode({"x": object()}, {})
