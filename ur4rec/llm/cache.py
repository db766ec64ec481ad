"""SQLite cache of LLM answers: one row per (model, kind, prompt version, prompt text) key.

The file is in WAL mode and every result is written in its own short ``BEGIN IMMEDIATE`` transaction,
so an interrupted run keeps everything already generated and several runs may share one file. A
successful answer is never overwritten by a later failure. No credentials are ever stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

OK = "ok"
FAILED = "failed"
ANSWERED, CLAIMED, OURS = "answered", "claimed", "ours"  # what claim() found

_CLAIMS = """
CREATE TABLE IF NOT EXISTS llm_claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL
)
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    raw_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    text TEXT,
    error TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""

_UPSERT = """
INSERT INTO llm_cache (key, kind, raw_id, model, prompt_version, prompt_sha256, status, text, error,
                       prompt_tokens, completion_tokens, total_tokens, attempts, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    status = excluded.status, text = excluded.text, error = excluded.error,
    prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
    total_tokens = excluded.total_tokens, attempts = llm_cache.attempts + 1, updated_at = excluded.updated_at
WHERE llm_cache.status != 'ok'
"""


def prompt_sha256(system: str, prompt: str) -> str:
    return hashlib.sha256(json.dumps([system, prompt]).encode("utf-8")).hexdigest()


def cache_key(model: str, kind: str, prompt_version: str, system: str, prompt: str) -> str:
    """Key over the model name, the kind, the prompt version and the prompt texts."""
    payload = json.dumps([model, kind, prompt_version, prompt_sha256(system, prompt)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str
    raw_id: int
    model: str
    prompt_version: str
    prompt_sha256: str


def retry_while_locked(fn, timeout: float, first_delay: float = 0.01):
    """``fn()``, retried with growing pauses (up to 0.5 s) while SQLite reports the database locked or busy,
    for at most ``timeout`` seconds; any other error, or the last one after the timeout, is raised."""
    deadline, delay = time.monotonic() + timeout, first_delay
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as err:
            message = str(err).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.5)


class LLMCache:
    """Thread-safe handle on the cache file (one connection, guarded by a lock)."""

    def __init__(self, path: str | Path, busy_timeout: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        # Switching to WAL needs an exclusive lock; when two runs open a new file at once, SQLite may answer
        # "database is locked" at once rather than wait (lock-upgrade deadlock avoidance), so retry.
        retry_while_locked(lambda: (self._conn.execute("PRAGMA journal_mode=WAL"), self._conn.execute(_SCHEMA),
                                    self._conn.execute(_CLAIMS)), busy_timeout)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "LLMCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ok_texts(self, keys: list[str]) -> dict[str, str]:
        """Key -> text for the given keys whose status is ok."""
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, text FROM llm_cache WHERE status = 'ok' AND key IN ({marks})", chunk
                ).fetchall()
                found.update(rows)
        return found

    def _write(self, entry: Entry, status: str, text: str | None, error: str | None, usage: dict | None) -> None:
        usage = usage or {}
        now = time.time()
        params = (entry.key, entry.kind, entry.raw_id, entry.model, entry.prompt_version, entry.prompt_sha256,
                  status, text, error, usage.get("prompt_tokens"), usage.get("completion_tokens"),
                  usage.get("total_tokens"), now, now)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(_UPSERT, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def put_ok(self, entry: Entry, text: str, usage: dict | None = None) -> None:
        self._write(entry, OK, text, None, usage)

    def put_failed(self, entry: Entry, error: str, usage: dict | None = None) -> None:
        """Record a failure (kept out of the outputs, retried next run); never replaces an ok row."""
        self._write(entry, FAILED, None, error, usage)

    def claim(self, key: str, owner: str, stale_after: float) -> str:
        """Take the right to ask ``key``'s prompt, so two runs sharing the cache never both pay for it:
        ``ANSWERED`` when an ok answer is cached, ``CLAIMED`` while another run's claim younger than
        ``stale_after`` seconds holds it, else ``OURS`` (the claim now names ``owner``; :meth:`release` it)."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute("SELECT 1 FROM llm_cache WHERE key = ? AND status = 'ok'", (key,)).fetchone():
                    state = ANSWERED
                else:
                    held = self._conn.execute("SELECT owner, claimed_at FROM llm_claims WHERE key = ?", (key,)).fetchone()
                    state = CLAIMED if held and held[0] != owner and now - held[1] < stale_after else OURS
                    if state == OURS:
                        self._conn.execute("INSERT OR REPLACE INTO llm_claims VALUES (?, ?, ?)", (key, owner, now))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return state

    def release(self, key: str, owner: str) -> None:
        """Drop ``owner``'s claim on ``key`` (its answer, or failure, is written)."""
        with self._lock:
            self._conn.execute("DELETE FROM llm_claims WHERE key = ? AND owner = ?", (key, owner))

    def status(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT status FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
