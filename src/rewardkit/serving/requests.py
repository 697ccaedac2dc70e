"""What the scoring service accepts: its settings (`ServeConfig`), the request bodies of /v1/score and
/get_reward, their strict JSON reading and validation, and `ServeError`, the HTTP error every route answers with."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from rewardkit.data.sources import STRICT_JSON
from rewardkit.errors import DataError
from rewardkit.models.ensemble import EnsembleMode
from rewardkit.models.spec import LongResponses
from rewardkit.scoring.files import prompt_and_response


class ServeConfig(BaseModel):
    """Where the service listens, how it batches, and the limits a request must stay within."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    host: str = Field("127.0.0.1", description="Interface to bind; loopback unless you mean to expose it.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free port).")
    api_key: SecretStr | None = Field(None, description="When set, scoring routes need `Authorization: Bearer <key>`.")
    max_batch_tokens: int = Field(16384, ge=1, description="Padded tokens (rows x longest row) per forward pass.")
    max_batch_size: int = Field(256, ge=1, description="Pairs per forward pass; 1 serves one pair at a time.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long the first queued pair waits for others to join it.")
    max_items: int = Field(1024, ge=1, description="Pairs per request.")
    max_request_chars: int = Field(4_000_000, ge=1, description="Characters of text per request.")
    max_request_tokens: int = Field(262_144, ge=1, description="Tokens per request, after rendering.")
    ensemble_mode: EnsembleMode | None = Field(None, description=(
        "Ensembles loaded by `load_models`: mean, min or mean-minus-std instead of the saved mode (a NAME=DIR1,DIR2 "
        "list has none saved: mean)."))
    std_weight: float | None = Field(None, description=(
        "Ensembles loaded by `load_models`: k in mean - k * std instead of the saved one (a list's default: 1)."))
    drain_timeout_s: float = Field(30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish.")
    max_length: int | None = Field(None, ge=1, description=(
        "Tokens per pair instead of each model's saved max_length, up to its backbone's position limit."))
    long_pairs: LongResponses = Field("drop", description=(
        "A response alone over max_length: drop (a 413 naming the items) or truncate (score it with its tail cut, "
        "with a warning)."))
    length_penalty: float = Field(0.0, ge=0, description=(
        "Serve reward - L * the response's tokens (as the model tokenizes it): the default of /v1/score and what "
        "/get_reward applies."))


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="A served model or ensemble; the first one when left out.")
    items: list[dict[str, Any]] = Field(min_length=1, description=(
        "{prompt, response} or {messages}, each checked by `item_pairs`."))
    normalize: bool = Field(False, description="Z-score with the model's normalization (ensembles always are).")
    length_penalty: float | None = Field(None, ge=0, description=(
        "Subtract this times each response's tokens from its reward (after normalizing); the server's when left "
        "out."))


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward model request; `labels` (for rule-based rewards) are accepted and unused."""

    model_config = ConfigDict(extra="ignore")
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list | None = None


class ServeError(Exception):
    """A request that cannot be scored: an HTTP status, a message, and the offending items when known."""

    def __init__(self, status: int, detail: str, items: list[int] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.items = status, detail, items

    def response(self) -> JSONResponse:
        body = {"detail": self.detail} | ({"items": self.items} if self.items else {})
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def item_pairs(items: Sequence[dict]) -> tuple[list, list]:
    """The prompts and responses of /v1/score items, as `RewardModel.score` takes them (text or message dicts).

    Each item is checked as `rewardkit score` checks a record (`prompt_and_response`); an item also refuses fields
    that are not its own. The first bad item is a 422 naming it."""
    prompts, responses = [], []
    for i, item in enumerate(items):
        where = f"items[{i}]"
        unexpected = sorted(set(item) - ({"messages"} if "messages" in item else {"prompt", "response"}))
        if unexpected:
            raise ServeError(422, f"{where}: unexpected fields {unexpected} (an item is prompt + response, or "
                                  "messages)", [i])
        try:
            prompt, response = prompt_and_response(where, item)
        except DataError as err:
            raise ServeError(422, str(err), [i]) from None
        prompts.append(prompt)
        responses.append(response)
    return prompts, responses


def split_queries(request: RewardRequest, end_tokens: set[str]) -> tuple[list[str], list[str]]:
    """OpenRLHF sends each sample as one rendered string (`query` = prompt + response) and, optionally, `prompts`.

    With `prompts`, the response is what follows the prompt's first occurrence in the query (leading padding is
    skipped); without them, the whole query is scored as the response to an empty prompt. Padding and EOS strings
    of the reward model's tokenizer are trimmed from the response ends: the spec adds the model's own end tokens.
    """
    ends = "|".join(re.escape(t) for t in sorted(end_tokens, key=len, reverse=True))

    def trim(text: str) -> str:
        return re.sub(rf"^(?:{ends})+|(?:{ends})+$", "", text) if ends else text

    if request.prompts is None:
        return [""] * len(request.query), [trim(q) for q in request.query]
    if len(request.prompts) != len(request.query):
        raise ServeError(422, f"{len(request.prompts)} prompts for {len(request.query)} queries")
    responses = []
    for i, (query, prompt) in enumerate(zip(request.query, request.prompts, strict=True)):
        start = query.find(prompt)
        if start < 0:
            raise ServeError(422, f"query {i} does not contain its prompt", [i])
        responses.append(trim(query[start + len(prompt):]))
    return list(request.prompts), responses


async def validation_error_response(request: Request, err: RequestValidationError) -> JSONResponse:
    """A 422 naming each problem's place (`items[0]: ...`) without the values sent (FastAPI's own handler echoes
    them, and fails with a 500 on a value JSON cannot encode)."""
    return ServeError(422, "; ".join(map(describe_problem, err.errors()))).response()


def describe_problem(error: dict) -> str:
    """One of pydantic's errors as `items[0].prompt: Input should be ...`, or the body's JSON error."""
    if error["type"] == "json_invalid":
        return f"invalid JSON body: {error['ctx']['error']}"
    place = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"][1:]).lstrip(".")
    return f"{place or error['loc'][0]}: {error['msg']}"


BODY_LIMIT_KEY = "rewardkit.body_limit"  # in the ASGI scope: the most bytes a body may hold (set by the service)


class StrictJSONRequest(Request):
    """A request whose JSON body is read as data files are (`STRICT_JSON`): NaN, Infinity, a float out of range or
    a key given twice is invalid JSON, not a value Python's json module would let through. A body is read up to
    the scope's `BODY_LIMIT_KEY` bytes, so one sent in chunks without a Content-Length is capped too (a 413)."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limit, chunks, size = self.scope.get(BODY_LIMIT_KEY), [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if limit is not None and size > limit:
                    raise HTTPException(413, f"request body over {limit} bytes")  # FastAPI answers it as JSON
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = STRICT_JSON.decode(body.decode("utf-8"))
            except (DataError, UnicodeDecodeError) as err:  # FastAPI answers a JSONDecodeError with a 422
                raise json.JSONDecodeError(str(err), "", 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route that reads its body as a `StrictJSONRequest`: what that refuses is a 422, like any invalid JSON."""

    def get_route_handler(self):
        handle = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handle(StrictJSONRequest(request.scope, request.receive))

        return strict


def texts_of(item: str | list[dict]) -> list[str]:
    return [item] if isinstance(item, str) else [m["content"] for m in item]
