"""What needs a CUDA GPU: QLoRA (bitsandbytes), and accelerate's FSDP and DeepSpeed ZeRO-3 plugins on a GPU, each
through the real launcher on the tiny backbone. Skipped without a GPU (`bench/gpu_check.py` runs the same on real
shapes)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from test_train import assert_same_weights, run_cli_train, tiny_config

from rewardkit.models.reward_model import RewardModel

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def accelerate_launch(config: str, port: int) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
            "--num_processes", "1", "--main_process_port", str(port), "-m"]


def finish(process) -> str:
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    return output


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_trains_a_4bit_backbone_and_exports_a_merged_model(llama_dir, toy_data, tmp_path):
    config = tiny_config(llama_dir, toy_data, batch_size=4, epochs=2, precision="bf16")
    config["model"]["lora"] = {"r": 8, "quantize_4bit": True}
    finish(run_cli_train(config, tmp_path / "qlora"))
    rm = RewardModel.from_pretrained(tmp_path / "qlora" / "model").to("cuda")
    assert all(isinstance(r, float) for r in rm.score(["hi"] * 2, ["the good answer", "the bad answer"]))


@pytest.mark.parametrize(("launch_config", "sharding"), [("fsdp2.yaml", "fsdp"), ("zero3.yaml", "deepspeed")])
def test_accelerate_sharding_plugins_resume_a_sharded_checkpoint_exactly(launch_config, sharding, llama_dir,
                                                                          toy_data, tmp_path):
    if sharding == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("needs deepspeed")
    config = tiny_config(llama_dir, toy_data, batch_size=4, epochs=2, precision="fp32", save_every=4)
    finish(run_cli_train(config, tmp_path / "straight", launcher=accelerate_launch(launch_config, 29563)))
    assert json.loads((tmp_path / "straight" / "summary.json").read_text())["sharding"] == sharding
    RewardModel.from_pretrained(tmp_path / "straight" / "model")  # the gathered export is a stock directory
    checkpoint = sorted((tmp_path / "straight").glob("checkpoint-*"))[0]  # the older of the two kept
    assert (checkpoint / "sharding.json").is_file()
    shutil.copytree(checkpoint, tmp_path / "resumed" / checkpoint.name)
    resumed = config | {"train": config["train"] | {"resume": "latest"}}
    output = finish(run_cli_train(resumed, tmp_path / "resumed", launcher=accelerate_launch(launch_config, 29564)))
    assert f"resumed from {tmp_path / 'resumed' / checkpoint.name}" in output
    assert_same_weights(tmp_path / "straight" / "model", tmp_path / "resumed" / "model", atol=1e-5)
