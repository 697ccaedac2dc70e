"""`rewardkit serve`: its limits are the fields of `ServeConfig`, with their descriptions, bounds and defaults."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any

import annotated_types
import torch
import typer
from pydantic import ValidationError

from rewardkit.cli.common import (
    EnsembleModeOption,
    LongPairsOption,
    PrecisionOption,
    StdWeightOption,
    console,
    quiet_transformers,
    refuse_ensemble_options,
    user_errors,
    warn,
)
from rewardkit.errors import ConfigError
from rewardkit.serving.app import create_app, load_models, run_server
from rewardkit.serving.requests import ServeConfig

FIELDS = ServeConfig.model_fields


def config_option(name: str, metavar: str = "N") -> Any:
    """The typer option of ServeConfig field `name`: its description and its `ge` / `le` bounds."""
    bounds = {}
    for rule in FIELDS[name].metadata:
        if isinstance(rule, annotated_types.Ge):
            bounds["min"] = rule.ge
        elif isinstance(rule, annotated_types.Le):
            bounds["max"] = rule.le
    return typer.Option(metavar=metavar, help=FIELDS[name].description, **bounds)


def serve_config(options: dict) -> ServeConfig:
    """The options as a ServeConfig; what it refuses is one ConfigError line naming each option (`--port: ...`)."""
    try:
        return ServeConfig(**options)
    except ValidationError as err:
        raise ConfigError("; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}"
                                    for e in err.errors())) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_exposure(config: ServeConfig, insecure: bool) -> None:
    """A non-loopback host needs an API key, or --insecure (then a warning)."""
    if config.api_key or is_loopback(config.host):
        return
    if not insecure:
        raise ConfigError(f"--host {config.host} is not a loopback address: require an API key with --api-key-env, "
                          "or pass --insecure to serve without one")
    warn(f"serving on {config.host} without an API key (--insecure): anyone who can reach port {config.port} can "
         "use it")


def api_key(variable: str | None) -> str | None:
    """The key in environment variable `variable` (None without one)."""
    if variable is None:
        return None
    if not os.environ.get(variable):
        raise ConfigError(f"--api-key-env {variable}: that environment variable is not set")
    return os.environ[variable]


@user_errors
def serve(
    model: Annotated[list[str] | None, typer.Option(metavar="[NAME=]DIR", help=(
        "Model directory, named after its folder, or NAME=DIR (repeatable); the first model served is the "
        "default."))] = None,
    ensemble: Annotated[list[str] | None, typer.Option(metavar="NAME=DIR[,DIR...]", help=(
        "Serve the members' combined z-scores: NAME=ENSEMBLE_DIR (from train --ensemble), or NAME=DIR1,DIR2,... "
        "(mean, k = 1 unless --ensemble-mode / --std-weight say otherwise; repeatable)."))] = None,
    ensemble_mode: EnsembleModeOption = None,
    std_weight: StdWeightOption = None,
    host: Annotated[str, config_option("host", metavar="ADDRESS")] = FIELDS["host"].default,
    port: Annotated[int, config_option("port", metavar="PORT")] = FIELDS["port"].default,
    api_key_env: Annotated[str | None, typer.Option(metavar="VARIABLE", help=(
        "Require 'Authorization: Bearer <key>', the key read from this environment variable (default: no "
        "key; then only a loopback --host is allowed, unless --insecure)."))] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Allow a non-loopback --host without an API key (a warning is printed).")] = False,
    max_batch_tokens: Annotated[int, config_option("max_batch_tokens")] = FIELDS["max_batch_tokens"].default,
    max_batch_size: Annotated[int, config_option("max_batch_size")] = FIELDS["max_batch_size"].default,
    max_wait_ms: Annotated[float, config_option("max_wait_ms", metavar="MS")] = FIELDS["max_wait_ms"].default,
    max_items: Annotated[int, config_option("max_items")] = FIELDS["max_items"].default,
    max_request_tokens: Annotated[int, config_option("max_request_tokens")] = FIELDS["max_request_tokens"].default,
    max_request_chars: Annotated[int, config_option("max_request_chars")] = FIELDS["max_request_chars"].default,
    max_length: Annotated[int | None, config_option("max_length")] = None,
    long_pairs: LongPairsOption = "drop",
    length_penalty: Annotated[float, config_option("length_penalty", metavar="L")] = FIELDS["length_penalty"].default,
    threads: Annotated[int | None, typer.Option(min=1, metavar="N", help=(
        "torch intra-op threads for forward passes (default: torch's choice); 1 is steadiest on a shared "
        "CPU."))] = None,
    trust_remote_code: Annotated[bool, typer.Option(
        "--trust-remote-code", help="Run modeling code shipped with a model (only for models you trust).")] = False,
    precision: PrecisionOption = "auto",
) -> None:
    """Serve reward models over HTTP.

    Routes: POST /v1/score, POST /get_reward (OpenRLHF), GET /health, /v1/models and /metrics (see
    rewardkit.serving.app).
    """
    refuse_ensemble_options(ensemble_mode, std_weight, has_ensemble=bool(ensemble), why_not="no --ensemble is served")
    config = serve_config({
        "host": host, "port": port, "api_key": api_key(api_key_env), "ensemble_mode": ensemble_mode,
        "std_weight": std_weight, "max_batch_tokens": max_batch_tokens, "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms, "max_items": max_items, "max_request_tokens": max_request_tokens,
        "max_request_chars": max_request_chars, "max_length": max_length, "long_pairs": long_pairs,
        "length_penalty": length_penalty})
    check_exposure(config, insecure)
    if threads:
        torch.set_num_threads(threads)  # before any forward thread starts: each takes the count on first use
    quiet_transformers()
    models, ensembles = load_models(model or [], ensemble or [], ensemble_mode=config.ensemble_mode,
                                    std_weight=config.std_weight, trust_remote_code=trust_remote_code,
                                    precision=precision)
    scoring_app = create_app(models, config, ensembles)
    precisions = sorted({m.precision for m in models.values()} | {e.precision for e in ensembles.values()})
    console.print(f"serving {', '.join([*models, *ensembles])} ({', '.join(precisions)}) on "
                  f"http://{config.host}:{config.port}"
                  f"{' (API key required)' if config.api_key else ''}"
                  f"{f', length penalty {config.length_penalty:g} per token' if config.length_penalty else ''}")
    run_server(scoring_app, config)
