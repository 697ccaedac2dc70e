"""The scoring service: a real uvicorn server on a free loopback port for parity, batching, auth and OpenRLHF;
in-process ASGI calls for the error statuses, readiness and draining."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from typer.testing import CliRunner

from conftest import KEY, PROMPTS, RESPONSES, asgi_client, running_server, save_tiny_model
from rewardkit.cli.app import app as cli_app
from rewardkit.errors import ModelError
from rewardkit.models.ensemble import RewardEnsemble, combine_rewards, save_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization
from rewardkit.serving.app import create_app, drain, load_models
from rewardkit.serving.requests import RewardRequest, ServeConfig, ServeError, split_queries

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def model_dirs(llama_dir, bert_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    return {
        "llama": save_tiny_model(llama_dir, root / "llama", 0, Normalization(mean=0.1, std=0.5, n=10)),
        "bert": save_tiny_model(bert_dir, root / "bert", 1, Normalization(mean=-0.2, std=2.0, n=10)),
        "raw": save_tiny_model(llama_dir, root / "raw", 2, None),
    }


@pytest.fixture(scope="module")
def models(model_dirs) -> dict[str, RewardModel]:
    return {name: RewardModel.from_pretrained(directory) for name, directory in model_dirs.items()}


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def ensemble(models) -> RewardEnsemble:
    return RewardEnsemble([models["llama"], models["bert"]], mode="mean-minus-std", std_weight=2.0)


@pytest.fixture(scope="module")
def ensemble_dir(llama_dir, bert_dir, tmp_path_factory) -> Path:
    """A saved ensemble of two members whose manifest says mean - 2 * std."""
    root = tmp_path_factory.mktemp("saved-ensemble")
    members = [save_tiny_model(llama_dir, root / "a", 3, Normalization(mean=0.2, std=0.3, n=10)),
               save_tiny_model(bert_dir, root / "b", 4, Normalization(mean=-0.1, std=1.5, n=10))]
    save_ensemble(root / "ensemble", members, mode="mean-minus-std", std_weight=2.0)
    return root / "ensemble"


@pytest.fixture(scope="module")
def served(models, ensemble) -> str:
    """A real server with auth on, two models and an ensemble of them (mean - 2 * std)."""
    config = ServeConfig(api_key=KEY, max_wait_ms=50)
    app = create_app({"llama": models["llama"], "bert": models["bert"], "raw": models["raw"]}, config,
                     {"both": ensemble})
    with running_server(app) as (url, _):
        yield url


def score(url: str, body: dict, headers: dict = AUTH) -> httpx.Response:
    return httpx.post(f"{url}/v1/score", json=body, headers=headers, timeout=30)


def pair_items(prompts, responses) -> list[dict]:
    return [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]


def batches_run(url: str, model: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf'^rewardkit_batch_size_count{{model="{re.escape(model)}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


# ---- parity with offline scoring -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["llama", "bert"])
def test_served_scores_equal_offline_scores(served, models, name):
    rm = models[name]
    conversation = [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": RESPONSES[0]}]
    body = {"model": name, "items": pair_items(PROMPTS, RESPONSES) + [{"messages": conversation}]}
    response = score(served, body)
    assert response.status_code == 200, response.text
    result = response.json()
    offline = rm.score(PROMPTS, RESPONSES)
    assert result["rewards"] == pytest.approx(offline + offline[:1], abs=1e-5)
    tokens = sum(len(e.input_ids) for e in rm.spec.encode_batch(rm.tokenizer, PROMPTS, RESPONSES))
    assert result["usage"]["tokens"] == tokens + len(rm.spec.encode(rm.tokenizer, PROMPTS[0], RESPONSES[0]).input_ids)
    assert result["model"] == name and result["normalized"] is False and result["warnings"] == []

    normalized = score(served, body | {"normalize": True}).json()["rewards"]
    assert normalized[:3] == pytest.approx(rm.score(PROMPTS, RESPONSES, normalize=True), abs=1e-5)


def test_default_model_is_the_first(served, models):
    result = score(served, {"items": pair_items(PROMPTS[:1], RESPONSES[:1])}).json()
    assert result["model"] == "llama"
    assert result["rewards"] == pytest.approx(models["llama"].score(PROMPTS[:1], RESPONSES[:1]), abs=1e-5)


def test_concurrent_single_item_requests_share_forward_passes(served, models):
    prompts = [f"question {i} about tea?" for i in range(64)]
    responses = ["a good answer " * (1 + i % 5) for i in range(64)]
    before = batches_run(served, "llama")

    async def send_all():
        async with httpx.AsyncClient(base_url=served, headers=AUTH, timeout=60) as client:
            requests = [client.post("/v1/score", json={"items": pair_items([p], [r])})
                        for p, r in zip(prompts, responses, strict=True)]
            return await asyncio.gather(*requests)

    replies = run(send_all())
    forwards = batches_run(served, "llama") - before
    assert all(r.status_code == 200 for r in replies)
    served_rewards = [r.json()["rewards"][0] for r in replies]
    assert served_rewards == pytest.approx(models["llama"].score(prompts, responses), abs=1e-5)
    assert 1 <= forwards <= 16, f"64 single-item requests ran as {forwards} forward passes"


# ---- ensembles ---------------------------------------------------------------------------------------------------
def test_ensemble_combines_member_z_scores_with_its_own_mode_and_reports_their_spread(served, models, ensemble):
    result = score(served, {"model": "both", "items": pair_items(PROMPTS, RESPONSES)}).json()
    offline = ensemble.score(PROMPTS, RESPONSES)
    assert result["rewards"] == pytest.approx(offline.rewards, abs=1e-5)
    assert result["uncertainty"] == pytest.approx(offline.uncertainty, abs=1e-5)
    z = [models[name].score(PROMPTS, RESPONSES, normalize=True) for name in ("llama", "bert")]
    by_hand = [(a + b) / 2 - 2.0 * abs(a - b) / 2 for a, b in zip(*z, strict=True)]  # mean - 2 * population std
    assert result["rewards"] == pytest.approx(by_hand, abs=1e-5)
    assert result["normalized"] is True


def test_combine_rewards_modes_by_hand():
    members = [[1.0, -1.0], [3.0, -1.0]]  # item 0: mean 2, population std 1; item 1: identical members
    assert combine_rewards(members, "mean") == ([2.0, -1.0], [1.0, 0.0])
    assert combine_rewards(members, "min")[0] == [1.0, -1.0]
    assert combine_rewards(members, "mean-minus-std")[0] == [1.0, -1.0]
    assert combine_rewards(members, "mean-minus-std", 2.0)[0] == [0.0, -1.0]
    assert [math.isnan(v) for v in combine_rewards([[1.0, math.nan], [3.0, 0.0]], "min")[0]] == [False, True]


def test_ensemble_members_need_normalization(model_dirs):
    with pytest.raises(ModelError, match="each with normalization statistics"):
        load_models([], [f"e={model_dirs['llama']},{model_dirs['raw']}"])


# ---- OpenRLHF ------------------------------------------------------------------------------------------------------
def test_get_reward_speaks_openrlhf(served, models):
    rm = models["llama"]
    queries = [p + r for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    response = httpx.post(f"{served}/get_reward", json={"query": queries, "prompts": PROMPTS, "labels": ["a"] * 3},
                          headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert body["rewards"] == body["scores"] == pytest.approx(rm.score(PROMPTS, RESPONSES), abs=1e-5)

    whole = httpx.post(f"{served}/get_reward", json={"query": queries}, headers=AUTH).json()
    assert whole["rewards"] == pytest.approx(rm.score([""] * 3, queries), abs=1e-5)

    ensemble = httpx.post(f"{served}/get_reward?model=both", json={"query": queries}, headers=AUTH).json()
    assert len(ensemble["extra_logs"]["uncertainty"]) == 3


def test_openrlhf_queries_lose_padding_and_eos_and_must_contain_their_prompt():
    request = RewardRequest(query=["<pad><pad>Q: hi A: yes<eos><pad>", "other"], prompts=["Q: hi", "missing"])
    with pytest.raises(ServeError, match="query 1 does not contain its prompt"):
        split_queries(request, {"<pad>", "<eos>"})
    request.query, request.prompts = request.query[:1], request.prompts[:1]
    assert split_queries(request, {"<pad>", "<eos>"}) == (["Q: hi"], [" A: yes"])
    assert split_queries(RewardRequest(query=["<pad>all<eos>"]), {"<pad>", "<eos>"}) == ([""], ["all"])


# ---- the other routes ----------------------------------------------------------------------------------------------
def test_health_models_and_metrics(served, models):
    assert httpx.get(f"{served}/health").json() == {"status": "ready", "models": ["llama", "bert", "raw", "both"]}
    listing = httpx.get(f"{served}/v1/models", headers=AUTH).json()
    by_id = {entry["id"]: entry for entry in listing["data"]}
    assert listing["default"] == "llama"
    assert by_id["llama"]["fingerprint"] == models["llama"].spec.fingerprint()
    assert by_id["llama"]["normalization"] == {"mean": 0.1, "std": 0.5, "n": 10}
    assert by_id["raw"]["normalization"] is None
    assert by_id["both"]["kind"] == "ensemble" and [m["id"] for m in by_id["both"]["members"]] == ["llama", "bert"]
    assert (by_id["both"]["mode"], by_id["both"]["std_weight"]) == ("mean-minus-std", 2.0)
    metrics = httpx.get(f"{served}/metrics").text
    for name in ("rewardkit_requests_total", "rewardkit_batch_size_bucket", "rewardkit_queue_seconds_count",
                 "rewardkit_tokens_total", "rewardkit_forward_seconds_total", "rewardkit_ready 1.0"):
        assert name in metrics


def test_auth_is_required_on_scoring_routes_only(served):
    body = {"items": pair_items(PROMPTS[:1], RESPONSES[:1])}
    assert score(served, body, headers={}).status_code == 401
    assert score(served, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert score(served, body, headers={"Authorization": KEY}).status_code == 401
    assert httpx.post(f"{served}/get_reward", json={"query": ["x"]}).status_code == 401
    assert httpx.get(f"{served}/v1/models").status_code == 401
    assert httpx.get(f"{served}/health").status_code == 200
    assert score(served, body).status_code == 200


def test_without_a_key_no_auth_is_needed(models):
    async def check():
        async with asgi_client(create_app({"llama": models["llama"]})) as client:
            return await client.post("/v1/score", json={"items": pair_items(PROMPTS[:1], RESPONSES[:1])})

    assert run(check()).status_code == 200


def test_templated_input_gets_a_warning(served):
    templated = "<|im_start|>user\nIs tea good?<|im_end|>\n"
    result = score(served, {"items": pair_items([templated, "plain"], ["yes", "\n\nHuman: more"])}).json()
    assert len(result["warnings"]) == 2 and "'<|im_end|>'" in result["warnings"][0]


# ---- errors are errors -----------------------------------------------------------------------------------------
LIMITS = ServeConfig(max_items=4, max_request_chars=2000, max_request_tokens=200)
ERROR_CASES = [
    ({"items": []}, 422, "items"),
    ({"items": [{"prompt": "q"}]}, 422, "response"),
    ({"items": [{"prompt": "q", "response": "a", "extra": 1}]}, 422, "extra"),
    ({"items": [{"messages": [{"role": "user", "content": "q"}]}]}, 422, "must end with the assistant"),
    ({"items": [{"prompt": 3, "response": "a"}]}, 422, "prompt"),
    ({"model": "nope", "items": [{"prompt": "q", "response": "a"}]}, 404, "unknown model 'nope'"),
    ({"items": [{"prompt": "q", "response": "a"}] * 5}, 413, "5 items, over the limit of 4"),
    ({"items": [{"prompt": "q" * 2001, "response": "a"}]}, 413, "characters, over the limit of 2000"),
    ({"items": [{"prompt": "tea " * 50, "response": "a"}] * 4}, 413, "tokens, over the limit of 200"),
    ({"items": [{"prompt": "q", "response": "a"}, {"prompt": "q", "response": "the good answer " * 30}]},
     413, "items [1] have responses longer than model 'llama'"),
    ({"model": "raw", "normalize": True, "items": [{"prompt": "q", "response": "a"}]}, 422, "no normalization"),
]


def test_each_error_gets_its_status_and_never_a_reward(models):
    app = create_app({"llama": models["llama"], "raw": models["raw"]}, LIMITS)

    async def send_all():
        async with asgi_client(app) as client:
            replies = [await client.post("/v1/score", json=body) for body, _, _ in ERROR_CASES]
            as_json = {"content-type": "application/json"}
            replies.append(await client.post("/v1/score", content=b"{not json", headers=as_json))
            replies.append(await client.post("/v1/score", content=b"x" * 20_000, headers=as_json))
            replies.append(await client.post("/get_reward", json={"query": ["a"], "prompts": ["a", "b"]}))
            return replies

    replies = run(send_all())
    for (body, status, message), reply in zip(ERROR_CASES, replies, strict=False):  # 3 more replies: below
        assert reply.status_code == status, (body, reply.text)
        assert message in json.dumps(reply.json()["detail"]) and "rewards" not in reply.json()
    assert replies[9].json()["items"] == [1]
    assert [r.status_code for r in replies[-3:]] == [422, 413, 422]


def test_a_non_finite_reward_is_a_500_and_a_failed_warm_up_keeps_health_at_503(model_dirs):
    rm = RewardModel.from_pretrained(model_dirs["raw"])

    async def score_then_break():
        async with asgi_client(create_app({"rm": rm})) as client:
            with torch.no_grad():
                rm.model.score.weight.fill_(math.nan)
            return await client.post("/v1/score", json={"items": pair_items(PROMPTS[:1], RESPONSES[:1])})

    async def warm_up_broken():
        async with asgi_client(create_app({"rm": rm}), ready=False) as client:
            while (health := await client.get("/health")).json()["status"] == "warming up":
                await asyncio.sleep(0.01)
            return health, await client.post("/v1/score", json={"items": pair_items(PROMPTS[:1], RESPONSES[:1])})

    reply = run(score_then_break())
    assert reply.status_code == 500 and "non-finite" in reply.json()["detail"] and "rewards" not in reply.json()
    health, refused = run(warm_up_broken())
    assert health.status_code == 503 and health.json()["status"].startswith("warm-up failed: model 'rm' produced")
    assert refused.status_code == 503


def test_a_failed_forward_pass_is_a_500_and_the_worker_keeps_serving(model_dirs, monkeypatch):
    rm = RewardModel.from_pretrained(model_dirs["raw"])
    body = {"items": pair_items(PROMPTS[:1], RESPONSES[:1])}

    def broken(encoded, batch_size):
        raise RuntimeError("out of memory")

    async def break_then_recover():
        async with asgi_client(create_app({"rm": rm})) as client:
            with monkeypatch.context() as patch:
                patch.setattr(rm, "score_encoded", broken)
                failed = await client.post("/v1/score", json=body)
            return failed, await client.post("/v1/score", json=body)

    failed, recovered = run(break_then_recover())
    assert failed.status_code == 500 and failed.json() == {"detail": "model 'rm' failed: out of memory"}
    assert recovered.status_code == 200
    assert recovered.json()["rewards"] == pytest.approx(rm.score(PROMPTS[:1], RESPONSES[:1]), abs=1e-5)


def test_batch_budget_must_fit_the_longest_pair(models):
    with pytest.raises(ValueError, match="below model 'llama'"):
        create_app({"llama": models["llama"]}, ServeConfig(max_batch_tokens=32))


# ---- readiness and shutdown ----------------------------------------------------------------------------------
def test_not_ready_before_warm_up_and_503_while_draining(models):
    app = create_app({"llama": models["llama"]})
    body = {"items": pair_items(PROMPTS[:1], RESPONSES[:1])}

    async def check():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            cold = [await client.get("/health"), await client.post("/v1/score", json=body)]
        async with asgi_client(app) as client:
            app.state.service.draining = True
            return cold + [await client.get("/health"), await client.post("/v1/score", json=body)]

    replies = run(check())
    assert [r.status_code for r in replies] == [503, 503, 503, 503]
    assert replies[0].json()["status"] == "warming up" and replies[2].json()["status"] == "draining"


def test_drain_lets_in_flight_requests_finish_and_refuses_new_ones(models):
    app = create_app({"llama": models["llama"]}, ServeConfig(max_wait_ms=1500))
    body = {"items": pair_items(PROMPTS[:1], RESPONSES[:1])}
    with running_server(app) as (url, server):
        in_flight = {}
        sender = threading.Thread(target=lambda: in_flight.update(reply=score(url, body, headers={})))
        sender.start()
        while app.state.service.in_flight == 0:
            time.sleep(0.01)
        drainer = threading.Thread(target=drain, args=(app.state.service, server, 10))
        drainer.start()
        refused = score(url, body, headers={})
        sender.join()
        drainer.join()
    assert refused.status_code == 503 and "draining" in refused.json()["detail"]
    assert in_flight["reply"].status_code == 200 and len(in_flight["reply"].json()["rewards"]) == 1


def test_cli_serve_stops_gracefully_on_sigterm(model_dirs):
    """The real command: API key from the environment, ready on /health, SIGTERM ends it with in-flight work done."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"RK_KEY": KEY}
    command = [sys.executable, "-m", "rewardkit.cli", "serve", "--model", f"tiny={model_dirs['llama']}",
               "--port", str(port), "--api-key-env", "RK_KEY", "--max-wait-ms", "1000", "--threads", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        in_flight, body = {}, {"items": pair_items(["q"], ["a"])}
        sender = threading.Thread(target=lambda: in_flight.update(reply=score(url, body)))
        sender.start()
        time.sleep(0.3)  # the request now waits in the batch queue (max_wait_ms=1000)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        refused = score(url, body)
        sender.join()
        assert process.wait(30) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert refused.status_code == 503
    assert in_flight["reply"].status_code == 200


def test_cli_serve_threads_sets_torch_threads_before_serving(model_dirs, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr("rewardkit.cli.serve.quiet_transformers", lambda: None)
    monkeypatch.setattr("rewardkit.cli.serve.run_server", lambda app, config: calls.append(f"serve on {config.port}"))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--model", str(model_dirs["llama"]), "--port", "8123", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert calls == [1, "serve on 8123"]
    assert runner.invoke(cli_app, ["serve", "--model", str(model_dirs["llama"]), "--threads", "0"]).exit_code == 2


def test_load_models_names_and_shares_directories(model_dirs):
    models, ensembles = load_models([str(model_dirs["llama"]), f"b={model_dirs['bert']}"],
                                    [f"e={model_dirs['llama']},{model_dirs['bert']}"])
    assert list(models) == ["llama", "b"] and list(ensembles) == ["e"]
    assert ensembles["e"].members[0] is models["llama"], "a directory used twice is loaded once"
    assert (ensembles["e"].mode, ensembles["e"].std_weight) == ("mean", 1.0), "a list has no saved mode"
    _, overridden = load_models([], [f"e={model_dirs['llama']},{model_dirs['bert']}"], ensemble_mode="min",
                                std_weight=0.5)
    assert (overridden["e"].mode, overridden["e"].std_weight) == ("min", 0.5)
    with pytest.raises(ValueError, match="at least two members"):
        load_models([], [f"e={model_dirs['llama']}"])
    with pytest.raises(ValueError, match="two models are named"):
        load_models([f"x={model_dirs['llama']}", f"x={model_dirs['bert']}"], [])


def test_a_trained_ensemble_directory_serves_with_its_saved_mode_unless_overridden(ensemble_dir):
    models, ensembles = load_models([f"a={ensemble_dir / 'member-0'}"], [f"e={ensemble_dir}"])
    saved = ensembles["e"]
    assert (saved.mode, saved.std_weight) == ("mean-minus-std", 2.0)
    assert saved.members[0] is models["a"], "a member also served as a model is loaded once"
    _, ensembles = load_models([], [f"e={ensemble_dir}"], ensemble_mode="mean", std_weight=0.5)
    assert (ensembles["e"].mode, ensembles["e"].std_weight) == ("mean", 0.5)


def test_ensemble_overrides_change_the_served_rewards(ensemble_dir):
    """The same saved ensemble served as saved (mean - 2 * std) and with each override."""

    async def served_rewards(**overrides) -> dict:
        _, ensembles = load_models([], [f"e={ensemble_dir}"], **overrides)
        async with asgi_client(create_app({}, ServeConfig(), ensembles)) as client:
            listing = (await client.get("/v1/models")).json()["data"][0]
            body = (await client.post("/v1/score", json={"items": pair_items(PROMPTS, RESPONSES)})).json()
        return body | {"listed": (listing["mode"], listing["std_weight"])}

    members = [RewardModel.from_pretrained(ensemble_dir / f"member-{i}") for i in range(2)]
    z = [rm.score(PROMPTS, RESPONSES, normalize=True) for rm in members]
    mean = [(a + b) / 2 for a, b in zip(*z, strict=True)]
    std = [abs(a - b) / 2 for a, b in zip(*z, strict=True)]
    assert min(std) > 1e-3, "the members disagree, so the modes differ"
    expected = {
        (): ([m - 2.0 * s for m, s in zip(mean, std, strict=True)], ("mean-minus-std", 2.0)),
        (("std_weight", 0.5),): ([m - 0.5 * s for m, s in zip(mean, std, strict=True)], ("mean-minus-std", 0.5)),
        (("ensemble_mode", "min"),): ([min(a, b) for a, b in zip(*z, strict=True)], ("min", 2.0)),
    }
    for overrides, (rewards, listed) in expected.items():
        result = run(served_rewards(**dict(overrides)))
        assert result["rewards"] == pytest.approx(rewards, abs=1e-5), overrides
        assert result["uncertainty"] == pytest.approx(std, abs=1e-5)
        assert result["listed"] == listed


def test_cli_serve_passes_ensemble_overrides_and_refuses_bad_options(ensemble_dir, monkeypatch):
    served = []
    monkeypatch.setattr("rewardkit.cli.serve.quiet_transformers", lambda: None)
    monkeypatch.setattr("rewardkit.cli.serve.run_server", lambda app, config: served.append(app))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "--ensemble", f"e={ensemble_dir}", "--std-weight", "0.5"])
    assert result.exit_code == 0, result.output
    described = served[0].state.service.scorers["e"].describe()
    assert (described["mode"], described["std_weight"]) == ("mean-minus-std", 0.5)
    refused = runner.invoke(cli_app, ["serve", "--ensemble", f"e={ensemble_dir}", "--ensemble-mode", "max"])
    assert refused.exit_code == 2 and "'--ensemble-mode'" in refused.stderr and "Traceback" not in refused.output
    refused = runner.invoke(cli_app, ["serve", "--ensemble", f"e={ensemble_dir}", "--max-wait-ms", "inf"])
    assert refused.exit_code == 1 and refused.stderr == "error: --max-wait-ms: Input should be a finite number\n"
