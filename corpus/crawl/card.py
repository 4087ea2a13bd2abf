"""The crawl folder's card: card.json (statistics, skipped URLs with reasons, WARC files) and
README.md for people, plus crawl_log.jsonl with every request and every URL's outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.cards import LIMITATIONS_HEADING
from corpus.crawl.warc import WARC_DIR
from corpus.document import CARD_README, file_sha256
from corpus.outputs import card_header, seal_card

if TYPE_CHECKING:
    from corpus.crawl.crawler import Crawler

CRAWL_LOG = "crawl_log.jsonl"
LISTED_IN_CARD = 1000  # skipped and failed URLs listed in card.json; all of them are in crawl_log.jsonl


def _rows(db, sql: str, *args) -> list[dict]:
    return [dict(r) for r in db.execute(sql, args)]


def _counts(db, sql: str) -> dict:
    """{key: count} from a query selecting two columns."""
    return {str(k) if isinstance(k, int) else k: v for k, v in db.execute(sql).fetchall()}


def _by(column: str, where: str, table: str = "urls") -> str:
    return f"SELECT {column}, COUNT(*) FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1"


def crawl_stats(db) -> dict:
    per_host: dict[str, dict] = {}
    for host, state, n, stored_bytes in db.execute(
        "SELECT host, state, COUNT(*), COALESCE(SUM(CASE WHEN state = 'stored' THEN bytes END), 0) FROM urls "
        "WHERE host IS NOT NULL GROUP BY host, state ORDER BY host, state"
    ):
        entry = per_host.setdefault(host, {"stored": 0, "stored_bytes": 0})
        entry[state] = n
        entry["stored_bytes"] += stored_bytes
    for host, requests, wire in db.execute("SELECT host, COUNT(*), SUM(wire_bytes) FROM fetches GROUP BY host"):
        per_host.setdefault(host, {"stored": 0, "stored_bytes": 0}).update(requests=requests, downloaded_bytes=wire)
    requests, downloaded = db.execute("SELECT COUNT(*), COALESCE(SUM(wire_bytes), 0) FROM fetches").fetchone()
    stored, stored_bytes = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM urls WHERE state = 'stored'").fetchone()
    return {
        "pages_stored": stored,
        "stored_bytes": stored_bytes,
        "requests": requests,
        "downloaded_bytes": downloaded,
        "outcomes": _counts(db, _by("state", "1")),
        "status_codes": _counts(db, _by("status", "status IS NOT NULL", "fetches")),
        "requests_without_response": _counts(db, _by("outcome", "status IS NULL", "fetches")),
        "retries_by_cause": _counts(db, _by("substr(detail, 1, instr(detail, ':') - 1)", "outcome = 'retry'", "fetches")),
        "failed_by_reason": _counts(db, _by("reason", "state = 'failed'")),
        "skipped_by_reason": _counts(db, _by("reason", "state = 'skipped'")),
        "content_types": _counts(db, _by("content_type", "state = 'stored'")),
        "charsets": _counts(db, _by("COALESCE(charset, 'unknown')", "state = 'stored'")),
        "pages_per_host": per_host,
    }


def write_crawl_log(db, path: Path) -> int:
    """Every request in order, then every URL's outcome; one JSON object a line."""
    lines = 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in db.execute("SELECT * FROM fetches ORDER BY id"):
            f.write(json.dumps({"event": "request", **dict(row)}, ensure_ascii=False) + "\n")
            lines += 1
        for row in db.execute("SELECT * FROM urls ORDER BY id"):
            rec = {k: v for k, v in dict(row).items() if v is not None and k not in ("not_before", "chain")}
            f.write(json.dumps({"event": "url", **rec}, ensure_ascii=False) + "\n")
            lines += 1
    tmp.replace(path)
    return lines


def write_crawl_card(crawler: "Crawler", name: str, command: list[str] | None, seconds: float) -> dict:
    db = crawler.state.db
    out = crawler.output
    write_crawl_log(db, out / CRAWL_LOG)
    warc_files = []
    for row in crawler.state.warc_files():
        path = out / WARC_DIR / row["name"]
        if path.exists():
            warc_files.append({"path": f"{WARC_DIR}/{row['name']}", "bytes": path.stat().st_size,
                               "records": row["records"], "sha256": file_sha256(path)})  # fmt: skip
    listed = "SELECT url, reason, detail, via, status FROM urls WHERE state = ? ORDER BY id LIMIT ?"
    card = {
        **card_header(name, "crawl", command),
        "fingerprint": crawler.state.get_meta("fingerprint"),
        "config": json.loads(crawler.state.get_meta("config")),
        "crawl": {
            "stop_reason": crawler.state.get_meta("stop_reason"),
            "runs": int(crawler.state.get_meta("runs") or 1),
            "pages_stored_this_run": crawler.stored_this_run,
            "seconds_this_run": round(seconds, 2),
            "links_seen_again": crawler.links_seen_again,
            "warc_recovery": crawler.recovery_notes,
        },
        "stats": crawl_stats(db),
        "robots": _rows(db, "SELECT host, ip, refused_reason, refused_detail, robots_status, robots_note FROM hosts ORDER BY host"),
        "crawl_delay": {h.origin: h.delay for h in crawler.hosts.values() if h.ready and not h.refused},
        "skipped": _rows(db, listed, "skipped", LISTED_IN_CARD),
        "failed": _rows(db, listed, "failed", LISTED_IN_CARD),
        "warc_files": warc_files,
        "log": CRAWL_LOG,
    }
    card["robots"] = [{k: v for k, v in r.items() if v is not None} for r in card["robots"]]
    seal_card(out, card)
    readme = out / CARD_README
    previous = readme.read_text(encoding="utf-8") if readme.exists() else ""
    readme.write_text(render_crawl_readme(card, previous), encoding="utf-8")
    return card


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_crawl_readme(card: dict, previous: str = "") -> str:
    from corpus.cards.readme import _kept_limitations  # the section people write survives regeneration

    s = card["stats"]
    cfg = card["config"]
    parts = [f"# {card['name']}\n"]
    parts.append(
        f"A web crawl made by `corpus crawl` (corpus {card['tool']['version']}) on {card['created']}: "
        f"{s['pages_stored']:,} pages ({s['stored_bytes']:,} bytes) stored as WARC request/response records in "
        f"`{WARC_DIR}/`, from {s['requests']:,} requests ({s['downloaded_bytes']:,} bytes downloaded). "
        f"Stopped: {card['crawl']['stop_reason']}. Turn it into a dataset with "
        f"`corpus ingest {WARC_DIR}/ --source NAME --domain DOMAIN -o OUT`.\n"
    )
    parts.append("## Scope\n")
    parts.append(_table(["setting", "value"], [
        ["seeds", ", ".join(cfg["seeds"]) or "-"], ["sitemaps", ", ".join(cfg["sitemaps"]) or "-"],
        ["allowed domains", ", ".join(cfg["allow_domains"]) or "seed hosts only"],
        ["include / exclude", f"{cfg['include'] or '-'} / {cfg['exclude'] or '-'}"],
        ["max depth / pages / bytes", f"{cfg['max_depth']} / {cfg['max_pages'] or '-'} / {cfg['max_bytes'] or '-'}"],
        ["user agent", cfg["user_agent"]], ["delay / concurrency (per host)", f"{cfg['delay']} s / {cfg['concurrency']} ({cfg['host_concurrency']})"],
    ]) + "\n")  # fmt: skip
    parts.append("## Outcomes\n")
    parts.append(_table(["outcome", "URLs"], [[k, f"{v:,}"] for k, v in s["outcomes"].items()]) + "\n")
    parts.append("HTTP status codes of all requests (retries and robots.txt included): "
                 + (", ".join(f"{k}: {v:,}" for k, v in s["status_codes"].items()) or "none") + ".")  # fmt: skip
    if s["requests_without_response"]:
        parts.append("Requests without a response: "
                     + ", ".join(f"{k}: {v:,}" for k, v in s["requests_without_response"].items()) + ".")  # fmt: skip
    parts.append("")
    for key, title in (("failed_by_reason", "Requested but not stored"), ("skipped_by_reason", "Never requested")):
        if s[key]:
            parts.append(f"## {title}, by reason\n")
            parts.append(_table(["reason", "URLs"], [[k, f"{v:,}"] for k, v in s[key].items()]) + "\n")
    parts.append("Every URL with its outcome, reason and the page it was found on is in card.json "
                 f"(`skipped`, `failed`, first {LISTED_IN_CARD:,} each) and in `{card['log']}`.\n")  # fmt: skip
    parts.append("## Pages per host\n")
    rows = [[h, v.get("stored", 0), f"{v.get('stored_bytes', 0):,}", v.get("requests", 0), v.get("failed", 0), v.get("skipped", 0)]
            for h, v in s["pages_per_host"].items()]  # fmt: skip
    parts.append(_table(["host", "stored", "stored bytes", "requests", "failed", "skipped"], rows) + "\n")
    parts.append("## WARC files\n")
    parts.append(_table(["file", "bytes", "records", "sha256"],
                        [[w["path"], f"{w['bytes']:,}", w["records"], f"`{w['sha256'][:16]}`"] for w in card["warc_files"]]) + "\n")  # fmt: skip
    parts.append(LIMITATIONS_HEADING + "\n")
    parts.append(_kept_limitations(previous) + "\n")
    return "\n".join(parts)
