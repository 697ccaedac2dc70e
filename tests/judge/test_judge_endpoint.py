"""The endpoint judge: against a scripted OpenAI-compatible server (429 with Retry-After, 500, timeouts, malformed
JSON, truncated logprobs, bounded concurrency) and against the real llama.cpp server (logprobs)."""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

pytest.importorskip("openai", reason="the endpoint judge needs the openai client")

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from typer.testing import CliRunner

from conftest import running_server, toy_pairs, write_jsonl
from llama_server import LLAMA_MODEL, llama_server_fixture
from rewardkit.cli.app import app
from rewardkit.data.preferences import load_preferences
from rewardkit.errors import ModelError
from rewardkit.judge.endpoint import EndpointJudge, retry_after_seconds
from rewardkit.judge.judges import Failure, Verdict
from rewardkit.judge.principles import load_constitution

llama_url = llama_server_fixture()
runner = CliRunner()
CHAT = load_constitution(None).comparison("helpfulness", "Is tea good?", "Yes, it is.", "No.")
TOP = [{"token": "A", "logprob": math.log(0.6)}, {"token": " B", "logprob": math.log(0.2)},
       {"token": "The", "logprob": math.log(0.1)}]


class ScriptedServer:
    """/v1/chat/completions: the scripted faults in order, then answers "A" with TOP as its logprobs."""

    def __init__(self, faults: list[str] = (), *, delay_s: float = 0.0, logprobs: list | None = TOP) -> None:
        """`logprobs` None: the answer comes with no logprobs tokens; []: its token without its alternatives."""
        self.faults, self.delay_s, self.logprobs = list(faults), delay_s, logprobs
        self.calls, self.in_flight, self.most_in_flight = 0, 0, 0
        self.times: list[float] = []
        self.app = FastAPI()
        self.app.get("/health")(lambda: {"status": "ok"})
        self.app.post("/v1/chat/completions")(self.complete)

    async def complete(self, request: Request):
        await request.json()
        self.calls += 1
        self.times.append(time.monotonic())
        fault = self.faults.pop(0) if self.faults else None
        if fault == "429":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "1"})
        if fault in ("500", "401", "400"):
            return JSONResponse({"error": {"message": f"scripted {fault}"}}, status_code=int(fault))
        if fault == "malformed":
            return Response('{"id": "x", "choices": [', media_type="application/json")
        if fault == "hang":
            await asyncio.sleep(3)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay_s)
        self.in_flight -= 1
        content = [{"token": "A", "logprob": math.log(0.6), "bytes": None,
                    "top_logprobs": [t | {"bytes": None} for t in self.logprobs]}] if self.logprobs is not None else []
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                "choices": [{"index": 0, "finish_reason": "length", "logprobs": {"content": content},
                             "message": {"role": "assistant", "content": "A, because"}}]}


def judge_for(url: str, **options) -> EndpointJudge:
    return EndpointJudge(f"{url}/v1", "fake", backoff_s=0.05, **({"max_retries": 3, "timeout_s": 5} | options))


def test_the_verdict_is_read_from_top_logprobs():
    with running_server(ScriptedServer().app) as (url, _):
        (verdict,) = judge_for(url).compare([CHAT], ("A", "B"))
    assert verdict.source == "logprobs" and verdict.label == "A"
    assert verdict.probabilities["A"] == pytest.approx(0.75) and verdict.label_mass == pytest.approx(0.8)


def test_a_429_is_retried_after_its_retry_after_then_a_500_with_backoff():
    server = ScriptedServer(["429", "500"])
    with running_server(server.app) as (url, _):
        (verdict,) = judge_for(url).compare([CHAT], ("A", "B"))
    assert isinstance(verdict, Verdict) and server.calls == 3
    assert server.times[1] - server.times[0] >= 0.95  # Retry-After: 1


def test_timeouts_and_malformed_json_are_retried():
    server = ScriptedServer(["hang", "malformed"])
    with running_server(server.app) as (url, _):
        (verdict,) = judge_for(url, timeout_s=0.5).compare([CHAT], ("A", "B"))
    assert isinstance(verdict, Verdict) and server.calls == 3


def test_truncated_logprobs_fall_back_to_the_answer_text():
    for logprobs in (None, []):
        with running_server(ScriptedServer(logprobs=logprobs).app) as (url, _):
            (verdict,) = judge_for(url).compare([CHAT], ("A", "B"))
        assert verdict.source == "text" and verdict.probabilities == {"A": 1.0, "B": 0.0}


def test_a_request_that_keeps_failing_is_a_failure_record_and_a_refused_one_fails_at_once():
    server = ScriptedServer(["500"] * 4 + ["400"])
    with running_server(server.app) as (url, _):
        judge = judge_for(url, max_retries=3)
        (kept_failing,) = judge.compare([CHAT], ("A", "B"))
        (refused,) = judge.compare([CHAT], ("A", "B"))
    assert isinstance(kept_failing, Failure) and kept_failing.attempts == 4 and "HTTP 500" in kept_failing.error
    assert isinstance(refused, Failure) and refused.attempts == 1 and "HTTP 400" in refused.error


def test_a_refused_key_stops_the_run():
    with running_server(ScriptedServer(["401"]).app) as (url, _):
        with pytest.raises(ModelError, match=r"API key was refused \(HTTP 401; the key is read from \$OPENAI_API_KEY"):
            judge_for(url).compare([CHAT], ("A", "B"))


def test_concurrency_is_bounded():
    server = ScriptedServer(delay_s=0.05)
    with running_server(server.app) as (url, _):
        verdicts = judge_for(url, concurrency=3).compare([CHAT] * 12, ("A", "B"))
    assert all(isinstance(v, Verdict) for v in verdicts) and server.most_in_flight == 3


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    assert retry_after_seconds({"retry-after-ms": "300"}) == 0.3
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None


@pytest.mark.integration
def test_the_real_llama_cpp_server_gives_verdicts_from_logprobs(llama_url):
    judge = EndpointJudge(llama_url, LLAMA_MODEL, concurrency=2, timeout_s=120)
    verdicts = judge.compare([CHAT, load_constitution(None).comparison("honesty", "2+2?", "4", "5")], ("A", "B"))
    for verdict in verdicts:
        assert isinstance(verdict, Verdict) and verdict.source == "logprobs", verdict
        assert sum(verdict.probabilities.values()) == pytest.approx(1) and 0 < verdict.label_mass <= 1
    (critique,) = judge.generate([CHAT], max_new_tokens=8)
    assert isinstance(critique, str) and critique


def test_the_cli_records_failures_and_asks_them_again_with_retry_failed(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [p.to_dict() for p in toy_pairs(3)])
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    server = ScriptedServer(["500"] * 2)
    args = ["judge", "--input", str(data), "--output", str(out), "--endpoint", None, "--model", "fake",
            "--principle", "honesty", "--max-retries", "0", "--concurrency", "1", "--no-progress",
            "--report", str(report)]
    with running_server(server.app) as (url, _):
        args[6] = f"{url}/v1"
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        # the shortest pair goes first: both its orders fail
        assert "1 failed (not in the output); rerun with --retry-failed" in first.stderr
        assert "ab: HTTP 500" in first.stderr and "ba: HTTP 500" in first.stderr
        assert json.loads(report.read_text())["failed"] == 1 and len(load_preferences(out).pairs) == 2
        again = runner.invoke(app, args + ["--retry-failed"])
    assert again.exit_code == 0, again.output
    summary = json.loads(report.read_text())
    assert summary["calls"] == 2 and summary["failed"] == 0 and server.calls == 6 + 2
    assert len(load_preferences(out).pairs) == 3
