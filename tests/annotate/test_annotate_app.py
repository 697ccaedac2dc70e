"""The app over an in-process client: login, CSRF and cross-site refusals, isolation between annotators."""

from __future__ import annotations

from annotate.helpers import XSS, app_for, bearer, run_async, store_fixture  # noqa: F401  (the store fixture)
from conftest import asgi_client
from rewardkit.annotate.formats import Item
from rewardkit.annotate.markdown import render_markdown
from rewardkit.annotate.store import AnnotationStore


async def login(client, token: str) -> str:
    response = await client.post("/api/login", json={"token": token})
    assert response.status_code == 200, response.text
    return response.json()["csrf"]


@run_async
async def test_login_sets_a_strict_httponly_cookie_and_the_page_carries_the_csrf_token(store):
    token = store.add_annotator("ana")
    async with asgi_client(app_for(store)) as client:
        assert (await client.get("/", follow_redirects=False)).headers["location"] == "/login"
        response = await client.post("/api/login", json={"token": token})
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = await client.get("/")
        assert response.json()["csrf"] in page.text and "ana" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (await client.post("/api/login", json={"token": "nope"})).status_code == 401


@run_async
async def test_a_cookie_without_its_csrf_token_cannot_change_anything(store):
    token = store.add_annotator("ana")
    async with asgi_client(app_for(store)) as client:
        csrf = await login(client, token)
        assert (await client.post("/api/next", json={})).status_code == 401
        assert (await client.post("/api/next", json={}, headers={"X-CSRF-Token": csrf + "x"})).status_code == 401
        state = (await client.post("/api/next", json={}, headers={"X-CSRF-Token": csrf})).json()
        assert store.item_id(state["item"]["key"]) == "p0" and state["progress"] == {"done": 0, "left": 6}
    assert store.read("SELECT COUNT(*) FROM assignments") == [(1,)]


@run_async
async def test_cross_site_and_form_posts_are_refused_before_they_run(store):
    token = store.add_annotator("ana")
    async with asgi_client(app_for(store)) as client:
        form = await client.post("/api/next", content="x=1", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        foreign = await client.post("/api/next", json={}, headers={**bearer(token), "Origin": "https://evil.test"})
        assert foreign.status_code == 403
        cross = await client.post("/api/next", json={}, headers={**bearer(token), "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        same = await client.post("/api/next", json={}, headers={**bearer(token), "Origin": "http://test"})
        assert same.status_code == 200
        assert (await client.get("/api/next")).status_code == 405  # no state change by GET


@run_async
async def test_answers_need_the_annotators_own_item_and_stay_private(store):
    ana, bo = store.add_annotator("ana"), store.add_annotator("bo")
    async with asgi_client(app_for(store)) as client:
        item = (await client.post("/api/next", json={}, headers=bearer(ana))).json()["item"]
        answered = await client.post("/api/answer", headers=bearer(ana),
                                     json={"item": item["key"], "choice": "a", "strength": 2, "comment": "ok"})
        assert answered.status_code == 200 and answered.json()["progress"]["done"] == 1
        stolen = await client.post("/api/answer", headers=bearer(bo), json={"item": item["key"], "choice": "b"})
        assert stolen.status_code == 409
        again = await client.post("/api/answer", headers=bearer(ana), json={"item": item["key"], "choice": "b"})
        assert again.status_code == 409
        bad = await client.post("/api/answer", headers=bearer(ana), json={"item": item["key"], "choice": "maybe"})
        assert bad.status_code == 422
        theirs = (await client.post("/api/next", json={}, headers=bearer(bo))).json()
        # p0 is ana's answer, p1 was handed to ana with the reply: bo gets neither (overlap 1)
        assert store.item_id(theirs["item"]["key"]) == "p2" and theirs["progress"] == {"done": 0, "left": 4}
        assert "ok" not in str(theirs)
    assert [(a.annotator, a.choice) for a in store.answers()] == [("ana", "a")]


@run_async
async def test_undo_returns_the_last_item(store):
    token = store.add_annotator("ana")
    async with asgi_client(app_for(store)) as client:
        first = (await client.post("/api/next", json={}, headers=bearer(token))).json()["item"]
        await client.post("/api/answer", headers=bearer(token), json={"item": first["key"], "choice": "tie"})
        undone = (await client.post("/api/undo", json={}, headers=bearer(token))).json()
        assert undone["undone"] is True and undone["item"] == first


@run_async
async def test_pages_know_items_by_a_random_key_that_does_not_give_gold_away(tmp_path):
    store = AnnotationStore(tmp_path / "r.sqlite")
    store.add_items([Item("gold-secret-7", "2 + 2?", ("4", "5"), gold=1)])
    token = store.add_annotator("ana")
    async with asgi_client(app_for(store)) as client:
        state = (await client.post("/api/next", json={}, headers=bearer(token)))
        assert "gold" not in state.text and store.item_id(state.json()["item"]["key"]) == "gold-secret-7"
        done = await client.post("/api/answer", headers=bearer(token), json={"item": "gold-secret-7", "choice": "a"})
        assert done.status_code == 409  # the id itself is not accepted


@run_async
async def test_guidelines_are_rendered_escaped(store):
    guidelines = "# Be *kind*\n\n" + "\n\n".join(XSS) + "\n\n- use `code`\n- **bold**"
    async with asgi_client(app_for(store, guidelines=guidelines)) as client:
        page = (await client.get("/guidelines")).text
    assert "<h1>Be <em>kind</em></h1>" in page and "<li>use <code>code</code></li>" in page
    assert "<script>window" not in page and "<img" not in page and "<svg" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page


def test_markdown_subset():
    assert render_markdown("a\nb\n\n- x\n- y\n\n## T") == "<p>a b</p>\n<ul><li>x</li><li>y</li></ul>\n<h2>T</h2>"
    assert render_markdown('[x](javascript:alert(1)) "q"') == '<p>[x](javascript:alert(1)) &quot;q&quot;</p>'
