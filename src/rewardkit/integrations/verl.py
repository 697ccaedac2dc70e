"""A verl custom reward function that scores through a running `rewardkit serve`:

    custom_reward_function.path=<site-packages>/rewardkit/integrations/verl.py
    custom_reward_function.name=compute_score            # verl's naive reward manager: one call per sample
    custom_reward_function.name=compute_score_batch      # with reward_model.reward_manager=batch: one call per batch

The server is `REWARDKIT_URL` (default http://127.0.0.1:8000), its key `REWARDKIT_API_KEY` and the served model
`REWARDKIT_MODEL` (default: the server's first). verl passes the decoded response (`solution_str`) but not the
prompt: the prompt is `extra_info["prompt"]` (text or chat messages) or `extra_info["question"]`, else empty, so
put it in the dataset's `extra_info`. `ground_truth` and `data_source` are unused (a reward model needs neither).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache

from rewardkit.serving.client import RewardClient

DEFAULT_URL = "http://127.0.0.1:8000"
PROMPT_KEYS = ("prompt", "question")


def compute_score(data_source: str, solution_str: str, ground_truth, extra_info: dict | None = None) -> float:
    """verl's custom reward function interface: one sample's reward."""
    return client().score([prompt_of(extra_info)], [solution_str])[0]


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str], ground_truths: Sequence,
                        extra_infos: Sequence[dict | None]) -> list[float]:
    """verl's BatchRewardManager interface: one reward per sample, all scored in one request."""
    return client().score([prompt_of(info) for info in extra_infos], list(solution_strs))


def prompt_of(extra_info: dict | None) -> str | list[dict]:
    """The prompt a dataset put in `extra_info` (the first of PROMPT_KEYS present), else the empty prompt; chat
    messages read from parquet (an array of mappings) become a list of dicts."""
    prompt = next((extra_info[key] for key in PROMPT_KEYS if extra_info and key in extra_info), "")
    return prompt if isinstance(prompt, str) else [dict(m) for m in prompt]


@cache
def client() -> RewardClient:
    """One client per process, for the server the environment names (read on first use)."""
    return RewardClient(os.environ.get("REWARDKIT_URL", DEFAULT_URL), os.environ.get("REWARDKIT_API_KEY"),
                        model=os.environ.get("REWARDKIT_MODEL"))
