"""The endpoint sampler: against a scripted OpenAI-compatible server (faults, n, concurrency) and, once, against the
real llama.cpp server."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("openai", reason="the endpoint sampler needs the openai client")

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from conftest import assert_refused, running_server, write_jsonl
from llama_server import LLAMA_MODEL, llama_server_fixture
from rewardkit.cli.app import app
from rewardkit.errors import ModelError
from rewardkit.sampling.endpoint import EndpointSampler
from rewardkit.sampling.local import SamplingParams
from rewardkit.sampling.pool import read_pool
from rewardkit.sampling.prompts import PromptRecord, load_prompts
from rewardkit.sampling.run import sample_pool

runner = CliRunner()
llama_url = llama_server_fixture()


class ScriptedServer:
    """/v1/chat/completions answering from a script of faults, then successes; records every request."""

    def __init__(self, faults: list[tuple[int, dict]] = (), *, honour_n: bool = True, logprobs: bool = True,
                 reject_n: bool = False, delay_s: float = 0.0) -> None:
        self.faults, self.honour_n, self.logprobs, self.delay_s = list(faults), honour_n, logprobs, delay_s
        self.reject_n = reject_n
        self.requests: list[tuple[float, dict]] = []
        self.in_flight = self.most_in_flight = 0
        self.app = FastAPI()
        self.app.get("/health")(lambda: {"status": "ok"})
        self.app.post("/v1/chat/completions")(self.complete)

    async def complete(self, request: Request):
        body = await request.json()
        self.requests.append((time.monotonic(), body))
        if self.faults:
            status, headers = self.faults.pop(0)
            return JSONResponse({"error": {"message": f"scripted {status}"}}, status_code=status, headers=headers)
        if self.reject_n and body.get("n", 1) > 1:
            return JSONResponse({"error": {"message": "n > 1 is not supported"}}, status_code=400)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay_s)
        self.in_flight -= 1
        n = body.get("n", 1) if self.honour_n else 1
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [self.choice(i, body["seed"]) for i in range(n)],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5 * n, "total_tokens": 3 + 5 * n}}

    def choice(self, index: int, seed: int) -> dict:
        tokens = index + 1 if self.honour_n else 5
        logprobs = {"content": [{"token": "a", "logprob": -1.0, "bytes": None, "top_logprobs": []}] * tokens}
        return {"index": index, "message": {"role": "assistant", "content": f"seed {seed} choice {index}"},
                "finish_reason": "length" if index == 0 else "stop", "logprobs": logprobs if self.logprobs else None}


def sampler_for(url: str, **options) -> EndpointSampler:
    return EndpointSampler(f"{url}/v1", "fake", SamplingParams(max_new_tokens=5, seed=7), **options)


def draw(sampler: EndpointSampler, indices: list[int], prompt_id: str = "p") -> dict:
    async def go():
        try:
            return await sampler.sample(PromptRecord(prompt_id, "hi"), indices, len(indices))
        finally:
            await sampler.aclose()

    return asyncio.run(go())


def test_retries_429_honouring_retry_after_then_500_then_succeeds():
    server = ScriptedServer([(429, {"Retry-After": "1"}), (500, {})])
    with running_server(server.app) as (url, _):
        completions = draw(sampler_for(url, max_retries=2), [0])
    (t429, _), (t500, _), (t_ok, body) = server.requests
    assert t500 - t429 >= 1.0  # waited what Retry-After said (the client's own first backoff is 0.5 s at most)
    assert 0.5 <= t_ok - t500 < 3  # the 500 had no Retry-After: the client's exponential backoff (0.75-1 s)
    assert completions[0].response == f"seed {body['seed']} choice 0" and completions[0].tokens == 5
    assert completions[0].finish_reason == "length"


def test_retries_give_up_with_a_model_error():
    server = ScriptedServer([(503, {})] * 3)
    with running_server(server.app) as (url, _), pytest.raises(ModelError, match="HTTP 503"):
        draw(sampler_for(url, max_retries=1), [0])
    assert len(server.requests) == 2


def test_a_server_honouring_n_answers_in_one_request_with_exact_token_counts():
    server = ScriptedServer()
    with running_server(server.app) as (url, _):
        completions = draw(sampler_for(url), [0, 1, 2])
    assert [body["n"] for _, body in server.requests] == [3]
    assert server.requests[0][1]["logprobs"] is True
    assert [completions[i].tokens for i in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("server", [ScriptedServer(honour_n=False), ScriptedServer(logprobs=False),
                                    ScriptedServer(reject_n=True)], ids=["n-ignored", "no-logprobs", "n-refused"])
def test_fewer_choices_than_n_fall_back_to_one_request_per_sample(server):
    with running_server(server.app) as (url, _):
        sampler = sampler_for(url)
        first = draw(sampler, [0, 1, 2], "p")
        second = draw(sampler, [0, 1], "q")
    asked = [body["n"] for _, body in server.requests]
    kept = 1 if server.logprobs and not server.reject_n else 0  # the n-request's choice, its token count known
    assert asked == [3] + [1] * (3 - kept) + [1, 1]  # the second prompt goes straight to single requests
    assert sorted(first) == [0, 1, 2] and sorted(second) == [0, 1]
    kept_seeds = [body["seed"] for _, body in server.requests if body["n"] == 1 or kept]
    assert len(set(kept_seeds)) == len(kept_seeds)  # no two kept samples share a seed
    assert len({c.response for c in first.values()}) == 3


def test_requests_in_flight_are_bounded(tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"q{i}"} for i in range(12)])
    server = ScriptedServer(honour_n=False, delay_s=0.05)
    with running_server(server.app) as (url, _):
        summary = sample_pool(load_prompts(prompts), sampler_for(url, concurrency=3), tmp_path / "pool.jsonl",
                              n=2, progress=False)
    assert summary.written == 24 and len(read_pool(tmp_path / "pool.jsonl")) == 24
    assert 2 <= server.most_in_flight <= 3


def test_a_refused_request_is_one_clear_error(tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "q"}])
    server = ScriptedServer([(404, {})])
    with running_server(server.app) as (url, _):
        result = runner.invoke(app, ["sample", "--endpoint", f"{url}/v1", "--model", "nope", "--prompts",
                                     str(prompts), "--output", str(tmp_path / "pool.jsonl"), "--n", "1",
                                     "--no-progress"])
    assert_refused(result, "HTTP 404", f"{url}/v1")


@pytest.mark.integration
def test_the_real_llama_cpp_server(llama_url, tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "Name a colour.", "reference": "red"}])
    output = tmp_path / "pool.jsonl"
    result = runner.invoke(app, ["sample", "--endpoint", llama_url, "--model", LLAMA_MODEL, "--prompts",
                                 str(prompts), "--output", str(output), "--n", "3", "--max-new-tokens", "8",
                                 "--temperature", "1.0", "--no-progress"])
    assert result.exit_code == 0, result.output
    pool = read_pool(output)
    assert sorted(s.sample_index for s in pool) == [0, 1, 2]
    assert all(1 <= s.tokens <= 8 and s.finish_reason in ("stop", "length") and s.response for s in pool)
    assert all(s.tokens == 8 for s in pool if s.finish_reason == "length")
    assert pool[0].sampler["kind"] == "endpoint" and pool[0].extra == {"reference": "red"}
