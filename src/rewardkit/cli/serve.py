"""`rewardkit serve`."""

from __future__ import annotations

import os
from typing import Annotated

import torch
import typer
from pydantic import ValidationError

from rewardkit.cli.common import console, quiet_transformers, user_errors
from rewardkit.errors import ConfigError
from rewardkit.serving.app import ServeConfig, create_app, load_models, run_server


def serve_config(options: dict) -> ServeConfig:
    """The options given as a ServeConfig; a value it refuses is a ConfigError naming the option."""
    try:
        return ServeConfig(**options)
    except ValidationError as err:
        problems = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid serve options: {problems}") from None


@user_errors
def serve(
    model: Annotated[list[str] | None, typer.Option(
        help="Model directory, or NAME=DIR (repeatable); the first is the default.")] = None,
    ensemble: Annotated[list[str] | None, typer.Option(
        help="NAME=DIR1,DIR2,... or NAME=ENSEMBLE_DIR: serve the members' combined z-scores (repeatable).")] = None,
    ensemble_mode: Annotated[str | None, typer.Option(help=(
        "Ensembles: mean, min or mean-minus-std (default: the mode saved with the ensemble; mean for a list)."
    ))] = None,
    std_weight: Annotated[float | None, typer.Option(
        help="Ensembles: k in mean - k * std (default: the saved one; 1 for a list).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (loopback by default).")] = None,
    port: int | None = None,
    api_key_env: Annotated[str | None, typer.Option(
        help="Require 'Authorization: Bearer <key>', the key read from this environment variable.")] = None,
    max_batch_tokens: Annotated[int | None, typer.Option(help="Padded tokens per forward pass.")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Pairs per forward pass (1: no batching).")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(
        help="How long a queued pair waits for others to join its batch.")] = None,
    max_items: Annotated[int | None, typer.Option(help="Pairs per request.")] = None,
    max_request_tokens: Annotated[int | None, typer.Option(help="Tokens per request.")] = None,
    max_request_chars: Annotated[int | None, typer.Option(help="Characters per request.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help=(
        "torch intra-op threads for forward passes (torch.set_num_threads); 1 is steadiest on a shared CPU."))] = None,
    trust_remote_code: bool = False,
) -> None:
    """Serve reward models over HTTP: POST /v1/score, POST /get_reward (OpenRLHF), /health, /v1/models, /metrics.

    Options left out take the defaults of rewardkit.serving.app.ServeConfig.
    """
    options = {"host": host, "port": port, "ensemble_mode": ensemble_mode, "std_weight": std_weight,
               "max_batch_tokens": max_batch_tokens, "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms,
               "max_items": max_items, "max_request_tokens": max_request_tokens,
               "max_request_chars": max_request_chars}
    if api_key_env:
        if not os.environ.get(api_key_env):
            raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set")
        options["api_key"] = os.environ[api_key_env]
    config = serve_config({k: v for k, v in options.items() if v is not None})
    if threads:
        torch.set_num_threads(threads)  # before any forward thread starts: each takes the count on first use
    quiet_transformers()
    models, ensembles = load_models(model or [], ensemble or [], ensemble_mode=config.ensemble_mode,
                                    std_weight=config.std_weight, trust_remote_code=trust_remote_code)
    scoring_app = create_app(models, config, ensembles)
    console.print(f"serving {', '.join([*models, *ensembles])} on http://{config.host}:{config.port}"
                  f"{' (API key required)' if config.api_key else ''}")
    run_server(scoring_app, config)
