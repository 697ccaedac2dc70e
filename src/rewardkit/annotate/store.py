"""The annotation database: one SQLite file in WAL mode; every write is its own committed transaction.

    items        id, key (random: what pages see, so an id cannot give a gold item away), prompt, response_1,
                 response_2 (JSON), subset, gold (a vote or NULL), rank (serving order)
    annotators   name, token_hash (sha256 of the token; the token itself is never stored)
    sessions     secret_hash, annotator, csrf: a browser login
    assignments  (annotator, item): swapped (the side randomization, drawn once and kept), served_at
    answers      every answer ever given; undo marks one undone_at instead of deleting it

An item goes to `overlap` annotators (gold items to everyone); an annotator who skips it frees its place. An
answer is accepted only for an item assigned to that annotator and not yet answered (a partial unique index), so
two annotators, or two tabs, never overwrite each other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rewardkit.annotate.formats import Item
from rewardkit.errors import ConfigError, DataError

CHOICES = ("a", "b", "tie", "cant_tell", "skip")  # a / b: the left / right side as shown

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, key TEXT NOT NULL UNIQUE, prompt TEXT NOT NULL, response_1 TEXT NOT NULL,
    response_2 TEXT NOT NULL, subset TEXT, gold INTEGER, rank REAL NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (name TEXT PRIMARY KEY, token_hash TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    secret_hash TEXT PRIMARY KEY, annotator TEXT NOT NULL REFERENCES annotators(name), csrf TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    annotator TEXT NOT NULL REFERENCES annotators(name), item_id TEXT NOT NULL REFERENCES items(id),
    swapped INTEGER NOT NULL, served_at REAL NOT NULL, PRIMARY KEY (annotator, item_id));
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, annotator TEXT NOT NULL, item_id TEXT NOT NULL, choice TEXT NOT NULL,
    strength INTEGER, comment TEXT NOT NULL, swapped INTEGER NOT NULL, seconds REAL NOT NULL,
    answered_at REAL NOT NULL, undone_at REAL,
    FOREIGN KEY (annotator, item_id) REFERENCES assignments(annotator, item_id));
CREATE UNIQUE INDEX IF NOT EXISTS one_answer ON answers(annotator, item_id) WHERE undone_at IS NULL;
"""


class AnswerRefused(Exception):
    """An answer the store will not take (not this annotator's item, or already answered)."""


@dataclass(frozen=True)
class Answer:
    """One kept answer; `vote` is in the item's orientation (1, 2, 0 = tie), None for can't tell and skip."""

    annotator: str
    item_id: str
    choice: str
    strength: int | None
    comment: str
    swapped: bool
    seconds: float

    @property
    def vote(self) -> int | None:
        if self.choice in ("a", "b"):
            left_won = self.choice == "a"
            return 1 if left_won != self.swapped else 2
        return 0 if self.choice == "tie" else None


@dataclass(frozen=True)
class Assigned:
    """An item as one annotator sees it: `left` and `right` after their stored side randomization."""

    item: Item
    swapped: bool
    key: str

    @property
    def left(self):
        return self.item.responses[int(self.swapped)]

    @property
    def right(self):
        return self.item.responses[1 - int(self.swapped)]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AnnotationStore:
    """The database at `path` (created on first use). Safe to share between threads; other processes may read and
    write the same file at the same time (SQLite's locking)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"--db {self.path} is a directory: give a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:
            raise DataError(f"{self.path}: not an annotation database ({error})") from error
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)  # idempotent; executescript commits on its own

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that takes the write lock at once (no lost update between its read and its write)."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def read(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, tuple(params)).fetchall()

    # ---- items ---------------------------------------------------------------------------------------------
    def add_items(self, items: Iterable[Item]) -> int:
        """Add the items not yet stored, after those stored; one already stored must not have changed. Returns
        how many were added."""
        added = 0
        with self.write() as db:
            (last,) = db.execute("SELECT COALESCE(MAX(rank), -1) FROM items").fetchone()
            for item in items:
                row = item_row(item)
                old = db.execute("SELECT prompt, response_1, response_2, gold FROM items WHERE id = ?",
                                 (item.id,)).fetchone()
                if old is not None:
                    if old != (row[1], row[2], row[3], row[5]):
                        raise DataError(f"item {item.id!r} is already in {self.path} with other texts or gold")
                    continue
                added += 1
                db.execute(f"INSERT INTO items (id, prompt, response_1, response_2, subset, gold, key, rank) "
                           f"VALUES ({', '.join('?' * 8)})", (*row, secrets.token_urlsafe(9), last + added))
        return added

    def spread_gold(self) -> None:
        """Place the gold items evenly among the others in the serving order."""
        with self.write() as db:
            gold = [r[0] for r in db.execute("SELECT id FROM items WHERE gold IS NOT NULL ORDER BY rank")]
            (others,) = db.execute("SELECT COUNT(*) FROM items WHERE gold IS NULL").fetchone()
            ranks = db.execute("SELECT rank FROM items WHERE gold IS NULL ORDER BY rank").fetchall()
            for k, item_id in enumerate(gold):
                at = (k + 1) * others // (len(gold) + 1)
                rank = ranks[at][0] - 0.5 if at < others else (ranks[-1][0] + 0.5 if ranks else k)
                db.execute("UPDATE items SET rank = ? WHERE id = ?", (rank, item_id))

    def set_order(self, item_ids: list[str]) -> None:
        """Serve the non-gold items in `item_ids`' order, in the places they held (the gold items keep theirs)."""
        with self.write() as db:
            ranks = sorted(db.execute(f"SELECT rank FROM items WHERE id IN ({','.join('?' * len(item_ids))})",
                                      item_ids).fetchall())
            for item_id, (rank,) in zip(item_ids, ranks, strict=True):
                db.execute("UPDATE items SET rank = ? WHERE id = ?", (rank, item_id))

    def items(self) -> list[Item]:
        return [row_item(row) for row in self.read(f"SELECT {ITEM_COLUMNS} FROM items i ORDER BY rank")]

    def item(self, item_id: str) -> Item:
        (row,) = self.read(f"SELECT {ITEM_COLUMNS} FROM items i WHERE id = ?", (item_id,))
        return row_item(row)

    def item_id(self, key: str) -> str | None:
        """The id of the item a page knows by `key`; None for an unknown key."""
        rows = self.read("SELECT id FROM items WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # ---- annotators and logins -----------------------------------------------------------------------------
    def add_annotator(self, name: str) -> str:
        """A new annotator; returns their token (only its hash is kept)."""
        if not name.strip() or len(name) > 64:
            raise ConfigError(f"annotator name {name!r}: give 1 to 64 characters")
        token = secrets.token_urlsafe(24)
        with self.write() as db:
            if db.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise ConfigError(f"annotator {name!r} already exists in {self.path}")
            db.execute("INSERT INTO annotators VALUES (?, ?, ?)", (name, digest(token), time.time()))
        return token

    def annotators(self) -> list[str]:
        return [r[0] for r in self.read("SELECT name FROM annotators ORDER BY created_at, name")]

    def annotator_for_token(self, token: str) -> str | None:
        """The token's annotator, every stored hash compared in constant time."""
        return matching(digest(token), self.read("SELECT token_hash, name FROM annotators"))

    def open_session(self, annotator: str) -> tuple[str, str]:
        """(session secret for the cookie, CSRF token for the page)."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.write() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (digest(secret), annotator, csrf, time.time()))
        return secret, csrf

    def session(self, secret: str) -> tuple[str, str] | None:
        """(annotator, csrf) of a session secret, or None."""
        rows = self.read("SELECT secret_hash, annotator, csrf FROM sessions")
        return matching(digest(secret), [(stored, (annotator, csrf)) for stored, annotator, csrf in rows])

    def close_session(self, secret: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM sessions WHERE secret_hash = ?", (digest(secret),))

    # ---- serving and answering -----------------------------------------------------------------------------
    def current(self, annotator: str, overlap: int) -> Assigned | None:
        """The annotator's item now: the one they were last shown and have not answered, else the first item in
        serving order that still needs annotators (assigned now, with its sides drawn at random); None when done."""
        with self.write() as db:
            row = db.execute(OPEN_ASSIGNMENT, (annotator,)).fetchone()
            if row is None:
                row = db.execute(NEXT_ITEM, (annotator, annotator, overlap)).fetchone()
                if row is None:
                    return None
                db.execute("INSERT INTO assignments VALUES (?, ?, ?, ?)",
                           (annotator, row[0], secrets.randbelow(2), time.time()))
                row = db.execute(OPEN_ASSIGNMENT, (annotator,)).fetchone()
        return Assigned(row_item(row[:6]), bool(row[6]), row[7])

    def answer(self, annotator: str, item_id: str, choice: str, strength: int | None = None,
               comment: str = "") -> None:
        """Record an answer to an item assigned to `annotator` and not yet answered, committed before returning."""
        if choice not in CHOICES:
            raise AnswerRefused(f"unknown choice {choice!r}; expected one of {list(CHOICES)}")
        if strength is not None and (choice not in ("a", "b") or strength not in (1, 2, 3)):
            raise AnswerRefused("a strength (1, 2 or 3) goes with choice a or b only")
        try:
            with self.write() as db:
                row = db.execute("SELECT swapped, served_at FROM assignments WHERE annotator = ? AND item_id = ?",
                                 (annotator, item_id)).fetchone()
                if row is None:
                    raise AnswerRefused(f"that item is not assigned to {annotator}")
                now = time.time()
                db.execute("INSERT INTO answers (annotator, item_id, choice, strength, comment, swapped, seconds, "
                           "answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (annotator, item_id, choice, strength, comment, row[0], max(0.0, now - row[1]), now))
        except sqlite3.IntegrityError:
            raise AnswerRefused(f"that item is already answered by {annotator}") from None

    def undo(self, annotator: str) -> str | None:
        """Withdraw the annotator's last answer (kept, marked undone); its item is shown to them again next.
        Returns its item id, None when there is nothing to undo."""
        with self.write() as db:
            row = db.execute("SELECT id, item_id FROM answers WHERE annotator = ? AND undone_at IS NULL "
                             "ORDER BY id DESC LIMIT 1", (annotator,)).fetchone()
            if row is None:
                return None
            now = time.time()
            db.execute("UPDATE answers SET undone_at = ? WHERE id = ?", (now, row[0]))
            db.execute("UPDATE assignments SET served_at = ? WHERE annotator = ? AND item_id = ?",
                       (now, annotator, row[1]))
        return row[1]

    def progress(self, annotator: str, overlap: int) -> dict[str, int]:
        """{"done": answers kept (skips included), "left": items still open to them}."""
        (done,) = self.read("SELECT COUNT(*) FROM answers WHERE annotator = ? AND undone_at IS NULL", (annotator,))[0]
        (left,) = self.read(f"SELECT COUNT(*) FROM ({OPEN_ITEMS})", (annotator, annotator, overlap))[0]
        (open_now,) = self.read(f"SELECT COUNT(*) FROM ({OPEN_ASSIGNMENTS})", (annotator,))[0]
        return {"done": done, "left": left + open_now}

    def answers(self) -> list[Answer]:
        """Every kept answer (undone ones left out), oldest first."""
        return [Answer(a, i, c, s, m, bool(w), t) for a, i, c, s, m, w, t in self.read(
            "SELECT annotator, item_id, choice, strength, comment, swapped, seconds FROM answers "
            "WHERE undone_at IS NULL ORDER BY id")]

    def answers_of(self, annotator: str) -> list[Answer]:
        return [a for a in self.answers() if a.annotator == annotator]


ITEM_COLUMNS = "i.id, i.prompt, i.response_1, i.response_2, i.subset, i.gold"  # an Item

# the items assigned to the annotator and not answered (more than one after an undo)
OPEN_ASSIGNMENTS = f"""
SELECT {ITEM_COLUMNS}, s.swapped, i.key FROM assignments s JOIN items i ON i.id = s.item_id
WHERE s.annotator = ? AND NOT EXISTS (
    SELECT 1 FROM answers x WHERE x.annotator = s.annotator AND x.item_id = s.item_id AND x.undone_at IS NULL)"""

OPEN_ASSIGNMENT = OPEN_ASSIGNMENTS + " ORDER BY s.served_at DESC LIMIT 1"  # the one shown last

# items not yet assigned to the annotator that need more annotators: gold items, or fewer than `overlap` takers
# (an annotator who skipped an item does not take it)
OPEN_ITEMS = f"""
SELECT {ITEM_COLUMNS} FROM items i
WHERE NOT EXISTS (SELECT 1 FROM assignments s WHERE s.item_id = i.id AND s.annotator = ?)
AND (i.gold IS NOT NULL OR (
    SELECT COUNT(*) FROM assignments s WHERE s.item_id = i.id AND s.annotator != ? AND NOT EXISTS (
        SELECT 1 FROM answers x WHERE x.annotator = s.annotator AND x.item_id = i.id AND x.choice = 'skip'
        AND x.undone_at IS NULL)) < ?)
ORDER BY i.rank"""

NEXT_ITEM = OPEN_ITEMS + " LIMIT 1"


def matching(hashed: str, rows: Iterable[tuple[str, object]]):
    """The value stored with `hashed`, comparing with every stored hash in constant time."""
    found = None
    for stored, value in rows:
        if hmac.compare_digest(stored, hashed):
            found = value
    return found


def item_row(item: Item) -> tuple:
    first, second = item.responses
    return item.id, as_json(item.prompt), as_json(first), as_json(second), item.subset, item.gold


def as_json(text) -> str:
    return json.dumps(text, ensure_ascii=False)


def row_item(row: tuple) -> Item:
    item_id, prompt, first, second, subset, gold = row
    return Item(item_id, json.loads(prompt), (json.loads(first), json.loads(second)), subset, gold)
