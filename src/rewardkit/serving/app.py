"""The reward scoring service: `rewardkit serve --model DIR`, or in code::

    config = ServeConfig(api_key="...")
    app = create_app({"rm": RewardModel.from_pretrained("runs/demo/model")}, config,
                     {"safe": RewardEnsemble.from_pretrained("runs/ens/model")})
    run_server(app, config)                 # or mount `app` in any ASGI server

    POST /v1/score    {"model"?, "items": [{"prompt", "response"} | {"messages"}], "normalize"?, "length_penalty"?}
                      -> {"model", "precision", "rewards", "normalized", "usage": {"tokens"}, "warnings",
                      "uncertainty"?, "rewards_raw"?, "length_penalty"?, "response_tokens"?}
    POST /get_reward  OpenRLHF's remote reward model: {"query", "prompts"?, "labels"?} -> {"rewards", "scores",
                      "extra_logs"}; raw rewards of the default model (or `?model=NAME`), see `split_queries`
    GET  /health      200 once the models are loaded and a warm-up batch ran; 503 before, and while draining
    GET  /v1/models   names, precision, specs, fingerprints, max_length and long_pairs, normalization statistics;
                      ensembles' mode and std weight
    GET  /metrics     Prometheus text: requests, errors, latency, batch sizes, tokens and forward time, queue time

Text is rendered through each model's saved scoring spec, so scores equal `RewardModel.score` offline; input that
already contains template markers gets a warning. `ServeConfig.max_length` serves every model with another window
(up to its backbone's position limit) and `long_pairs="truncate"` scores an item whose response alone exceeds it
with the response's tail cut, with a warning naming the item, instead of a 413
(`rewardkit.models.backbones.windowed_spec`; the saved specs are untouched).

A length penalty L (`ServeConfig.length_penalty`, or a /v1/score request's `length_penalty`) serves
`reward - L * tokens`, tokens counted as the model scores the response (`rewardkit.scoring.length`), after
normalizing; with L > 0 a /v1/score answer adds `rewards_raw`, `length_penalty` and `response_tokens`, and
/get_reward puts `rewards_raw` and `response_tokens` in `extra_logs`.

Ensembles z-score each member with its normalization, combine them with the ensemble's own mode and std weight
(`RewardEnsemble.combine`, as `rewardkit eval` and `score` do) and return the members' std as `uncertainty`.
Concurrent requests share forward passes: each model has one queue and one worker that gathers queued pairs into a
padded batch until `max_batch_tokens`, `max_batch_size` or `max_wait_ms` is reached, runs it in its forward thread
and resolves each request's futures (`rewardkit.serving.batching`; the metrics are `rewardkit.serving.metrics`).
With an API key, scoring routes and /v1/models need `Authorization: Bearer <key>`; /health and /metrics stay open
for probes and scrapers.

Items are checked as `rewardkit score` checks its input records (`rewardkit.scoring.files.prompt_and_response`,
which uses the data importers' parsers), so the same item gets the same verdict over HTTP, from a file, and in
training data; bodies are read as data files are (`rewardkit.data.sources.STRICT_JSON`: no NaN, Infinity or
repeated key).

Errors are never rewards: 401 bad key, 404 unknown model, 413 too large (items, characters, tokens, or a response
longer than the model's max_length unless truncated, naming the items), 422 malformed, 500 non-finite reward,
503 warming up or shutting down. Every error body is `{"detail": "...", "items"?: [...]}`, `detail` one line of
text; a malformed request's names each bad field's place (`items[0]: ...`, `normalize: ...`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from rewardkit.errors import ConfigError, ModelError
from rewardkit.models.backbones import windowed_spec
from rewardkit.models.ensemble import EnsembleMode, RewardEnsemble, is_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import EncodedPair
from rewardkit.precision import Precision, default_device
from rewardkit.scoring.length import penalize
from rewardkit.serving.batching import Batcher, BatcherClosed
from rewardkit.serving.metrics import SECONDS_BUCKETS, Metrics
from rewardkit.serving.requests import (
    BODY_LIMIT_KEY,
    RewardRequest,
    ScoreRequest,
    ServeConfig,
    ServeError,
    StrictJSONRoute,
    item_pairs,
    split_queries,
    texts_of,
    validation_error_response,
)

logger = logging.getLogger("rewardkit.serve")


SCORING_ROUTES = {"/v1/score", "/get_reward"}


KNOWN_ROUTES = SCORING_ROUTES | {"/health", "/v1/models", "/metrics"}


PLAIN_TEMPLATE_MARKERS = ("\n\nHuman:", "\n\nAssistant:")  # Anthropic HH style and rewardkit's plain format


BODY_BYTES_PER_CHAR = 8  # request bodies may take this many bytes per allowed character (JSON escapes, keys)


@dataclass
class Scored:
    rewards: list[float]
    tokens: int
    normalized: bool
    uncertainty: list[float] | None = None
    truncated: list[int] = field(default_factory=list)  # items scored with their response's tail cut
    response_tokens: list[int] = field(default_factory=list)  # each response's tokens as scored (the length penalty)
    rewards_raw: list[float] | None = None  # the rewards before a length penalty, when one was applied


class Scorer(Protocol):
    name: str
    precision: str  # bf16 or fp32: what its forward passes run in
    markers: set[str]  # strings that show text was already templated
    end_tokens: set[str]  # padding/EOS strings an OpenRLHF query may carry

    async def score(self, prompts: Sequence, responses: Sequence, normalize: bool) -> Scored: ...

    def describe(self) -> dict: ...


class ModelScorer:
    """One reward model: renders through its spec (with the config's window and rule for over-long responses),
    enforces its limits, batches through its queue."""

    def __init__(self, name: str, rm: RewardModel, config: ServeConfig, metrics: Metrics) -> None:
        spec = windowed_spec(rm.spec, rm.model.config, max_length=config.max_length,
                             long_responses=config.long_pairs)
        if config.max_batch_tokens < spec.max_length:
            raise ConfigError(f"max_batch_tokens {config.max_batch_tokens} is below model {name!r}'s max_length "
                             f"{spec.max_length}: its longest pairs could never be scored")
        self.name, self.rm, self.spec, self.config, self.precision = name, rm, spec, config, rm.precision
        self.batcher = Batcher(name, rm, metrics, max_batch_tokens=config.max_batch_tokens,
                               max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms)
        tokenizer = rm.tokenizer
        specials = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
        self.markers = (specials | set(tokenizer.all_special_tokens) | set(PLAIN_TEMPLATE_MARKERS)) - {""}
        self.end_tokens = {t for t in (tokenizer.pad_token, tokenizer.eos_token) if t}
        self.tokenizer_lock = threading.Lock()  # a fast tokenizer must not be used by two threads at once

    def encode(self, prompts: Sequence, responses: Sequence) -> list[EncodedPair | None]:
        with self.tokenizer_lock:
            return self.spec.encode_batch(self.rm.tokenizer, prompts, responses)

    async def score(self, prompts: Sequence, responses: Sequence, normalize: bool) -> Scored:
        spec = self.spec
        if normalize and spec.normalization is None:
            raise ServeError(422, f"model {self.name!r} has no normalization statistics; send normalize: false")
        try:
            encoded = await asyncio.to_thread(self.encode, prompts, responses)
        except (ValueError, TypeError, KeyError) as err:  # includes template errors on unusual messages
            raise ServeError(422, f"model {self.name!r} cannot render these items: {err}") from None
        too_long = [i for i, pair in enumerate(encoded) if pair is None]
        if too_long:
            raise ServeError(413, f"items {too_long} have responses longer than model {self.name!r}'s max_length "
                                  f"({spec.max_length} tokens) even with the prompt cut away", too_long)
        tokens = sum(len(pair.input_ids) for pair in encoded)
        if tokens > self.config.max_request_tokens:
            raise ServeError(413, f"request has {tokens} tokens, over the limit of {self.config.max_request_tokens}")
        rewards = await self.batched_rewards(encoded)
        truncated = [i for i, pair in enumerate(encoded) if pair.truncated]
        return Scored([spec.normalize(r) for r in rewards] if normalize else rewards, tokens, normalize,
                      truncated=truncated, response_tokens=[pair.response_length for pair in encoded])

    async def batched_rewards(self, encoded: list[EncodedPair]) -> list[float]:
        """Rewards from the batcher, its failures and non-finite rewards turned into HTTP errors."""
        try:
            rewards = await self.batcher.submit(encoded)
        except BatcherClosed as err:
            raise ServeError(503, str(err)) from None
        except Exception as err:  # the forward pass failed (the batcher logged it and keeps serving)
            raise ServeError(500, f"model {self.name!r} failed: {err}") from None
        broken = [i for i, r in enumerate(rewards) if not math.isfinite(r)]
        if broken:
            raise ServeError(500, f"model {self.name!r} produced non-finite rewards for items {broken}", broken)
        return rewards

    def describe(self) -> dict:
        spec = self.spec
        return {"id": self.name, "kind": "model", "precision": self.precision, "fingerprint": spec.fingerprint(),
                "spec": spec.model_dump(),
                "max_length": spec.max_length, "long_pairs": spec.long_responses,
                "normalization": spec.normalization.model_dump() if spec.normalization else None}


class EnsembleScorer:
    """A `RewardEnsemble` served: its members' batched z-scores, combined by the ensemble; their spread is returned
    as the uncertainty."""

    def __init__(self, name: str, ensemble: RewardEnsemble, members: list[ModelScorer]) -> None:
        assert [m.rm for m in members] == ensemble.members, "one scorer per member, in order"
        self.name, self.ensemble, self.members, self.precision = name, ensemble, members, ensemble.precision
        self.markers = set().union(*(m.markers for m in members))
        self.end_tokens = set().union(*(m.end_tokens for m in members))

    async def score(self, prompts: Sequence, responses: Sequence, normalize: bool) -> Scored:
        scored = await asyncio.gather(*(m.score(prompts, responses, normalize=True) for m in self.members))
        rewards, spread = self.ensemble.combine([s.rewards for s in scored])
        truncated = sorted(set().union(*(s.truncated for s in scored)))
        return Scored(rewards, sum(s.tokens for s in scored), True, spread, truncated,
                      scored[0].response_tokens)  # counted as the first member counts them (`counting_model`)

    def describe(self) -> dict:
        return {"id": self.name, "kind": "ensemble", "precision": self.precision, "mode": self.ensemble.mode,
                "std_weight": self.ensemble.std_weight, "members": [m.describe() for m in self.members]}


@dataclass
class Service:
    """Everything the app owns: scorers, their batchers, metrics, and the ready/draining state."""

    scorers: dict[str, Scorer]
    batchers: list[Batcher]
    config: ServeConfig
    metrics: Metrics
    ready: bool = False
    draining: bool = False
    in_flight: int = 0
    warmup_error: str | None = None
    warned_templated: set[str] = field(default_factory=set)

    def status(self) -> str:
        if self.draining:
            return "draining"
        if self.warmup_error:
            return f"warm-up failed: {self.warmup_error}"
        return "ready" if self.ready else "warming up"

    def scorer(self, name: str | None) -> Scorer:
        if name is None:
            return next(iter(self.scorers.values()))
        if name not in self.scorers:
            raise ServeError(404, f"unknown model {name!r}; this server has {sorted(self.scorers)}")
        return self.scorers[name]

    async def warm_up(self) -> None:
        """One batch through every scorer, then ready; a failure keeps /health at 503 with the reason."""
        try:
            for scorer in self.scorers.values():
                await scorer.score(["Hello"], ["Hello!"], normalize=False)
            self.ready = True
        except Exception as err:
            logger.exception("warm-up failed")
            self.warmup_error = str(err)

    def check_size(self, prompts: Sequence, responses: Sequence) -> None:
        if len(prompts) > self.config.max_items:
            raise ServeError(413, f"request has {len(prompts)} items, over the limit of {self.config.max_items}")
        chars = sum(len(text) for item in (*prompts, *responses) for text in texts_of(item))
        if chars > self.config.max_request_chars:
            raise ServeError(413, f"request has {chars} characters, over the limit of {self.config.max_request_chars}")

    async def score(self, scorer: Scorer, prompts: Sequence, responses: Sequence, normalize: bool, route: str,
                    length_penalty: float = 0.0):
        """Size checks, scoring, the length penalty and templated-input warnings shared by both scoring routes."""
        self.check_size(prompts, responses)
        scored = await scorer.score(prompts, responses, normalize)
        if length_penalty:
            scored.rewards_raw = scored.rewards
            scored.rewards = penalize(scored.rewards, scored.response_tokens, length_penalty)
        templated = templated_warnings(prompts, responses, scorer.markers)
        if templated:
            self.metrics.inc("rewardkit_templated_items_total", len(templated), route=route)
            if route not in self.warned_templated:
                self.warned_templated.add(route)
                logger.warning("%s: %s (logged once per route)", route, templated[0])
        truncated = [f"item {i}: its response is longer than model {scorer.name!r}'s max_length: scored with its "
                     "tail cut" for i in scored.truncated]
        return scored, truncated + templated


def templated_warnings(prompts: Sequence, responses: Sequence, markers: set[str]) -> list[str]:
    warnings = []
    for i, item in enumerate(zip(prompts, responses, strict=True)):
        texts = texts_of(item[0]) + texts_of(item[1])
        found = sorted(m for m in markers if any(m in text for text in texts))
        if found:
            warnings.append(f"item {i} contains {found[0]!r}: it looks already templated; send raw prompts and "
                            "responses (the server applies the model's scoring spec)")
    return warnings


def create_app(models: Mapping[str, RewardModel], config: ServeConfig | None = None,
               ensembles: Mapping[str, RewardEnsemble] | None = None) -> FastAPI:
    """The ASGI app serving `models` and `ensembles` by name; the first name is the default model. Each ensemble
    combines with its own mode and std weight."""
    service = build_service(models, ensembles or {}, config or ServeConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for batcher in service.batchers:
            batcher.start()
        warm_up = asyncio.create_task(service.warm_up())
        yield
        warm_up.cancel()
        for batcher in service.batchers:
            await batcher.stop()

    app = FastAPI(title="rewardkit", lifespan=lifespan)
    app.router.route_class = StrictJSONRoute
    app.state.service = service
    app.add_exception_handler(ServeError, serve_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.middleware("http")(admission_and_metrics(service))
    add_routes(app, service)
    return app


async def serve_error_response(request: Request, err: ServeError) -> JSONResponse:
    return err.response()


def build_service(models: Mapping[str, RewardModel], ensembles: Mapping[str, RewardEnsemble],
                  config: ServeConfig) -> Service:
    """One ModelScorer (and batcher) per distinct RewardModel, shared by the ensembles that include it."""
    if not models and not ensembles:
        raise ConfigError("nothing to serve: give at least one model or ensemble")
    clashes = set(models) & set(ensembles)
    if clashes:
        raise ConfigError(f"names used for both a model and an ensemble: {sorted(clashes)}")
    metrics = Metrics()
    by_identity = {id(rm): ModelScorer(name, rm, config, metrics) for name, rm in models.items()}
    for name, ensemble in ensembles.items():
        for i, rm in enumerate(ensemble.members):
            if id(rm) not in by_identity:
                by_identity[id(rm)] = ModelScorer(f"{name}[{i}]", rm, config, metrics)
    scorers: dict[str, Scorer] = {name: by_identity[id(rm)] for name, rm in models.items()}
    for name, ensemble in ensembles.items():
        scorers[name] = EnsembleScorer(name, ensemble, [by_identity[id(rm)] for rm in ensemble.members])
    return Service(scorers, [s.batcher for s in by_identity.values()], config, metrics)


def body_limit(config: ServeConfig) -> int:
    """The most bytes a request body may hold."""
    return config.max_request_chars * BODY_BYTES_PER_CHAR


def admission_and_metrics(service: Service):
    """HTTP middleware: 503 while not ready or draining, 413 for oversized bodies, and request metrics."""
    limit = body_limit(service.config)

    async def middleware(request: Request, call_next):
        route = request.url.path if request.url.path in KNOWN_ROUTES else "other"
        started, status = time.perf_counter(), 500
        try:
            if route in SCORING_ROUTES and service.status() != "ready":
                response = ServeError(503, f"not accepting requests: {service.status()}").response()
            elif int(request.headers.get("content-length") or 0) > limit:
                response = ServeError(413, f"request body over {limit} bytes").response()
            else:
                request.scope[BODY_LIMIT_KEY] = limit  # a chunked body (no length) is capped while it is read
                service.in_flight += 1
                try:
                    response = await call_next(request)
                finally:
                    service.in_flight -= 1
            status = response.status_code
            return response
        finally:
            service.metrics.inc("rewardkit_requests_total", route=route, status=str(status))
            if status >= 400:
                service.metrics.inc("rewardkit_request_errors_total", route=route, status=str(status))
            service.metrics.observe("rewardkit_request_seconds", time.perf_counter() - started, SECONDS_BUCKETS,
                                    route=route)

    return middleware


def bearer_auth(config: ServeConfig):
    """A dependency that checks `Authorization: Bearer <key>` in constant time (a no-op without a key)."""
    expected = config.api_key.get_secret_value().encode() if config.api_key else None

    async def check(authorization: str | None = Header(None)) -> None:
        if expected is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise ServeError(401, "missing or wrong API key: send Authorization: Bearer <key>")

    return Depends(check)


def add_routes(app: FastAPI, service: Service) -> None:
    auth = [bearer_auth(service.config)]

    @app.post("/v1/score", dependencies=auth)
    async def score(body: ScoreRequest) -> dict:
        scorer = service.scorer(body.model)
        prompts, responses = item_pairs(body.items)
        penalty = service.config.length_penalty if body.length_penalty is None else body.length_penalty
        scored, warnings = await service.score(scorer, prompts, responses, body.normalize, "/v1/score", penalty)
        extra = {"uncertainty": scored.uncertainty} if scored.uncertainty is not None else {}
        if penalty:
            extra |= {"rewards_raw": scored.rewards_raw, "length_penalty": penalty,
                      "response_tokens": scored.response_tokens}
        return {"model": scorer.name, "precision": scorer.precision, "rewards": scored.rewards,
                "normalized": scored.normalized,
                "usage": {"tokens": scored.tokens}, "warnings": warnings} | extra

    @app.post("/get_reward", dependencies=auth)
    async def get_reward(body: RewardRequest, model: str | None = None) -> dict:
        scorer = service.scorer(model)
        prompts, responses = split_queries(body, scorer.end_tokens)
        penalty = service.config.length_penalty
        scored, _ = await service.score(scorer, prompts, responses, False, "/get_reward", penalty)
        extra_logs = {"uncertainty": scored.uncertainty} if scored.uncertainty is not None else {}
        if penalty:
            extra_logs |= {"rewards_raw": scored.rewards_raw, "response_tokens": scored.response_tokens}
        return {"rewards": scored.rewards, "scores": scored.rewards, "extra_logs": extra_logs}

    @app.get("/health")
    async def health() -> JSONResponse:
        status = service.status()
        return JSONResponse({"status": status, "models": list(service.scorers)},
                            status_code=200 if status == "ready" else 503)

    @app.get("/v1/models", dependencies=auth)
    async def models() -> dict:
        return {"default": next(iter(service.scorers)), "data": [s.describe() for s in service.scorers.values()]}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        gauges = {"rewardkit_ready": float(service.status() == "ready"), "rewardkit_in_flight": service.in_flight,
                  "rewardkit_queued_pairs": sum(b.queue.qsize() for b in service.batchers if b.queue)}
        return PlainTextResponse(service.metrics.render(gauges), media_type="text/plain; version=0.0.4")


def load_models(model_args: Sequence[str], ensemble_args: Sequence[str], *, ensemble_mode: EnsembleMode | None = None,
                std_weight: float | None = None, trust_remote_code: bool = False, precision: Precision = "fp32"
                ) -> tuple[dict[str, RewardModel], dict[str, RewardEnsemble]]:
    """`--model DIR | NAME=DIR` and `--ensemble NAME=DIR1,DIR2 | NAME=ENSEMBLE_DIR` into ({name: model},
    {name: ensemble}).

    A bare DIR is named after its folder; a directory used twice is loaded once. A trained ensemble directory
    combines with its saved mode and std weight, a list of directories with mean (k = 1); `ensemble_mode` and
    `std_weight` override both. Every model loads in `precision` (`rewardkit.precision`).
    """
    loaded: dict[Path, RewardModel] = {}

    def load(directory: str | Path) -> RewardModel:
        path = Path(directory).resolve()
        if path not in loaded:
            loaded[path] = RewardModel.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                       precision=precision).to(default_device())
            if loaded[path].spec.task == "process":
                raise ModelError(f"{directory} is a process reward model (step scores): the service scores whole "
                                 "responses; score steps offline with `rewardkit score`")
        return loaded[path]

    overrides = {key: value for key, value in (("mode", ensemble_mode), ("std_weight", std_weight))
                 if value is not None}
    models, ensembles = {}, {}
    for arg in model_args:
        name, _, directory = arg.partition("=") if "=" in arg else (Path(arg).name, "", arg)
        if name in models:
            raise ConfigError(f"two models are named {name!r}; name them with --model NAME=DIR")
        models[name] = load(directory)
    for arg in ensemble_args:
        name, _, directories = arg.partition("=")
        members = [d for d in directories.split(",") if d]
        if name and len(members) == 1 and is_ensemble(members[0]):  # a trained ensemble directory
            ensembles[name] = RewardEnsemble.from_pretrained(members[0], load_member=load, **overrides)
        elif name and len(members) >= 2:
            ensembles[name] = RewardEnsemble([load(d) for d in members], **overrides)
        else:
            raise ConfigError(f"--ensemble {arg!r}: expected NAME=DIR1,DIR2[,...] with at least two members, "
                             "or NAME=ENSEMBLE_DIR (from train --ensemble)")
    return models, ensembles


def run_server(app: FastAPI, config: ServeConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain: new requests get 503 while in-flight ones finish.

    uvicorn runs in a thread (so it leaves signals to us); a second signal stops at once.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, access_log=False,
                                           timeout_graceful_shutdown=config.drain_timeout_s))
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        if stop.is_set():
            server.force_exit = server.should_exit = True
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.run, name="uvicorn")
    thread.start()
    try:
        while thread.is_alive() and not stop.wait(0.2):
            pass
        if not server.started and not stop.is_set():
            raise ConfigError(f"the server could not start on {config.host}:{config.port} (see the log above)")
        drain(app.state.service, server, config.drain_timeout_s)
        thread.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def drain(service: Service, server: uvicorn.Server, timeout_s: float) -> None:
    """Refuse new scoring requests (503), wait up to `timeout_s` for in-flight ones, then stop the server."""
    service.draining = True
    deadline = time.monotonic() + timeout_s
    while service.in_flight and not server.should_exit and time.monotonic() < deadline:  # a 2nd signal ends it
        time.sleep(0.02)
    server.should_exit = True
