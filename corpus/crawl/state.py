"""The crawl's memory in SQLite: every URL seen (the seen-set and the frontier in one table),
each request made, each host's address and robots.txt, and the WARC files with how many of their
bytes are committed. One transaction per finished request, so a killed crawl resumes exactly."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS urls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT UNIQUE NOT NULL,
    host TEXT,                       -- host[:port], the politeness unit
    kind TEXT NOT NULL,              -- page | sitemap
    depth INTEGER NOT NULL,
    state TEXT NOT NULL,             -- pending | stored | redirected | sitemap | failed | skipped
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    redirects INTEGER NOT NULL DEFAULT 0,
    chain TEXT,                      -- JSON list of the URLs that redirected here
    via TEXT,                        -- the page that linked here, or the URL that redirected here
    reason TEXT,
    detail TEXT,
    status INTEGER,
    content_type TEXT,
    charset TEXT,
    bytes INTEGER,
    warc_file TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS urls_state ON urls (state);
CREATE TABLE IF NOT EXISTS fetches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    purpose TEXT NOT NULL,           -- page | sitemap | robots
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    seconds REAL,
    status INTEGER,
    wire_bytes INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,           -- ok | retry | failed reason
    detail TEXT
);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    ip TEXT,
    refused_reason TEXT,
    refused_detail TEXT,
    robots_status INTEGER,
    robots_txt TEXT,
    robots_note TEXT
);
CREATE TABLE IF NOT EXISTS warc_files (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,             -- open | closed
    committed_bytes INTEGER NOT NULL DEFAULT 0,
    records INTEGER NOT NULL DEFAULT 0
);
"""


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class CrawlState:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def commit(self) -> None:
        self.db.commit()

    # ---- meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ---- urls
    def seen_urls(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT url FROM urls")}

    def add_url(self, url: str, host: str | None, kind: str, depth: int, *, state: str = "pending", via: str | None = None,
                reason: str | None = None, detail: str | None = None, redirects: int = 0,
                chain: list[str] | None = None) -> int | None:  # fmt: skip
        cur = self.db.execute(
            "INSERT OR IGNORE INTO urls (url, host, kind, depth, state, via, reason, detail, redirects, chain, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (url, host, kind, depth, state, via, reason, detail, redirects, json.dumps(chain or []),
             None if state == "pending" else now_iso()),
        )  # fmt: skip
        return cur.lastrowid if cur.rowcount else None

    def pending(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM urls WHERE state = 'pending' ORDER BY depth, id").fetchall()

    def finish_url(self, url_id: int, state: str, **fields) -> None:
        fields["state"] = state
        fields["finished_at"] = now_iso()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE urls SET {sets} WHERE id = ?", (*fields.values(), url_id))

    def retry_later(self, url_id: int, attempts: int, not_before_epoch: float) -> None:
        self.db.execute("UPDATE urls SET attempts = ?, not_before = ? WHERE id = ?", (attempts, not_before_epoch, url_id))

    def count(self, state: str, kind: str | None = None) -> int:
        if kind:
            return self.db.execute("SELECT COUNT(*) FROM urls WHERE state = ? AND kind = ?", (state, kind)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM urls WHERE state = ?", (state,)).fetchone()[0]

    def wire_bytes(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(wire_bytes), 0) FROM fetches").fetchone()[0]

    # ---- fetches
    def log_fetch(self, url: str, host: str, purpose: str, attempt: int, seconds: float | None, status: int | None,
                  wire_bytes: int, outcome: str, detail: str | None = None) -> None:  # fmt: skip
        self.db.execute(
            "INSERT INTO fetches (url, host, purpose, attempt, at, seconds, status, wire_bytes, outcome, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (url, host, purpose, attempt, now_iso(), None if seconds is None else round(seconds, 4), status, wire_bytes,
             outcome, detail),
        )  # fmt: skip

    # ---- hosts
    def host(self, host: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM hosts WHERE host = ?", (host,)).fetchone()

    def save_host(self, host: str, **fields) -> None:
        cols = ["host", *fields]
        self.db.execute(
            f"INSERT OR REPLACE INTO hosts ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", (host, *fields.values())
        )

    # ---- WARC files
    def warc_files(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM warc_files ORDER BY name").fetchall()

    def warc_opened(self, name: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO warc_files (name, state, committed_bytes, records) VALUES (?, 'open', 0, 0)", (name,))

    def warc_committed(self, name: str, committed_bytes: int, added_records: int) -> None:
        self.db.execute(
            "UPDATE warc_files SET committed_bytes = ?, records = records + ? WHERE name = ?", (committed_bytes, added_records, name)
        )

    def warc_closed(self, name: str) -> None:
        self.db.execute("UPDATE warc_files SET state = 'closed' WHERE name = ?", (name,))

    def warc_removed(self, name: str) -> None:
        self.db.execute("DELETE FROM warc_files WHERE name = ?", (name,))
