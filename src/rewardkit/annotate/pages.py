"""The app's pages: plain HTML, CSS and JavaScript, no build step. Untrusted text never goes into the HTML: the
server escapes what it puts there (`html.escape`), and the script writes prompts and responses with textContent."""

from __future__ import annotations

import html

DEFAULT_GUIDELINES = """# Guidelines

Read the prompt, then both responses. Pick the response that serves the person who wrote the prompt better:

- **Correct** first: a wrong answer loses to a right one, however well written.
- Then **helpful**: does it do what was asked, completely, without padding?
- Then **safe and honest**: no harm, no made-up facts, says when it does not know.

Length is not quality: a short right answer beats a long one with the same content.
The sides are shuffled for every item; do not read anything into which side a response is on.

Choose **tie** when both are equally good (or equally bad), **can't tell** when you cannot judge (a subject you
do not know, a broken item), and **skip** to leave the item to someone else.
"""

KEYS = [("A or ←", "A is better"), ("B or →", "B is better"), ("T", "tie"), ("C", "can't tell"),
        ("1 / 2 / 3", "slightly / clearly / much better"), ("Enter", "save and next"), ("S", "skip"),
        ("U", "undo last"), ("G", "guidelines"), ("/", "comment (Esc leaves it)")]

STYLE = """
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1.2em; background: #1d2330; color: #fff; }
header a { color: #cfe0ff; } header .grow { flex: 1; }
main { max-width: 1200px; margin: 0 auto; padding: 1em 1.2em; }
.card { background: #fff; border-radius: 8px; padding: 1em 1.2em; margin-bottom: 1em;
        box-shadow: 0 1px 3px rgba(0,0,0,.12); }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.side h2, h2.label { margin: 0 0 .4em; font-size: 1.05em; }
.side.picked { outline: 3px solid #2f6fde; }
.turn { margin: .3em 0; } .role { font-size: .75em; text-transform: uppercase; color: #6b7280; }
.content { white-space: pre-wrap; word-wrap: break-word; }
.controls { display: flex; flex-wrap: wrap; gap: .5em; align-items: center; }
button { font: inherit; padding: .35em .9em; border-radius: 6px; border: 1px solid #9aa3b2; background: #fff;
         cursor: pointer; }
button.on { background: #2f6fde; color: #fff; border-color: #2f6fde; }
textarea { width: 100%; font: inherit; min-height: 3em; margin-top: .6em; }
.keys { color: #4b5563; font-size: .85em; } kbd { border: 1px solid #9aa3b2; border-radius: 4px; padding: 0 .3em;
        background: #fff; font-size: .9em; }
#status { min-height: 1.4em; color: #2f6fde; } #status.error { color: #b91c1c; }
.guidelines { max-width: 780px; }
"""

SCRIPT = r"""
"use strict";
const csrf = document.querySelector('meta[name="csrf"]').content;
let current = null, choice = null, strength = null, busy = false;
const $ = (id) => document.getElementById(id);

async function post(path, body) {
  const r = await fetch(path, {method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
                               headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
  const data = await r.json();
  if (!r.ok) throw new Error(data.detail || r.statusText);
  return data;
}

function turns(element, list) {
  element.replaceChildren();
  for (const t of list) {
    const turn = document.createElement("div"), role = document.createElement("div");
    const content = document.createElement("div");
    turn.className = "turn"; role.className = "role"; content.className = "content";
    role.textContent = t.role; content.textContent = t.content;
    if (t.role) turn.append(role);
    turn.append(content); element.append(turn);
  }
}

function status(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

function show(state) {
  current = state.item; choice = null; strength = null;
  $("progress").textContent = `${state.progress.done} done · ${state.progress.left} to go`;
  $("comment").value = "";
  $("item").hidden = !current; $("done").hidden = !!current;
  if (current) {
    $("item").dataset.key = current.key;
    turns($("prompt"), current.prompt); turns($("left"), current.left); turns($("right"), current.right);
  }
  mark();
}

function mark() {
  for (const b of document.querySelectorAll("[data-choice]")) b.classList.toggle("on", b.dataset.choice === choice);
  for (const b of document.querySelectorAll("[data-strength]"))
    b.classList.toggle("on", Number(b.dataset.strength) === strength);
  $("side-a").classList.toggle("picked", choice === "a"); $("side-b").classList.toggle("picked", choice === "b");
}

async function act(path, body, message) {
  if (busy) return;
  busy = true;
  try { show(await post(path, body)); status(message); }
  catch (e) { status(e.message, true); }
  finally { busy = false; }
}

function submit(kind) {
  if (!current) return;
  if (kind !== "skip" && !choice) { status("pick A, B, tie or can't tell first", true); return; }
  const picked = kind === "skip" ? "skip" : choice;
  act("/api/answer", {item: current.key, choice: picked, comment: $("comment").value,
                      strength: (picked === "a" || picked === "b") ? strength : null},
      picked === "skip" ? "skipped" : "saved");
}

function pick(c) { if (current) { choice = c; if (c !== "a" && c !== "b") strength = null; mark(); } }

document.addEventListener("keydown", (e) => {
  if (e.target === $("comment")) { if (e.key === "Escape") $("comment").blur(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  const keys = {a: () => pick("a"), arrowleft: () => pick("a"), b: () => pick("b"), arrowright: () => pick("b"),
                t: () => pick("tie"), c: () => pick("cant_tell"), enter: () => submit("answer"),
                s: () => submit("skip"), u: () => act("/api/undo", {}, "undone: answer it again"),
                g: () => { location.href = "/guidelines"; }, "/": () => $("comment").focus()};
  if (["1", "2", "3"].includes(k)) { if (choice === "a" || choice === "b") { strength = Number(k); mark(); } }
  else if (keys[k]) keys[k]();
  else return;
  e.preventDefault();
});
for (const b of document.querySelectorAll("[data-choice]")) b.addEventListener("click", () => pick(b.dataset.choice));
for (const b of document.querySelectorAll("[data-strength]")) b.addEventListener("click", () => {
  if (choice === "a" || choice === "b") { strength = Number(b.dataset.strength); mark(); } });
$("save").addEventListener("click", () => submit("answer"));
$("skip").addEventListener("click", () => submit("skip"));
$("undo").addEventListener("click", () => act("/api/undo", {}, "undone: answer it again"));
$("logout").addEventListener("click", async () => { await post("/api/logout"); location.href = "/login"; });
act("/api/next", {}, "");
"""

LOGIN_SCRIPT = r"""
"use strict";
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/api/login", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token: document.getElementById("token").value.trim()})});
  if (r.ok) location.href = "/guidelines";
  else document.getElementById("status").textContent = "unknown token";
});
"""


def page(title: str, body: str, *, csrf: str = "", script: str = "") -> str:
    """A whole page; `body` is trusted markup built here from escaped parts."""
    tags = f'<script src="/static/{script}" defer></script>' if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="csrf" content="{html.escape(csrf)}"><link rel="stylesheet" href="/static/style.css">'
            f"{tags}</head><body>{body}</body></html>")


def header(annotator: str | None, *, logout: bool = False) -> str:
    """The top bar: the annotator's name, and a log-out button on the page whose script handles it."""
    button = ' <button id="logout" type="button">log out</button>' if logout else ""
    who = f"<span>{html.escape(annotator)}</span>{button}" if annotator else ""
    return (f'<header><strong>rewardkit annotate</strong><a href="/">items</a><a href="/guidelines">guidelines</a>'
            f'<span class="grow"></span><span id="progress"></span>{who}</header>')


def keys_help() -> str:
    return " · ".join(f"<kbd>{html.escape(key)}</kbd> {html.escape(what)}" for key, what in KEYS)


def main_page(annotator: str, csrf: str) -> str:
    choices = "".join(f'<button type="button" data-choice="{c}">{label}</button>' for c, label in
                      [("a", "A is better"), ("b", "B is better"), ("tie", "tie"), ("cant_tell", "can't tell")])
    strengths = "".join(f'<button type="button" data-strength="{n}">{label}</button>' for n, label in
                        [(1, "slightly"), (2, "clearly"), (3, "much")])
    body = f"""{header(annotator, logout=True)}<main>
<div id="done" class="card" hidden><h2>All done</h2><p>No items are waiting for you. Thank you!
 (<kbd>U</kbd> undoes your last answer.)</p></div>
<div id="item" hidden>
<div class="card"><h2 class="label">Prompt</h2><div id="prompt"></div></div>
<div class="sides"><div class="card side" id="side-a"><h2>A</h2><div id="left"></div></div>
<div class="card side" id="side-b"><h2>B</h2><div id="right"></div></div></div>
<div class="card"><div class="controls">{choices}<span>strength:</span>{strengths}
<button type="button" id="save">save &amp; next</button><button type="button" id="skip">skip</button>
<button type="button" id="undo">undo last</button></div>
<textarea id="comment" placeholder="optional comment"></textarea></div>
</div>
<p id="status"></p><p class="keys">{keys_help()}</p></main>"""
    return page("rewardkit annotate", body, csrf=csrf, script="app.js")


def guidelines_page(rendered: str, annotator: str | None) -> str:
    start = '<p><a href="/">Start annotating →</a></p>' if annotator else '<p><a href="/login">Log in</a></p>'
    body = f'{header(annotator)}<main><div class="card guidelines">{rendered}{start}</div></main>'
    return page("Guidelines · rewardkit annotate", body)


def login_page() -> str:
    body = f"""{header(None)}<main><div class="card guidelines"><h1>Log in</h1>
<form id="login"><p><label>Your token <input id="token" type="password" autocomplete="off" size="40"></label>
<button type="submit">log in</button></p></form><p id="status"></p>
<p>Ask whoever runs this round for a token (<code>rewardkit annotate add-user</code>).</p></div></main>"""
    return page("Log in · rewardkit annotate", body, script="login.js")
