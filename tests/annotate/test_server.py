"""The real server: answers survive SIGKILL, annotators resume after a restart, concurrent annotators over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx

from annotate.helpers import app_for, bearer, items, pair_records, write_jsonl
from conftest import running_server
from rewardkit.annotate.store import AnnotationStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_process(db, data, port: int):
    """`rewardkit annotate serve` as its own process; yields it once /health answers."""
    command = [sys.executable, "-m", "rewardkit.cli", "annotate", "serve", "--db", str(db), "--data", str(data),
               "--port", str(port), "--overlap", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_process(process, f"http://127.0.0.1:{port}")
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


def wait_for_process(process: subprocess.Popen, url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.05)


def test_sigkill_loses_no_submitted_answer_and_the_annotator_resumes(tmp_path):
    db, data = tmp_path / "round.sqlite", write_jsonl(tmp_path / "pairs.jsonl", pair_records(12))
    store = AnnotationStore(db)
    token = store.add_annotator("ana")
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    submitted = []
    with serve_process(db, data, port) as process:
        with httpx.Client(base_url=url) as browser:
            csrf = browser.post("/api/login", json={"token": token}).json()["csrf"]
            state = browser.post("/api/next", json={}, headers={"X-CSRF-Token": csrf}).json()
            for k in range(7):
                body = {"item": state["item"]["key"], "choice": ["a", "b", "tie"][k % 3], "comment": f"c{k}"}
                response = browser.post("/api/answer", json=body, headers={"X-CSRF-Token": csrf})
                assert response.status_code == 200
                submitted.append((body["item"], body["choice"], body["comment"]))
                state = response.json()
            cookies = dict(browser.cookies)
        os.kill(process.pid, signal.SIGKILL)  # no shutdown, no flush: only what was committed survives
        process.wait(10)
        assert process.returncode == -signal.SIGKILL
    shown_before = state["item"]
    with serve_process(db, data, port):
        with httpx.Client(base_url=url, cookies=cookies) as browser:
            page = browser.get("/")  # the session survived the restart too
            assert page.status_code == 200 and "ana" in page.text
            resumed = browser.post("/api/next", json={}, headers={"X-CSRF-Token": csrf}).json()
    assert resumed["item"] == shown_before  # the same item, the same sides
    assert resumed["progress"]["done"] == 7
    store = AnnotationStore(db)
    assert [(a.item_id, a.choice, a.comment) for a in store.answers()] == [
        (store.item_id(key), choice, comment) for key, choice, comment in submitted]
    assert len(AnnotationStore(db).items()) == 12  # the data read again added nothing


def test_annotators_answering_at_once_over_http_never_overwrite(tmp_path):
    store = AnnotationStore(tmp_path / "round.sqlite")
    store.add_items(items(30))
    tokens = [store.add_annotator(f"u{k}") for k in range(3)]
    errors, done = [], {}

    def annotate(url: str, token: str) -> None:
        with httpx.Client(base_url=url, headers=bearer(token)) as client:
            count, state = 0, client.post("/api/next", json={}).json()
            while state["item"] is not None:
                response = client.post("/api/answer", json={"item": state["item"]["key"], "choice": "a"})
                if response.status_code != 200:
                    errors.append(response.text)
                    return
                count, state = count + 1, response.json()
            done[token] = count

    with running_server(app_for(store, overlap=2)) as (url, _):
        threads = [threading.Thread(target=annotate, args=(url, token)) for token in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors and sum(done.values()) == 60  # 30 items x overlap 2
    per_item = {}
    for answer in store.answers():
        per_item.setdefault(answer.item_id, []).append(answer.annotator)
    assert len(per_item) == 30 and all(len(set(who)) == len(who) == 2 for who in per_item.values())
