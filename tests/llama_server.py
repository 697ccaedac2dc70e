"""llama.cpp's OpenAI-compatible server on loopback, for tests that need a real endpoint.

    from llama_server import llama_server, llama_server_fixture

    llama_url = llama_server_fixture()          # a module-scoped fixture: the base URL, http://127.0.0.1:PORT/v1

    def test_something(llama_url): ...

    with llama_server() as url: ...             # the same as a context manager

It runs `python -m llama_cpp.server --model <the bundled SmolLM2-135M-Instruct GGUF> --host 127.0.0.1 --port <free>`
(with weight repacking off: `SERVER_WITHOUT_REPACKING`) in a subprocess, waits until GET /v1/models answers, and
stops it afterwards. Tests using it are skipped, with the reason, where llama_cpp (llama-cpp-python[server]) or the
bundled GGUF is not installed. The served model's name is `LLAMA_MODEL`.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

LLAMA_MODEL = "smollm2"  # the alias the server answers to

# `python -m llama_cpp.server` with llama.cpp's runtime weight repacking ("extra buffer types") off: with it, the
# server built here (0.3.36) dies of SIGSEGV on its first completion of the Q4_1 GGUF on a Xeon with AMX, and the
# server has no option for it. Repacking only speeds up matmuls; the completions are the same model's.
SERVER_WITHOUT_REPACKING = """
import sys
import llama_cpp.llama as llama
from llama_cpp.server.__main__ import main

default_params = llama.llama_cpp.llama_model_default_params

def params_without_repacking():
    params = default_params()
    params.use_extra_bufts = False
    return params

llama.llama_cpp.llama_model_default_params = params_without_repacking
sys.argv[0] = "llama_cpp.server"
main()
"""


def bundled_gguf() -> Path:
    """The bundled SmolLM2-135M-Instruct GGUF; skips the test where its package is not installed."""
    from rewardkit.errors import ModelError
    from rewardkit.models.backbones import resolve_backbone

    try:
        directory, name = resolve_backbone("smollm2-135m")
    except ModelError as err:
        pytest.skip(f"no bundled SmolLM2 GGUF: {err}")
    return Path(directory) / name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def llama_server(model: Path | None = None, *, timeout_s: float = 120, n_ctx: int = 2048) -> Iterator[str]:
    """llama.cpp's server for `model` (default: the bundled GGUF) on a free loopback port; yields the base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not installed: pip install 'llama-cpp-python[server]' to test against llama.cpp")
    model = model or bundled_gguf()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-c", SERVER_WITHOUT_REPACKING, "--model", str(model), "--model_alias", LLAMA_MODEL,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_models(url, process, log, timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_models(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    """Until GET /v1/models answers 200; the server's exit or a timeout fails the test with its log's tail."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace")[-3000:]
            state = f"exited with {process.returncode}" if process.poll() is not None else f"not up in {timeout_s} s"
            pytest.fail(f"llama.cpp server {state}:\n{tail}")
        time.sleep(0.2)


def llama_server_fixture(scope: str = "module", **options):
    """A pytest fixture (assign it to a module-level name) yielding a running server's base URL."""

    @pytest.fixture(scope=scope)
    def running_llama_server() -> Iterator[str]:
        with llama_server(**options) as url:
            yield url

    return running_llama_server
