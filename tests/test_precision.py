"""One precision choice for every path: `auto` follows the hardware (or its override), bf16 loads bf16 weights and
still returns fp32 rewards close to fp32's, and every scoring path records the precision it ran in."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import PROMPTS, RESPONSES, asgi_client, save_tiny_model, write_jsonl
from rewardkit.cli.app import app
from rewardkit.errors import ConfigError
from rewardkit.models.ensemble import RewardEnsemble, save_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.precision import AUTO_PRECISION_ENV, hardware_precision, resolve_precision
from rewardkit.scoring.loading import load_scorer
from rewardkit.serving.app import create_app, load_models
from rewardkit.serving.requests import ServeConfig

BF16_TOLERANCE = 0.05  # tiny random models; the demo model measures far less (README)


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory):
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("precision") / "model", seed=0,
                           normalization=Normalization(mean=0.0, std=1.0, n=10))


def test_auto_follows_the_environment_override_then_the_hardware(monkeypatch):
    for forced in ("bf16", "fp32"):
        monkeypatch.setenv(AUTO_PRECISION_ENV, forced)
        assert resolve_precision("auto") == forced
    assert resolve_precision("fp32") == "fp32", "an explicit precision wins over the override"
    monkeypatch.delenv(AUTO_PRECISION_ENV)
    assert resolve_precision("auto") == hardware_precision()
    monkeypatch.setenv(AUTO_PRECISION_ENV, "fp16")
    with pytest.raises(ConfigError, match="expected bf16 or fp32"):
        resolve_precision("auto")
    with pytest.raises(ConfigError, match="precision 'fp16': expected one of auto, bf16, fp32"):
        resolve_precision("fp16")


def test_bf16_holds_bf16_weights_and_returns_fp32_rewards_close_to_fp32(model_dir):
    fp32 = RewardModel.from_pretrained(model_dir)
    bf16 = RewardModel.from_pretrained(model_dir, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    exact, low = fp32.score(PROMPTS, RESPONSES), bf16.score(PROMPTS, RESPONSES)
    assert all(isinstance(r, float) for r in low) and low != exact, "bf16 really ran"
    assert low == pytest.approx(exact, abs=BF16_TOLERANCE)
    packed = bf16.score_candidates(PROMPTS[:1], [RESPONSES])[0]
    alone = fp32.score(PROMPTS[:1] * len(RESPONSES), RESPONSES)
    assert packed == pytest.approx(alone, abs=BF16_TOLERANCE), "prefix-shared candidates in bf16 too"


def test_ensembles_and_the_loader_take_the_precision(model_dir, llama_dir, tmp_path):
    members = [save_tiny_model(llama_dir, tmp_path / f"m{seed}", seed=seed,
                               normalization=Normalization(mean=0.0, std=1.0, n=10)) for seed in (0, 1)]
    save_ensemble(tmp_path / "ensemble", members)  # moves the members in
    assert RewardEnsemble.from_pretrained(tmp_path / "ensemble", precision="bf16").precision == "bf16"
    assert load_scorer(tmp_path / "ensemble").precision == "fp32", "the library's default is exact"
    assert load_scorer(model_dir, precision="bf16").precision == "bf16"
    with pytest.raises(ConfigError, match="apply to ensembles"):
        load_scorer(model_dir, ensemble_mode="min")


def test_score_and_serve_record_the_precision(model_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": p, "response": r}
                                                 for p, r in zip(PROMPTS, RESPONSES, strict=True)])
    written = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.jsonl"
        result = CliRunner().invoke(app, ["score", "--model", str(model_dir), "--input", str(source), "--output",
                                          str(out), "--precision", precision])
        assert result.exit_code == 0 and f"scored 3 records in {precision}" in result.output, result.output
        written[precision] = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["precision"] for r in written["bf16"]} == {"bf16"} and {r["precision"] for r in written["fp32"]} == {
        "fp32"}
    assert [r["reward"] for r in written["bf16"]] == pytest.approx([r["reward"] for r in written["fp32"]],
                                                                   abs=BF16_TOLERANCE)


    async def served() -> tuple[dict, dict]:
        models, _ = load_models([str(model_dir)], [], precision="bf16")
        async with asgi_client(create_app(models, ServeConfig())) as client:
            listing = (await client.get("/v1/models")).json()["data"][0]
            body = (await client.post("/v1/score", json={"items": [{"prompt": "q", "response": "a"}]})).json()
        return listing, body


    listing, body = asyncio.run(served())
    assert listing["precision"] == body["precision"] == "bf16"
