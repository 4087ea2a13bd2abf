"""The crawl loop: one thread owns the state (SQLite, WARC writer, frontier) and hands requests to
a pool of worker threads, which only do network and parsing.

Per host (scheme://host:port): the address is resolved and checked once, robots.txt is read once,
then at most `host_concurrency` requests are in flight and consecutive requests start at least
`delay` seconds apart (robots.txt Crawl-delay wins when larger). Within a host, shallower URLs go
first; a URL to retry waits `backoff * 2**n` seconds first.
"""

from __future__ import annotations

import heapq
import json
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from protego import Protego

from corpus.crawl.config import CrawlConfig
from corpus.crawl.fetch import Fetcher, FetchError, Response, detect_charset, inflate, resolve_allowed
from corpus.crawl.links import HTML_TYPES, SitemapError, html_declared_charset, html_links, sitemap_urls
from corpus.crawl.state import CrawlState
from corpus.crawl.urls import BadURL, Scope, normalise
from corpus.crawl.warc import WARC_DIR, RotatingWarcWriter
from corpus.errors import CorpusError
from corpus.outputs import OutputLock, check_output, fingerprint_of, mark, remove_ours, replace_hint
from corpus.progress import say

STATE_DB = "crawl_state.sqlite"
ROBOTS_CAP = 512 * 1024  # RFC 9309 lets a crawler stop reading robots.txt past 500 KiB
PROGRESS_EVERY_S = 10.0


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Entry:
    id: int
    url: str
    kind: str  # page | sitemap
    depth: int
    attempts: int = 0
    not_before: float = 0.0  # epoch seconds
    redirects: int = 0
    chain: list[str] = field(default_factory=list)
    via: str | None = None


@dataclass
class Host:
    origin: str
    queue: list = field(default_factory=list)  # heap of (not_before, depth, id, Entry)
    setting_up: bool = False
    ready: bool = False
    ip: str | None = None
    refused: tuple[str, str] | None = None
    robots: Protego | None = None
    robots_disallow_all: str | None = None  # why, when robots.txt could not be read (RFC 9309: unreachable)
    delay: float = 0.0
    in_flight: int = 0
    next_at: float = 0.0  # monotonic


@dataclass
class PageResult:
    response: Response | None = None
    error: FetchError | None = None
    links: list[str] = field(default_factory=list)
    sitemap_kind: str | None = None
    sitemap_locs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fingerprint(config: CrawlConfig) -> str:
    return fingerprint_of(config.scope_fingerprint_fields())


def validate_start_urls(config: CrawlConfig) -> tuple[list[str], list[str]]:
    """Normalised seeds and sitemaps; a CorpusError names the first bad one. Their hosts are
    resolved and checked here, so a refused seed is an error before anything is written."""
    if not config.seeds and not config.sitemaps:
        raise CorpusError("crawl: give at least one seed URL or --sitemap")
    checked: dict[str, str] = {}
    out: dict[str, list[str]] = {"seed": [], "--sitemap": []}
    for what, urls in (("seed", config.seeds), ("--sitemap", config.sitemaps)):
        for raw in urls:
            try:
                url = normalise(raw)
            except BadURL as e:
                raise CorpusError(f"{what} {raw!r}: {e}") from None
            parts = urlsplit(url)
            if parts.netloc not in checked:
                try:
                    checked[parts.netloc] = resolve_allowed(parts.hostname, parts.port or 80, config)
                except FetchError as e:
                    raise CorpusError(f"{what} {raw!r}: {e.detail}") from None
            out[what].append(url)
    return out["seed"], out["--sitemap"]


def prepare_output(output: Path, config: CrawlConfig, overwrite: bool, replace_other_scope: bool = False) -> None:
    if output.exists():
        if not output.is_dir():
            raise CorpusError(f"{output}: exists and is not a folder")
        if overwrite:
            remove_ours(check_output(output))
        elif (output / STATE_DB).exists():
            state = CrawlState(output / STATE_DB)
            saved = state.get_meta("fingerprint")
            state.close()
            if saved != fingerprint(config) and replace_other_scope:
                say(f"crawl: {output} holds a crawl of other seeds or scope; starting over")
                remove_ours(output)
            elif saved != fingerprint(config):
                raise CorpusError(
                    f"{output}: holds a crawl of other seeds or scope; pass --overwrite to start over, or choose another -o"
                )
        elif any(output.iterdir()):
            raise CorpusError(f"{output}: exists and is not a crawl folder; {replace_hint(output)}")
    try:
        (output / WARC_DIR).mkdir(parents=True, exist_ok=True)
        mark(output)
        probe = output / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CorpusError(f"{output}: cannot write there: {e.strerror or e}") from None


class Crawler:
    def __init__(self, config: CrawlConfig, output: Path, seeds: list[str], sitemaps: list[str]):
        self.config = config
        self.output = output
        self.state = CrawlState(output / STATE_DB)
        self.fetcher = Fetcher(config)
        self.scope = Scope(config, {urlsplit(u).hostname for u in seeds + sitemaps})
        self.hosts: dict[str, Host] = {}
        self.seen: set[str] = set()
        self.in_flight: dict[Future, tuple[str, object]] = {}
        self.links_seen_again = 0
        self.stored_this_run = 0
        self.stop_reason: str | None = None
        self.recovery_notes: list[str] = []
        self.warc = RotatingWarcWriter(
            output / WARC_DIR, self.state, config.warc_max_bytes,
            {"robots": "obey", "http-header-user-agent": config.user_agent, "isPartOf": output.name},
        )  # fmt: skip
        self.seeds, self.sitemaps = seeds, sitemaps

    # ---------------------------------------------------------------- frontier

    def _load(self) -> None:
        self.state.set_meta("fingerprint", fingerprint(self.config))
        self.state.set_meta("config", self.config.model_dump_json())
        runs = int(self.state.get_meta("runs") or 0) + 1
        self.state.set_meta("runs", str(runs))
        self.recovery_notes = self.warc.recover()
        self.seen = self.state.seen_urls()
        self.stored_total = self.state.count("stored")
        self.wire_total = self.state.wire_bytes()
        for row in self.state.pending():  # what a previous run left, before this run adds anything
            entry = Entry(row["id"], row["url"], row["kind"], row["depth"], row["attempts"], row["not_before"],
                          row["redirects"], json.loads(row["chain"] or "[]"), row["via"])  # fmt: skip
            self._push(entry)
        for url in self.seeds:
            self._add(url, "page", 0, via="seed")
        for url in self.sitemaps:
            self._add(url, "sitemap", 0, via="--sitemap")
        for row in self.state.db.execute("SELECT * FROM hosts"):
            host = self._host(row["host"])
            self._host_ready(host, dict(row))
        self.state.commit()

    def _host(self, origin: str) -> Host:
        host = self.hosts.get(origin)
        if host is None:
            host = self.hosts[origin] = Host(origin, delay=self.config.delay)
        return host

    def _push(self, entry: Entry) -> None:
        heapq.heappush(self._host(origin_of(entry.url)).queue, (entry.not_before, entry.depth, entry.id, entry))

    def _add(self, url: str, kind: str, depth: int, via: str | None, redirects: int = 0, chain: list[str] | None = None) -> None:
        """A URL into the frontier, unless already seen."""
        if url in self.seen:
            return
        self.seen.add(url)
        url_id = self.state.add_url(url, origin_of(url), kind, depth, via=via, redirects=redirects, chain=chain)
        if url_id is not None:
            self._push(Entry(url_id, url, kind, depth, redirects=redirects, chain=chain or [], via=via))

    def _skip(self, url: str, kind: str, depth: int, via: str | None, reason: str, detail: str) -> None:
        if url in self.seen:
            return
        self.seen.add(url)
        host = origin_of(url) if urlsplit(url).scheme in ("http", "https") else None
        self.state.add_url(url, host, kind, depth, state="skipped", via=via, reason=reason, detail=detail)

    def _discover(self, raw: str, via: str, depth: int, kind: str = "page") -> None:
        """A link or sitemap entry: into the frontier if new and in scope, else listed as skipped."""
        try:
            url = normalise(raw)
        except BadURL as e:
            self._skip(raw, kind, depth, via, e.reason, str(e))
            return
        if url in self.seen:
            self.links_seen_again += 1
            return
        if depth > self.config.max_depth:
            self._skip(url, kind, depth, via, "max_depth", f"depth {depth} > --max-depth {self.config.max_depth}")
            return
        out_of_scope = self.scope.check(url)
        if out_of_scope:
            self._skip(url, kind, depth, via, *out_of_scope)
            return
        self._add(url, kind, depth, via)

    # ---------------------------------------------------------------- the loop

    def run(self) -> str:
        self._load()
        pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="crawl")
        last_report = time.monotonic()
        try:
            while True:
                self._dispatch(pool)
                if not self.in_flight:
                    wait_s = self._next_ready_in()
                    if wait_s is None:
                        break
                    time.sleep(min(wait_s, 1.0))
                    continue
                done, _ = wait(list(self.in_flight), timeout=min(self._next_ready_in() or 1.0, 1.0),
                               return_when=FIRST_COMPLETED)  # fmt: skip
                for future in done:
                    what, payload = self.in_flight.pop(future)
                    if what == "host":
                        self._on_host(payload, future.result())
                    else:
                        self._on_page(payload, future.result())
                if time.monotonic() - last_report > PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    say(self._progress_line())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self.warc.close()
        if self.stop_reason is None:
            self.stop_reason = "frontier_empty" if not any(h.queue for h in self.hosts.values()) else "limits"
        self.state.set_meta("stop_reason", self.stop_reason)
        self.state.commit()
        return self.stop_reason

    def _progress_line(self) -> str:
        s = self.state
        return (f"crawl: {s.count('stored')} pages stored, {s.count('failed')} failed, {s.count('skipped')} skipped, "
                f"{s.count('pending')} pending")  # fmt: skip

    def _budget_spent(self) -> str | None:
        """Which limit is reached, counting pages in flight as stored (they may still fail, and
        then the budget frees up again)."""
        cfg = self.config
        if cfg.max_pages is not None:
            pages_in_flight = sum(1 for what, p in self.in_flight.values() if what == "page" and p.kind == "page")
            if self.stored_total + pages_in_flight >= cfg.max_pages:
                return "max_pages"
        if cfg.max_bytes is not None and self.wire_total >= cfg.max_bytes:
            return "max_bytes"
        return None

    def _log(self, url: str, purpose: str, attempt: int, seconds, status, wire: int, outcome: str, detail=None) -> None:
        self.wire_total += wire or 0
        self.state.log_fetch(url, origin_of(url), purpose, attempt, seconds, status, wire or 0, outcome, detail)

    def _dispatch(self, pool: ThreadPoolExecutor) -> None:
        cfg = self.config
        spent = self._budget_spent()
        if spent:
            if not self.in_flight and any(h.queue for h in self.hosts.values()):
                self.stop_reason = spent  # else the frontier is simply empty
            return
        for host in self.hosts.values():
            while host.queue and len(self.in_flight) < cfg.concurrency:
                if host.refused:
                    self._refuse_queue(host)
                    break
                if not host.ready:
                    if not host.setting_up:
                        host.setting_up = True
                        self.in_flight[pool.submit(self._setup_host, host.origin)] = ("host", host)
                    break
                if host.in_flight >= cfg.host_concurrency or time.monotonic() < host.next_at:
                    break
                if host.queue[0][0] > time.time():
                    break
                if self._budget_spent():
                    return
                entry: Entry = heapq.heappop(host.queue)[3]
                refusal = self._robots_refusal(host, entry.url)
                if refusal:
                    self.state.finish_url(entry.id, "skipped", reason="robots_disallowed", detail=refusal)
                    self.state.commit()
                    continue
                host.in_flight += 1
                host.next_at = time.monotonic() + host.delay
                self.in_flight[pool.submit(self._fetch, entry, host.ip)] = ("page", entry)

    def _next_ready_in(self) -> float | None:
        """Seconds until some queued URL may start; None when nothing is queued anywhere."""
        if self.stop_reason:
            return None
        waits = []
        for host in self.hosts.values():
            if not host.queue:
                continue
            if not host.ready or host.in_flight >= self.config.host_concurrency:
                waits.append(0.05)  # waiting on a request in flight, which wakes the loop anyway
                continue
            waits.append(max(host.next_at - time.monotonic(), host.queue[0][0] - time.time(), 0.0))
        return min(waits) if waits else None

    def _robots_refusal(self, host: Host, url: str) -> str | None:
        if host.robots_disallow_all:
            return host.robots_disallow_all
        if host.robots is not None and not host.robots.can_fetch(url, self.config.user_agent):
            return f"{host.origin}/robots.txt disallows it for {self.config.user_agent!r}"
        return None

    def _refuse_queue(self, host: Host) -> None:
        reason, detail = host.refused
        while host.queue:
            entry = heapq.heappop(host.queue)[3]
            self.state.finish_url(entry.id, "skipped", reason=reason, detail=detail)
        self.state.commit()

    # ---------------------------------------------------------------- hosts

    def _setup_host(self, origin: str) -> dict:
        """Worker: check the host's address, then read its robots.txt (RFC 9309)."""
        try:
            return self._check_host_and_robots(origin)
        except Exception as e:  # a bug or an odd host must not end the crawl: its URLs are listed as skipped
            return {"refused_reason": "host_error", "refused_detail": f"{origin}: {type(e).__name__}: {e}", "log": []}

    def _check_host_and_robots(self, origin: str) -> dict:
        parts = urlsplit(origin)
        log: list[tuple] = []
        try:
            ip = resolve_allowed(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), self.config)
        except FetchError as e:
            return {"refused_reason": e.reason, "refused_detail": e.detail, "log": log}
        url = origin + "/robots.txt"
        note = None
        hops = 0
        attempt = 0
        while attempt <= self.config.retries:
            started = time.monotonic()
            try:
                resp = self.fetcher.fetch(url, ip, read_types=None, cap=ROBOTS_CAP)
            except FetchError as e:
                log.append((url, "robots", attempt + 1, time.monotonic() - started, e.status, e.wire_bytes, e.reason, e.detail))
                if e.reason == "too_large":  # its rules cannot be read whole: the cautious reading
                    return {"ip": ip, "robots_status": e.status, "robots_note": "unreachable: over 512 KiB", "log": log}
                note = f"unreachable: {e.reason}"
                if e.retryable and attempt < self.config.retries:
                    time.sleep(self.config.backoff * 2**attempt)
                    attempt += 1
                    continue
                return {"ip": ip, "robots_status": e.status, "robots_note": note, "log": log}
            log.append((url, "robots", attempt + 1, resp.seconds, resp.status, resp.wire_bytes, "ok", None))
            if resp.status >= 500:
                note = f"unreachable: HTTP {resp.status}"
                if attempt < self.config.retries:
                    time.sleep(self.config.backoff * 2**attempt)
                    attempt += 1
                    continue
                return {"ip": ip, "robots_status": resp.status, "robots_note": note, "log": log}
            if 200 <= resp.status < 300:
                text = resp.body.decode("utf-8", errors="replace")
                return {"ip": ip, "robots_status": resp.status, "robots_txt": text, "log": log}
            location = resp.header("Location")
            if 300 <= resp.status < 400 and location and hops < 5:
                # RFC 9309 2.3.1.2: follow at least five redirects. Only to the same host name
                # (http -> https, another path), so the address checked above still applies.
                target = urljoin(url, location)
                if urlsplit(target).scheme in ("http", "https") and urlsplit(target).hostname == parts.hostname:
                    url, hops = target, hops + 1
                    continue
            # 4xx, and redirects elsewhere or too many: "unavailable", crawling allowed
            return {"ip": ip, "robots_status": resp.status, "robots_note": f"unavailable (HTTP {resp.status}): all allowed",
                    "log": log}  # fmt: skip
        return {"ip": ip, "robots_note": note, "log": log}

    def _on_host(self, host: Host, result: dict) -> None:
        host.setting_up = False
        for row in result.pop("log"):
            url, purpose, attempt, seconds, status, wire, outcome, detail = row
            self._log(url, purpose, attempt, seconds, status, wire, outcome, detail)
        self.state.save_host(host.origin, **result)
        self.state.commit()
        self._host_ready(host, result)

    def _host_ready(self, host: Host, row: dict) -> None:
        if row.get("refused_reason"):
            host.refused = (row["refused_reason"], row["refused_detail"])
            host.ready = True
            return
        host.ip = row["ip"]
        note = row.get("robots_note") or ""
        if note.startswith("unreachable"):
            # RFC 9309 2.3.1.4: robots.txt unreachable (5xx, network): assume everything disallowed
            host.robots_disallow_all = f"{host.origin}/robots.txt {note}: the host is treated as disallowed"
        elif row.get("robots_txt") is not None:
            host.robots = Protego.parse(row["robots_txt"])
            crawl_delay = host.robots.crawl_delay(self.config.user_agent)
            if crawl_delay:
                host.delay = max(host.delay, float(crawl_delay))
        host.ready = True

    # ---------------------------------------------------------------- pages

    def _fetch(self, entry: Entry, ip: str) -> PageResult:
        """Worker: one request, plus the parsing that needs no state (links, sitemap entries)."""
        try:
            return self._fetch_and_parse(entry, ip)
        except Exception as e:  # one odd page must not end the crawl: it is listed as failed, with the error
            return PageResult(error=FetchError("fetch_error", f"{entry.url}: {type(e).__name__}: {e}"))

    def _fetch_and_parse(self, entry: Entry, ip: str) -> PageResult:
        read_types = tuple(self.config.content_types) if entry.kind == "page" else None
        started = time.monotonic()
        try:
            resp = self.fetcher.fetch(entry.url, ip, read_types)
        except FetchError as e:
            return PageResult(error=e, seconds=time.monotonic() - started)
        result = PageResult(response=resp, seconds=time.monotonic() - started)
        if not 200 <= resp.status < 300:
            return result
        try:
            if entry.kind == "sitemap":
                body = resp.body
                if body[:2] == b"\x1f\x8b":  # sitemap.xml.gz served as a file, not as an encoding
                    body = inflate(body, "gzip", self.config.max_page_bytes, entry.url)
                result.sitemap_kind, result.sitemap_locs = sitemap_urls(body)
                return result
        except (FetchError, SitemapError) as e:
            reason = e.reason if isinstance(e, FetchError) else "sitemap_parse_error"
            return PageResult(error=FetchError(reason, f"{entry.url}: {e}", status=resp.status, wire_bytes=resp.wire_bytes),
                              seconds=result.seconds)  # fmt: skip
        if resp.charset is None and resp.media_type in HTML_TYPES:
            resp.charset = html_declared_charset(resp.body)
            resp.charset_source = "meta" if resp.charset else None
        if resp.charset is None:
            resp.charset = detect_charset(resp.body)
            resp.charset_source = "detected" if resp.charset else None
        if resp.media_type in HTML_TYPES:
            result.links, resp.nofollow = html_links(resp.body, entry.url, resp.charset)
        return result

    def _on_page(self, entry: Entry, result: PageResult) -> None:
        host = self.hosts[origin_of(entry.url)]
        host.in_flight -= 1
        attempt = entry.attempts + 1
        if result.error is not None:
            e = result.error
            self._failed_or_retry(entry, attempt, e.reason, e.detail, e.status, e.wire_bytes, result.seconds, e.retryable)
            return
        resp = result.response
        status = resp.status
        if status >= 500:
            self._failed_or_retry(entry, attempt, f"http_{status}", f"{entry.url}: HTTP {status}", status, 0, result.seconds, True)
        elif status in (301, 302, 303, 307, 308):
            self._log(entry.url, entry.kind, attempt, result.seconds, status, 0, "redirect", resp.header("Location"))
            self._redirect(entry, attempt, resp)
        elif not 200 <= status < 300:
            self._failed_or_retry(entry, attempt, f"http_{status}", f"{entry.url}: HTTP {status}", status, 0, result.seconds, False)
        elif entry.kind == "sitemap":
            self._log(entry.url, "sitemap", attempt, result.seconds, status, resp.wire_bytes, "ok")
            self.state.finish_url(entry.id, "sitemap", status=status, attempts=attempt, bytes=resp.wire_bytes,
                                  content_type=resp.media_type, detail=f"{result.sitemap_kind}: {len(result.sitemap_locs)} URLs")  # fmt: skip
            room = self.config.max_sitemap_urls - self.state.db.execute(
                "SELECT COUNT(*) FROM urls WHERE via IN (SELECT url FROM urls WHERE kind = 'sitemap')").fetchone()[0]  # fmt: skip
            kind = "sitemap" if result.sitemap_kind == "sitemapindex" else "page"
            for loc in result.sitemap_locs[: max(room, 0)]:
                self._discover(loc, entry.url, 0, kind)
            for loc in result.sitemap_locs[max(room, 0):]:
                self._skip(loc, kind, 0, entry.url, "max_sitemap_urls", f"over --max-sitemap-urls {self.config.max_sitemap_urls}")
            self.state.commit()
        else:
            self._store(entry, attempt, resp, result)

    def _failed_or_retry(self, entry: Entry, attempt: int, reason: str, detail: str, status, wire: int, seconds: float,
                         retryable: bool) -> None:  # fmt: skip
        if retryable and entry.attempts < self.config.retries:
            self._log(entry.url, entry.kind, attempt, seconds, status, wire, "retry", f"{reason}: {detail}")
            entry.attempts = attempt
            entry.not_before = time.time() + self.config.backoff * 2 ** (attempt - 1)
            self.state.retry_later(entry.id, entry.attempts, entry.not_before)
            self._push(entry)
        else:
            self._log(entry.url, entry.kind, attempt, seconds, status, wire, reason, detail)
            self.state.finish_url(entry.id, "failed", reason=reason, detail=detail, status=status, attempts=attempt)
        self.state.commit()

    def _redirect(self, entry: Entry, attempt: int, resp: Response) -> None:
        location = resp.header("Location")
        fields = dict(status=resp.status, attempts=attempt)
        if not location:
            self.state.finish_url(entry.id, "failed", reason="redirect_without_location", detail=f"HTTP {resp.status}", **fields)
            self.state.commit()
            return
        chain = entry.chain + [entry.url]
        try:
            target = normalise(location, base=entry.url)
        except BadURL as e:
            self.state.finish_url(entry.id, "failed", reason=e.reason, detail=f"redirect to {e}", **fields)
            self.state.commit()
            return
        if target in chain:
            self.state.finish_url(entry.id, "failed", reason="redirect_loop", detail=" -> ".join(chain + [target]), **fields)
        elif entry.redirects + 1 > self.config.max_redirects:
            self.state.finish_url(entry.id, "failed", reason="too_many_redirects",
                                  detail=f"more than {self.config.max_redirects} redirects: {' -> '.join(chain + [target])}",
                                  **fields)  # fmt: skip
        else:
            self.state.finish_url(entry.id, "redirected", detail=target, **fields)
            out_of_scope = self.scope.check(target)
            if target in self.seen:
                pass  # the target has (or will have) its own outcome
            elif out_of_scope:
                self._skip(target, entry.kind, entry.depth, entry.url, *out_of_scope)
            else:
                # a redirect is the same page under another URL: same depth, one more hop
                self._add(target, entry.kind, entry.depth, entry.url, entry.redirects + 1, chain)
        self.state.commit()

    def _store(self, entry: Entry, attempt: int, resp: Response, result: PageResult) -> None:
        name, committed = self.warc.write_page(resp)
        self._log(entry.url, "page", attempt, result.seconds, resp.status, resp.wire_bytes, "ok")
        self.state.finish_url(entry.id, "stored", status=resp.status, attempts=attempt, bytes=len(resp.body),
                              content_type=resp.media_type, charset=resp.charset, warc_file=name)  # fmt: skip
        self.state.warc_committed(name, committed, 2)
        if not resp.nofollow:
            for link in result.links:
                self._discover(link, entry.url, entry.depth + 1)
        self.state.commit()
        self.warc.after_commit()
        self.stored_this_run += 1
        self.stored_total += 1


def crawl(config: CrawlConfig, output: str | Path, *, overwrite: bool = False, command: list[str] | None = None,
          name: str | None = None, replace_other_scope: bool = False) -> dict:  # fmt: skip
    """Crawl into `output` (WARC files, state, log, card); resumes a crawl already there.
    Returns the card."""
    output = check_output(output)
    seeds, sitemaps = validate_start_urls(config)
    with OutputLock(output):
        return _crawl_locked(config, output, seeds, sitemaps, overwrite, command, name, replace_other_scope)


def _crawl_locked(config: CrawlConfig, output: Path, seeds, sitemaps, overwrite: bool, command, name,
                  replace_other_scope: bool) -> dict:  # fmt: skip
    from corpus.crawl.card import write_crawl_card

    prepare_output(output, config, overwrite, replace_other_scope)
    (output / "card.json").unlink(missing_ok=True)  # a crawl under way has no card.json: it is not finished
    started = time.time()
    crawler = Crawler(config, output, seeds, sitemaps)
    try:
        say(f"crawl: {len(seeds)} seeds, {len(sitemaps)} sitemaps -> {output}")
        stop_reason = crawler.run()
        card = write_crawl_card(crawler, name or output.name, command, time.time() - started)
    finally:
        crawler.state.close()
    s = card["stats"]
    say(f"crawl: {s['outcomes'].get('stored', 0)} pages stored ({crawler.stored_this_run} this run), "
        f"{s['outcomes'].get('failed', 0)} failed, {s['outcomes'].get('skipped', 0)} skipped, "
        f"{s['outcomes'].get('pending', 0)} pending; stopped: {stop_reason} -> {output}")  # fmt: skip
    return card
