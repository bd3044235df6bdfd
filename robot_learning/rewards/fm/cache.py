"""Persistent answer cache (sqlite): a run replays offline with identical answers, hence identical rewards.

Keyed by the canonical request (model, messages with images by content hash, answer-shaping parameters).
Every answer is stored with its request (images in their own table, deduplicated) so a person can inspect
what was asked and what came back: ``manip-stack reward cache show``. Transport failures are never cached;
invalid answers are (the repair turn that follows is a request of its own and is cached too).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_learning.rewards.fm.messages import CanonicalRequest, canonical_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_unix_s REAL NOT NULL,
    request_json TEXT NOT NULL,
    content TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    mime TEXT NOT NULL,
    data BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class CachedAnswer:
    key: str
    model: str
    profile: str
    created_unix_s: float
    request: dict[str, Any]
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


class ResponseCache:
    """Thread-safe sqlite cache; one file per experiment (or shared: keys never collide across models)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, model, profile, created_unix_s, request_json, content, finish_reason, prompt_tokens, "
                "completion_tokens, latency_ms FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else _answer(row)

    def put(self, request: CanonicalRequest, profile: str, content: str, finish_reason: str | None,
            prompt_tokens: int, completion_tokens: int, latency_ms: float) -> str:
        key = request.key()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for digest, (mime, data) in request.images.items():
                    self._db.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?)", (digest, mime, data))
                self._db.execute(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, request.body["model"], profile, time.time(), canonical_json(request.body), content,
                     finish_reason, prompt_tokens, completion_tokens, latency_ms))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return key

    def entries(self, limit: int = 50) -> list[CachedAnswer]:
        """Most recent answers first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, model, profile, created_unix_s, request_json, content, finish_reason, prompt_tokens, "
                "completion_tokens, latency_ms FROM answers ORDER BY created_unix_s DESC LIMIT ?", (limit,)).fetchall()
        return [_answer(r) for r in rows]

    def image(self, digest: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT mime, data FROM images WHERE sha256 = ?", (digest,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _answer(row: tuple) -> CachedAnswer:
    return CachedAnswer(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7], row[8], row[9])
