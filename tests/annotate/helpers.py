"""Helpers for the annotation tests: small pair files and items, the `store` fixture, XSS payloads, the app."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest

from rewardkit.annotate.app import create_app
from rewardkit.annotate.formats import Item
from rewardkit.annotate.store import AnnotationStore

XSS = ['<script>window.__pwned = 1</script>', '<img src=x onerror="window.__pwned = 2">',
       '"><svg onload="window.__pwned = 3">']


def pair_records(n: int) -> list[dict]:
    return [{"id": f"p{i}", "prompt": f"question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
            for i in range(n)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def items(n: int) -> list[Item]:
    return [Item(f"p{i}", f"question {i}?", (f"good answer {i}", f"bad answer {i}")) for i in range(n)]


def app_for(store: AnnotationStore, overlap: int = 1, guidelines: str = "# Rules\n\nBe **fair**."):
    return create_app(store, guidelines=guidelines, overlap=overlap)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def run_async(test):
    """Run an async test function (with its fixtures) on a fresh event loop."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture(name="store")
def store_fixture(tmp_path) -> AnnotationStore:
    """A fresh annotation database holding six items."""
    db = AnnotationStore(tmp_path / "round.sqlite")
    db.add_items(items(6))
    yield db
    db.close()
