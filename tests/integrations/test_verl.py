"""verl's custom reward function interfaces (naive: one sample per call; batch: one batch per call) against a real
`rewardkit serve` on loopback, configured as verl users would: through the environment."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import KEY, PROMPTS, RESPONSES, running_server, save_tiny_model
from rewardkit.integrations import verl
from rewardkit.models.reward_model import RewardModel
from rewardkit.serving.app import create_app
from rewardkit.serving.client import RewardServiceError
from rewardkit.serving.requests import ServeConfig


@pytest.fixture(scope="module")
def rm(llama_dir, tmp_path_factory) -> RewardModel:
    return RewardModel.from_pretrained(save_tiny_model(llama_dir, tmp_path_factory.mktemp("verl") / "rm", 0, None))


@pytest.fixture(scope="module")
def server_url(rm) -> str:
    with running_server(create_app({"rm": rm}, ServeConfig(api_key=KEY))) as (url, _):
        yield url


@pytest.fixture
def env(server_url, monkeypatch) -> None:
    monkeypatch.setenv("REWARDKIT_URL", server_url)
    monkeypatch.setenv("REWARDKIT_API_KEY", KEY)
    verl.client.cache_clear()
    yield
    verl.client.cache_clear()


def test_compute_score_scores_each_sample_with_the_prompt_from_extra_info(env, rm):
    rewards = [verl.compute_score("hh", r, None, {"prompt": p}) for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    assert rewards == pytest.approx(rm.score(PROMPTS, RESPONSES), abs=1e-5)
    assert verl.compute_score("hh", RESPONSES[0], "", None) == pytest.approx(rm.score([""], RESPONSES[:1])[0],
                                                                              abs=1e-5)


def test_compute_score_batch_takes_verls_numpy_columns_and_chat_prompts(env, rm):
    """verl's batch manager passes numpy object arrays; chat prompts read from parquet are arrays of mappings."""
    chats = [np.array([{"role": "user", "content": p}], dtype=object) for p in PROMPTS]
    extra_infos = np.array([{"prompt": chats[0]}, {"question": PROMPTS[1]}, {}], dtype=object)
    rewards = verl.compute_score_batch(np.array(["hh"] * 3, dtype=object), np.array(RESPONSES, dtype=object),
                                       np.array([None] * 3, dtype=object), extra_infos)
    expected = rm.score([[{"role": "user", "content": PROMPTS[0]}], PROMPTS[1], ""], RESPONSES)
    assert rewards == pytest.approx(expected, abs=1e-5)


def test_a_wrong_key_is_an_error_not_a_reward(env, monkeypatch):
    monkeypatch.setenv("REWARDKIT_API_KEY", "wrong")
    verl.client.cache_clear()
    with pytest.raises(RewardServiceError, match="401"):
        verl.compute_score("hh", "x", None)
