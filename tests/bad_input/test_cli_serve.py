"""Hostile options and requests: every numeric option has its bounds, fixed choices are choices, conflicting
options are refused, the service refuses to be exposed without a key, and bad HTTP bodies are JSON errors that keep
the connection usable. Each case asserts its exact outcome; none prints a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from conftest import KEY, asgi_client, assert_refused, assert_usage_error, running_server, save_tiny_model, write_jsonl
from rewardkit.cli.app import app
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.serving.app import create_app
from rewardkit.serving.requests import ServeConfig

runner = CliRunner()
AUTH = {"Authorization": f"Bearer {KEY}"}
GOOD = {"items": [{"prompt": "Is tea good?", "response": "yes"}]}
ROLE_ERROR = "field 'prompt[0].role': unknown role 'wizard' (expected system, user or assistant)"
WIZARD = {"prompt": [{"role": "wizard", "content": "hi"}], "response": "hello"}


@pytest.fixture(scope="module")
def model_dir(llama_dir, tmp_path_factory) -> Path:
    return save_tiny_model(llama_dir, tmp_path_factory.mktemp("bad-input") / "tiny", 0,
                           Normalization(mean=0.0, std=1.0, n=10))


@pytest.fixture(scope="module")
def model(model_dir) -> RewardModel:
    return RewardModel.from_pretrained(model_dir)


@pytest.fixture
def served_app(model):
    """The service with an API key and small request limits (8000 body bytes)."""
    return create_app({"tiny": model}, ServeConfig(api_key=KEY, max_request_chars=1000))


def post_all(app, requests: list[dict]) -> list[httpx.Response]:
    """POST each `httpx` request spec (json= or content=, headers=) to /v1/score in-process, with auth unless told."""

    async def send():
        async with asgi_client(app) as client:
            return [await client.post("/v1/score", **({"headers": AUTH} | spec)) for spec in requests]

    return asyncio.run(send())


def refused_body(app, status: int, **request) -> str:
    reply = post_all(app, [request])[0]
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json" and "rewards" not in reply.json()
    return reply.json()["detail"]


# ---- numeric bounds and fixed choices: click's usage errors (exit 2) naming the option -----------------------------
GE = "Input should be greater than or equal to"
USAGE_ERRORS = {
    "score batch size 0": (["score", "--batch-size", "0"], f"Invalid value for '--batch-size': {GE} 1"),
    "score batch size -1": (["score", "--batch-size", "-1"], f"Invalid value for '--batch-size': {GE} 1"),
    "eval bootstrap -5": (["eval", "--bootstrap", "-5"], f"Invalid value for '--bootstrap': {GE} 0"),
    "serve port -1": (["serve", "--port", "-1"], f"Invalid value for '--port': {GE} 0"),
    "serve port 70000": (["serve", "--port", "70000"],
                         "Invalid value for '--port': Input should be less than or equal to 65535"),
    "serve max items 0": (["serve", "--max-items", "0"], f"Invalid value for '--max-items': {GE} 1"),
    "serve threads 0": (["serve", "--threads", "0"], f"Invalid value for '--threads': {GE} 1"),
    "ensemble mode median": (["serve", "--ensemble-mode", "median"], "Invalid value for '--ensemble-mode': Value "
                             "error, 'median' is not one of 'mean', 'min', 'mean-minus-std'."),
    "negative std weight": (["score", "--std-weight", "-1"], f"Invalid value for '--std-weight': {GE} 0"),
    "unknown format": (["data", "audit", "f.jsonl", "--format", "csv"], "Invalid value for '--format': Value error, "
                       "'csv' is not one of 'auto', 'pairs', 'implicit', 'sharegpt', 'ranked', 'pandalm', "
                       "'rewardbench2'."),
    "on-bad-record bogus": (["data", "prepare", "f.jsonl", "--output-dir", "o", "--on-bad-record", "bogus"],
                            "Invalid value for '--on-bad-record': Value error, 'bogus' is not one of 'error', "
                            "'skip'."),
    "eval fraction above 1": (["data", "prepare", "f.jsonl", "--output-dir", "o", "--eval-fraction", "2"],
                              "Invalid value for '--eval-fraction': Input should be less than or equal to 1"),
}


@pytest.mark.parametrize("args, error", USAGE_ERRORS.values(), ids=USAGE_ERRORS)
def test_an_option_out_of_its_range_or_choices_is_a_usage_error(args, error):
    assert_usage_error(runner.invoke(app, args), error)


def test_a_serve_limit_a_flag_cannot_bound_is_one_line_naming_the_flag(model_dir):
    result = runner.invoke(app, ["serve", "--model", str(model_dir), "--max-wait-ms", "inf"])
    assert assert_refused(result, "--max-wait-ms") == "error: --max-wait-ms: Input should be a finite number"


# ---- conflicting options: a ConfigError, never a silent winner ------------------------------------------------------
CONFLICTS = {
    "audit --model and --backbone": (
        ["data", "audit", "f.jsonl", "--model", "m", "--backbone", "b"],
        "error: --model and --backbone both name the tokenizer to count with; give one"),
    "audit --max-length with --model": (
        ["data", "audit", "f.jsonl", "--model", "m", "--max-length", "64"],
        "error: --max-length applies to --backbone (a --model counts with its own max_length)"),
    "train --ensemble and --set train.ensemble": (
        ["train", "--config", "c.yaml", "--output-dir", "o", "--ensemble", "2", "--set", "train.ensemble=3"],
        "error: --ensemble and --set train.ensemble=... both set the ensemble size; give one"),
    "serve --std-weight without an ensemble": (
        ["serve", "--model", "m", "--std-weight", "2"],
        "error: --ensemble-mode and --std-weight apply to ensembles; no --ensemble is served"),
}


@pytest.mark.parametrize("args, line", CONFLICTS.values(), ids=CONFLICTS)
def test_conflicting_options_are_refused_before_any_work(args, line):
    assert assert_refused(runner.invoke(app, args)) == line


def test_score_ensemble_options_on_one_model_are_refused(model_dir, tmp_path):
    records = write_jsonl(tmp_path / "in.jsonl", [GOOD["items"][0]])
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(records), "--output",
                                 str(tmp_path / "out.jsonl"), "--ensemble-mode", "min"])
    assert assert_refused(result, not_written=(tmp_path / "out.jsonl",)) == (
        f"error: --ensemble-mode and --std-weight apply to ensembles; {model_dir} is one reward model")


# ---- exposure: a non-loopback host needs an API key, or --insecure ------------------------------------------------
def test_serving_on_all_interfaces_without_a_key_is_refused():
    result = runner.invoke(app, ["serve", "--model", "m", "--host", "0.0.0.0"])
    assert assert_refused(result) == ("error: --host 0.0.0.0 is not a loopback address: require an API key with "
                                      "--api-key-env, or pass --insecure to serve without one")


def test_insecure_serves_on_all_interfaces_with_a_warning_on_stderr(model_dir, monkeypatch):
    served = []
    monkeypatch.setattr("rewardkit.cli.serve.quiet_transformers", lambda: None)
    monkeypatch.setattr("rewardkit.cli.serve.run_server", lambda app, config: served.append(config.host))
    result = runner.invoke(app, ["serve", "--model", f"tiny={model_dir}", "--host", "0.0.0.0", "--insecure",
                                 "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ("warning: serving on 0.0.0.0 without an API key (--insecure): anyone who can reach port "
                             "8000 can use it\n")
    assert result.stdout == "serving tiny (fp32) on http://0.0.0.0:8000\n" and served == ["0.0.0.0"]


# ---- HTTP bodies: a 422 JSON error naming what is wrong, never a 500 ----------------------------------------------
NON_JSON_NUMBERS = {
    "NaN": (b'{"items": [{"prompt": NaN, "response": "a"}]}', "NaN is not valid JSON"),
    "Infinity": (b'{"items": [{"prompt": "q", "response": "a"}], "normalize": Infinity}',
                 "Infinity is not valid JSON"),
    "-Infinity": (b'{"model": -Infinity, "items": []}', "-Infinity is not valid JSON"),
}


@pytest.mark.parametrize("body, message", NON_JSON_NUMBERS.values(), ids=NON_JSON_NUMBERS)
def test_nan_and_infinity_in_a_body_are_invalid_json(served_app, body, message):
    detail = refused_body(served_app, 422, content=body, headers=AUTH | {"content-type": "application/json"})
    assert detail == f"invalid JSON body: {message} (no NaN or infinite numbers)"


def test_after_a_nan_body_the_same_keep_alive_connection_still_scores(served_app):
    """On a real server: the bad request is a 422 with nothing logged, and the next one goes over the same
    connection (it was not reset) and is scored."""
    errors, log = RecordingHandler(), logging.getLogger("uvicorn.error")
    with running_server(served_app) as (url, _), httpx.Client(base_url=url, headers=AUTH) as client:
        log.addHandler(errors)  # after uvicorn configured its loggers (which drops their handlers)
        try:
            bad = client.post("/v1/score", content=b'{"items": [{"prompt": NaN, "response": "a"}]}',
                              headers={"content-type": "application/json"})
            bad_port = local_port(bad)
            good = client.post("/v1/score", json=GOOD)
            assert local_port(good) == bad_port, "the second request went over a new connection"
        finally:
            log.removeHandler(errors)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("invalid JSON body: NaN")
    assert good.status_code == 200 and len(good.json()["rewards"]) == 1
    assert errors.records == []


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def local_port(response: httpx.Response) -> int:
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


HTTP_REFUSALS = {
    "empty items": ({"items": []}, 422, "items: List should have at least 1 item after validation, not 0"),
    "prompt of the wrong type": ({"items": [{"prompt": 3, "response": "a"}]}, 422,
                                 "items[0]: field 'prompt': expected a string or a list of messages, got int"),
    "items not a list": ({"items": "q"}, 422, "items: Input should be a valid list"),
    "normalize not a boolean": (GOOD | {"normalize": "maybe"}, 422, "normalize: Input should be a valid boolean, "
                                "unable to interpret input"),
    "an item's unknown field": ({"items": [{"prompt": "q", "response": "a", "score": 1}]}, 422,
                                "items[0]: unexpected fields ['score'] (an item is prompt + response, or messages)"),
    "messages and a prompt": ({"items": [{"messages": [], "prompt": "q"}]}, 422,
                              "items[0]: unexpected fields ['prompt'] (an item is prompt + response, or messages)"),
    "a conversation without the reply": (
        {"items": [{"messages": [{"role": "user", "content": "q"}]}]}, 422,
        "items[0]: field 'messages' must end with the assistant reply to score"),
    "unknown model": (GOOD | {"model": "nope"}, 404, "unknown model 'nope'; this server has ['tiny']"),
    "too many characters": ({"items": [{"prompt": "q" * 1001, "response": "a"}]}, 413,
                            "request has 1002 characters, over the limit of 1000"),
}


@pytest.mark.parametrize("body, status, detail", HTTP_REFUSALS.values(), ids=HTTP_REFUSALS)
def test_a_bad_request_gets_its_status_and_one_line_of_detail(served_app, body, status, detail):
    assert refused_body(served_app, status, json=body) == detail


def test_an_oversized_body_is_refused_unread(served_app):
    body = b"{" + b" " * 8000 + b"}"
    assert refused_body(served_app, 413, content=body, headers=AUTH | {"content-type": "application/json"}) == (
        "request body over 8000 bytes")


def test_a_chunked_body_without_a_length_is_capped_too(served_app):
    async def chunks():  # no Content-Length: the body arrives in pieces (Transfer-Encoding: chunked)
        yield b'{"items": ['
        for _ in range(100):
            yield b" " * 100

    async def post() -> httpx.Response:
        async with asgi_client(served_app, headers=AUTH) as client:
            return await client.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})

    reply = asyncio.run(post())
    assert reply.status_code == 413 and reply.headers["content-type"] == "application/json", reply.text
    assert reply.json() == {"detail": "request body over 8000 bytes"}


def test_a_missing_api_key_is_a_401(served_app):
    detail = refused_body(served_app, 401, json=GOOD, headers={})
    assert detail == "missing or wrong API key: send Authorization: Bearer <key>"


# ---- one validation for every door: the same item gets the same verdict over HTTP and from a file -----------------
def test_a_bad_role_is_refused_alike_over_http_and_by_score(served_app, model_dir, tmp_path):
    reply = post_all(served_app, [{"json": {"items": [GOOD["items"][0], WIZARD]}}])[0]
    assert (reply.status_code, reply.json()) == (422, {"detail": f"items[1]: {ROLE_ERROR}", "items": [1]})
    records = write_jsonl(tmp_path / "in.jsonl", [GOOD["items"][0], WIZARD])
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(records),
                                 "--output", str(tmp_path / "out.jsonl")])
    assert assert_refused(result, not_written=(tmp_path / "out.jsonl",)) == f"error: {records}:2: {ROLE_ERROR}"


def test_an_empty_response_is_scored_alike_over_http_and_by_score(served_app, model_dir, tmp_path):
    item = {"prompt": "Say nothing.", "response": ""}
    reply = post_all(served_app, [{"json": {"items": [item]}}])[0]
    assert reply.status_code == 200, reply.text
    records = write_jsonl(tmp_path / "in.jsonl", [item])
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(records), "--output", "-",
                                 "--precision", "fp32"])  # as the served app (the library's default)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reward"] == pytest.approx(reply.json()["rewards"][0], abs=1e-5)


# ---- what should work does ----------------------------------------------------------------------------------------
def test_version_prints_the_package_version():
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "rewardkit 0.1.0\n", "")


def test_serve_help_at_80_columns_shows_every_option_in_full_with_its_default():
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    for option in ("--max-batch-tokens N", "--max-request-tokens N", "--max-request-chars N", "--trust-remote-code",
                   "--api-key-env VARIABLE", "--insecure"):
        assert f"  {option}  " in result.stdout, option
    assert "[default: 8000; 0<=x<=65535]" in result.stdout and "…" not in result.stdout
