"""The app as a person uses it, in headless Chromium (Playwright driving Debian's /usr/bin/chromium).

Two annotators log in with their tokens, read the guidelines, answer with the keyboard, undo, reload mid-way; the
export matches what was pressed. A second test feeds HTML/JS payloads as prompts and responses and checks that the
page shows them as text and runs none of them.

Set REWARDKIT_ANNOTATE_SCREENSHOT=PATH to also save the main page's screenshot there (docs/images/annotate.png).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotate.helpers import XSS, app_for, write_jsonl
from conftest import running_server
from rewardkit.annotate.formats import Item
from rewardkit.annotate.rounds import add_items_from
from rewardkit.annotate.store import AnnotationStore
from rewardkit.cli.app import app
from rewardkit.data.records import majority

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python (pip install "
                                     "playwright; no browser download: it drives /usr/bin/chromium)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
GUIDELINES = "# Round 1 guidelines\n\nPrefer the **correct** answer.\n\n- ties are fine\n- skip what you cannot read"
TOPICS = ["tea", "rain", "maps", "cats", "dogs", "bread", "snow", "bikes", "moss", "kites"]


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def round_pairs() -> list[dict]:
    return [{"id": f"q{k}", "prompt": f"Tell me one fact about {topic}.",
             "chosen": f"A correct, useful fact about {topic}.", "rejected": f"Something vague about {topic}..."}
            for k, topic in enumerate(TOPICS)]


def gold_pairs() -> list[dict]:
    return [{"id": "gold-1", "prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
            {"id": "gold-2", "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome"}]


def log_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/")
    assert page.url.endswith("/login")
    page.fill("#token", token)
    page.press("#token", "Enter")
    page.wait_for_url(f"{url}/guidelines")
    assert page.locator("h1").inner_text() == "Round 1 guidelines"
    assert page.locator("strong", has_text="correct").count() == 1
    page.click("text=Start annotating")
    page.wait_for_selector("#item:not([hidden])")


def shown(page, store: AnnotationStore) -> tuple[str, str, str]:
    """(item id, left text, right text) once an item is on the page (which knows it by its key only)."""
    page.wait_for_selector("#item:not([hidden])")
    key = page.locator("#item").get_attribute("data-key")
    return (store.item_id(key), page.locator("#left .content").inner_text(),
            page.locator("#right .content").inner_text())


def press(page, *keys: str) -> None:
    """Press the keys, the last one (Enter or S) saving: wait until the page shows another item or is done."""
    before = page.locator("#progress").inner_text()
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function("(before) => document.getElementById('progress').textContent !== before", arg=before)


def vote_for(choice: str, left: str, right: str) -> int | None:
    """The vote in the item's orientation (response 1 = the pair's chosen = the correct one) of a pressed side."""
    if choice in ("tie", "cant_tell"):
        return 0 if choice == "tie" else None
    picked = left if choice == "a" else right
    return 1 if picked.startswith(("A correct", "4", "Paris")) else 2


def annotate(page, store: AnnotationStore, name: str, plan, votes: dict, screenshot: Path | None = None) -> None:
    """Answer every item with the keyboard: `plan(k, good_side)` gives the keys for the k-th item (a/b/t/c and
    an optional strength); the votes pressed are recorded in `votes[(name, item)]`."""
    k = 0
    while page.locator("#done").is_hidden():
        item_id, left, right = shown(page, store)
        good = "a" if vote_for("a", left, right) == 1 else "b"
        keys = plan(k, good)
        choice = {"a": "a", "b": "b", "t": "tie", "c": "cant_tell", "ArrowLeft": "a", "ArrowRight": "b"}[keys[0]]
        if screenshot is not None and k == 2:  # a plain item, its choice and strength picked, not yet saved
            for key in keys:
                page.keyboard.press(key)
            page.fill("#comment", "Both are short; A states an actual fact.")
            page.screenshot(path=str(screenshot), full_page=True)
            press(page, "Escape", "Enter")  # Esc leaves the comment box, Enter saves
        else:
            press(page, *keys, "Enter")
        votes[name, item_id] = vote_for(choice, left, right)
        k += 1


def test_two_annotators_label_a_round_with_the_keyboard_and_the_export_matches(browser, tmp_path, capsys):
    store = AnnotationStore(tmp_path / "round.sqlite")
    add_items_from(store, write_jsonl(tmp_path / "pairs.jsonl", round_pairs()),
                   gold=write_jsonl(tmp_path / "gold.jsonl", gold_pairs()))
    tokens = {name: store.add_annotator(name) for name in ("ana", "bo")}
    votes: dict[tuple[str, str], int | None] = {}
    screenshot = Path(os.environ.get("REWARDKIT_ANNOTATE_SCREENSHOT", tmp_path / "annotate.png"))
    with running_server(app_for(store, overlap=2, guidelines=GUIDELINES)) as (url, _):
        page = browser.new_page(viewport={"width": 1200, "height": 560})
        log_in(page, url, tokens["ana"])
        assert "Enter" in page.locator(".keys").inner_text() and "undo last" in page.locator(".keys").inner_text()

        # ana: the good side with a strength on the first two items; the second is undone and answered as a tie
        first, left, right = shown(page, store)
        good = "a" if vote_for("a", left, right) == 1 else "b"
        press(page, good, "3", "Enter")
        votes["ana", first] = 1
        second, left, right = shown(page, store)
        press(page, "ArrowLeft" if vote_for("a", left, right) == 1 else "ArrowRight", "Enter")
        press(page, "u")
        assert shown(page, store) == (second, left, right)  # the same item, the same sides
        press(page, "t", "Enter")
        votes["ana", second] = 0
        page.reload()  # mid-way: the page comes back at the item it was on
        current = shown(page, store)
        page.reload()
        assert shown(page, store) == current
        annotate(page, store, "ana", lambda k, good: [good, "2"], votes, screenshot=screenshot)
        assert "12 done · 0 to go" in page.locator("#progress").inner_text()
        assert "Both are short; A states an actual fact." in [a.comment for a in store.answers_of("ana")]

        # bo, in another browser profile: the good side except on q3 and q4, can't tell on gold-2, skips q5
        other = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        log_in(other, url, tokens["bo"])
        skipped = None
        while other.locator("#done").is_hidden():
            item_id, left, right = shown(other, store)
            good = "a" if vote_for("a", left, right) == 1 else "b"
            if item_id == "q5":
                press(other, "s")
                skipped = item_id
                continue
            choice = {"q3": "b" if good == "a" else "a", "q4": "b" if good == "a" else "a",
                      "gold-2": "c"}.get(item_id, good)
            press(other, {"a": "a", "b": "b", "c": "c"}[choice], "Enter")
            votes["bo", item_id] = vote_for({"c": "cant_tell"}.get(choice, choice), left, right)
        assert skipped == "q5"
        other.click("#logout")
        other.wait_for_url(f"{url}/login")
        other.goto(f"{url}/")
        assert other.url.endswith("/login")  # the session is gone

    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:4] == b"\x89PNG"
    runner = CliRunner()
    out = tmp_path / "export.jsonl"
    assert runner.invoke(app, ["annotate", "export", "--db", str(store.path), "--output", str(out)]).exit_code == 0
    exported = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    expected = {}
    for item in store.items():
        if item.gold is not None:
            continue
        pressed = [v for (_, item_id), v in sorted(votes.items()) if item_id == item.id and v is not None]
        winner, _ = majority(pressed)
        if winner is not None:
            expected[item.id] = (winner, Counter(pressed))
    assert set(exported) == set(expected)
    for item_id, (winner, pressed) in expected.items():
        record, item = exported[item_id], store.item(item_id)
        assert record["chosen"] == item.responses[0 if winner in (0, 1) else 1]
        assert record.get("tie", False) == (winner == 0)
        flipped = Counter({(0, 2, 1)[v]: n for v, n in pressed.items()}) if winner == 2 else pressed
        assert Counter(record["votes"]) == flipped
    assert exported[first]["preference_strength"] == 3 and exported["q5"]["votes"] == [1]

    stats = runner.invoke(app, ["annotate", "stats", "--db", str(store.path)])
    assert stats.exit_code == 0 and "Cohen's kappa ana / bo" in stats.stdout
    with capsys.disabled():
        print("\n" + stats.stdout)  # the README's measured output (pytest -s not needed)


def test_html_and_script_in_items_are_shown_as_text_and_never_run(browser, tmp_path):
    store = AnnotationStore(tmp_path / "round.sqlite")
    store.add_items([Item(f"x{k}", payload, (payload, f"plain {k}")) for k, payload in enumerate(XSS)]
                    + [Item("msgs", [{"role": "user", "content": XSS[1]}], ([{"role": "assistant",
                                                                              "content": XSS[0]}], "ok"))])
    token = store.add_annotator('<img src=x onerror="window.__pwned=9">')
    guidelines = "# Rules\n\n" + "\n\n".join(XSS)
    with running_server(app_for(store, guidelines=guidelines)) as (url, _):
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{url}/login")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_url(f"{url}/guidelines")
        assert XSS[0] in page.locator(".guidelines").inner_text()
        page.goto(f"{url}/")
        for payload in [*XSS, XSS[1]]:
            item_id, left, right = shown(page, store)
            assert any(payload in text for text in (page.locator("#prompt").inner_text(), left, right))
            assert page.evaluate("window.__pwned") is None
            assert page.locator("#item img, #item svg, #item script").count() == 0
            press(page, "t", "Enter")
        assert page.evaluate("window.__pwned") is None and not errors
        assert 'onerror="window.__pwned=9"' in page.locator("header").inner_text()  # the name, as text
