"""The annotation service: `create_app(store, guidelines=..., overlap=K)`, pages and a small JSON API.

    GET  /  /guidelines  /login  /static/{app.js,login.js,style.css}  /health     pages (no state changes)
    POST /api/login {token}         sets the session cookie (HttpOnly, SameSite=Strict)
    POST /api/next                  the annotator's current item (assigning one changes state: POST)
    POST /api/answer {item, choice, strength, comment}   committed before the reply; replies with the next item
    POST /api/undo                  withdraws the last answer; replies with that item again
    POST /api/logout

Every POST must be JSON (`Content-Type: application/json`, which a cross-site form cannot send) from this origin
when the browser says where it comes from, and carry either `Authorization: Bearer TOKEN` or the session cookie
with its `X-CSRF-Token`. An annotator only ever gets their own item and progress back, never others' answers; a
page knows an item by its random key, never by its id (which could tell a gold item).
"""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from rewardkit.annotate.markdown import render_markdown
from rewardkit.annotate.pages import LOGIN_SCRIPT, SCRIPT, STYLE, guidelines_page, login_page, main_page
from rewardkit.annotate.store import AnnotationStore, AnswerRefused, Assigned

COOKIE = "rk_annotate"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"app.js": (SCRIPT, "text/javascript"), "login.js": (LOGIN_SCRIPT, "text/javascript"),
          "style.css": (STYLE, "text/css")}


class Login(BaseModel):
    token: str = Field(max_length=200)


class AnswerBody(BaseModel):
    item: str = Field(max_length=100, description="The item's key, as /api/next gave it.")
    choice: Literal["a", "b", "tie", "cant_tell", "skip"]
    strength: Literal[1, 2, 3] | None = None
    comment: str = Field("", max_length=10_000)


def turns(text) -> list[dict]:
    """A prompt or response as [{role, content}] for the page: plain text is one turn without a role."""
    return [{"role": "", "content": text}] if isinstance(text, str) else text


def item_view(assigned: Assigned | None) -> dict | None:
    if assigned is None:
        return None
    return {"key": assigned.key, "prompt": turns(assigned.item.prompt), "left": turns(assigned.left),
            "right": turns(assigned.right)}


def create_app(store: AnnotationStore, *, guidelines: str, overlap: int = 1) -> FastAPI:
    """The app over `store`; `guidelines` is Markdown; each item goes to `overlap` annotators."""
    app = FastAPI(title="rewardkit annotate", docs_url=None, redoc_url=None, openapi_url=None)
    rendered = render_markdown(guidelines)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method == "POST":
            refusal = cross_site_refusal(request)
            if refusal:
                return JSONResponse({"detail": refusal[1]}, status_code=refusal[0])
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def session_of(request: Request) -> tuple[str, str] | None:
        secret = request.cookies.get(COOKIE)
        return store.session(secret) if secret else None

    def writer(request: Request) -> str:
        """The annotator making a state-changing request: bearer token, or session cookie plus CSRF token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            annotator = store.annotator_for_token(token)
        else:
            session = session_of(request)
            sent = request.headers.get("x-csrf-token", "")
            annotator = session[0] if session and hmac.compare_digest(session[1], sent) else None
        if annotator is None:
            raise HTTPException(401, "log in: a valid token or session with its CSRF token is needed")
        return annotator

    def state(annotator: str) -> dict:
        return {"item": item_view(store.current(annotator, overlap)), "progress": store.progress(annotator, overlap)}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        text, media_type = STATIC[name]
        return Response(text, media_type=media_type)

    @app.get("/", response_model=None)
    def index(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        return HTMLResponse(main_page(*session))

    @app.get("/guidelines")
    def guidelines_view(request: Request) -> HTMLResponse:
        session = session_of(request)
        return HTMLResponse(guidelines_page(rendered, session[0] if session else None))

    @app.get("/login")
    def login_view() -> HTMLResponse:
        return HTMLResponse(login_page())

    @app.post("/api/login")
    def login(body: Login) -> JSONResponse:
        annotator = store.annotator_for_token(body.token)
        if annotator is None:
            raise HTTPException(401, "unknown token")
        secret, csrf = store.open_session(annotator)
        response = JSONResponse({"annotator": annotator, "csrf": csrf})
        response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/")
        return response

    @app.post("/api/logout")
    def logout(request: Request, annotator: str = Depends(writer)) -> JSONResponse:
        store.close_session(request.cookies.get(COOKIE, ""))
        response = JSONResponse({"annotator": annotator, "logged_out": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.post("/api/next")
    def next_item(annotator: str = Depends(writer)) -> dict:
        return state(annotator)

    @app.post("/api/answer")
    def answer(body: AnswerBody, annotator: str = Depends(writer)) -> dict:
        try:
            store.answer(annotator, store.item_id(body.item) or "", body.choice, body.strength, body.comment)
        except AnswerRefused as error:
            raise HTTPException(409, str(error)) from None
        return state(annotator)

    @app.post("/api/undo")
    def undo(annotator: str = Depends(writer)) -> dict:
        undone = store.undo(annotator)
        return state(annotator) | {"undone": undone is not None}

    return app


def cross_site_refusal(request: Request) -> tuple[int, str] | None:
    """(status, why) for a POST refused before it runs: not JSON (415), or sent from another site (403); None when
    it may go on."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return 415, "state-changing requests must be JSON (Content-Type: application/json)"
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        return 403, f"cross-origin request from {origin} refused"
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        return 403, f"cross-site request refused (Sec-Fetch-Site: {request.headers['sec-fetch-site']})"
    return None
