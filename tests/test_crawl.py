"""corpus crawl against a small website on loopback (tests/crawl_site.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus.cli import main
from corpus.crawl import CrawlConfig, crawl
from corpus.crawl.fetch import FetchError, address_refusal, inflate, resolve_allowed
from corpus.crawl.urls import BadURL, normalise
from corpus.errors import CorpusError

sys.path.insert(0, str(Path(__file__).parent))
from crawl_site import PAGE_CAP, SiteServer, article_path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def connections(monkeypatch):
    """Every address a socket connects to; anything but loopback fails the test before it connects."""
    seen: list[str] = []

    monkeypatch.setattr(socket.socket, "connect", loopback_only_connect(seen, socket.socket.connect))
    return seen


def loopback_only_connect(seen: list[str], real_connect):
    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):  # unix sockets (executor plumbing) pass
            seen.append(address[0])
            if not ipaddress.ip_address(address[0]).is_loopback:
                raise AssertionError(f"the crawler tried to connect to {address[0]}")
        return real_connect(sock, address)

    return guarded


def site_config(base: str, **overrides) -> CrawlConfig:
    """Short timeouts and no delay, so the whole site crawls in about a second."""
    options = dict(
        seeds=[base + "/"],
        allow_networks=["127.0.0.0/8"],  # loopback only: 10/8 and 169.254/16 stay refused
        allow_domains=["10.0.0.1", "169.254.169.254"],  # in scope, so the address check is what refuses them
        delay=0,
        read_timeout=2.0,  # loopback pages answer in milliseconds; /slow.html never does
        connect_timeout=1,
        retries=1,
        backoff=0.01,
        max_redirects=3,
        max_page_bytes=PAGE_CAP,
        max_depth=2,
        warc_max_bytes=8192,  # small, so the output rotates
    )
    options.update(overrides)
    return CrawlConfig(**options)


def outcomes(out: Path, base: str) -> dict[str, tuple[str, str | None]]:
    db = sqlite3.connect(out / "crawl_state.sqlite")
    rows = db.execute("SELECT url, state, reason FROM urls").fetchall()
    db.close()
    return {url.replace(base, ""): (state, reason) for url, state, reason in rows}


def warc_responses(out: Path) -> list:
    records = []
    for path in sorted((out / "warc").glob("*.warc.gz")):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response":
                    records.append((rec.rec_headers.get_header("WARC-Target-URI"), rec.http_headers, rec.content_stream().read()))
    return records


A = [article_path(i) for i in range(5)]
EXPECTED = {
    "/": ("stored", None),
    A[0]: ("stored", None),
    A[1]: ("stored", None),  # linked with a #fragment
    A[2]: ("stored", None),  # reached through /old-article
    A[3]: ("skipped", "max_depth"),  # linked from A[2] at depth 2
    "/deep/level2.html": ("stored", None),
    "/deep/level3.html": ("skipped", "max_depth"),
    "/private/secret.html": ("skipped", "robots_disallowed"),
    "/old-article": ("redirected", None),
    "/loop-a": ("redirected", None),
    "/loop-b": ("failed", "redirect_loop"),
    "/chain/1": ("redirected", None),
    "/chain/2": ("redirected", None),
    "/chain/3": ("redirected", None),
    "/chain/4": ("failed", "too_many_redirects"),
    "/missing.html": ("failed", "http_404"),
    "/flaky.html": ("stored", None),  # 500, then 200 on the retry
    "/slow.html": ("failed", "read_timeout"),
    "/big.html": ("failed", "too_large"),
    "/big-declared.html": ("failed", "too_large"),
    "/bomb.html": ("failed", "decompressed_too_large"),
    "/gzipped.html": ("stored", None),
    "/image.png": ("failed", "content_type"),
    "/report.pdf": ("failed", "content_type"),
    "/notes.txt": ("stored", None),
    "http://10.0.0.1/admin": ("skipped", "private_address"),
    "/to-metadata": ("redirected", None),
    "http://169.254.169.254/latest/meta-data/": ("skipped", "private_address"),
    "https://example.org/elsewhere": ("skipped", "out_of_scope"),
    "mailto:someone@example.org": ("skipped", "unsupported_scheme"),
    "/articles/": ("failed", "http_404"),
    "/latin1.html": ("stored", None),
}
STORED = sorted(p for p, (state, _) in EXPECTED.items() if state == "stored")


@pytest.fixture(scope="module")
def site_crawl(tmp_path_factory):
    """One crawl of the whole site, shared by the tests that only read its output."""
    out = tmp_path_factory.mktemp("crawl") / "site"
    mp = pytest.MonkeyPatch()
    seen: list[str] = []
    mp.setattr(socket.socket, "connect", loopback_only_connect(seen, socket.socket.connect))
    try:
        with SiteServer() as server:
            card = crawl(site_config(server.base), out)
            yield server, out, card, seen
    finally:
        mp.undo()


def test_every_url_has_the_expected_outcome(site_crawl):
    server, out, card, connected = site_crawl
    assert outcomes(out, server.base) == EXPECTED
    assert set(connected) == {"127.0.0.1"}  # 10.0.0.1 and 169.254.169.254 refused before any connection
    hits = server.site.hits
    assert "/private/secret.html" not in hits  # robots.txt honoured
    assert hits["/robots.txt"] == 1
    assert hits["/missing.html"] == 1 and hits["/articles/"] == 1  # no retry on 4xx
    assert hits["/flaky.html"] == 2  # one retry after the 500
    assert hits["/slow.html"] == 2  # the read timeout retried once (retries=1), then given up
    assert "/chain/5" not in hits and "/deep/level3.html" not in hits
    assert all(n == 1 for path, n in hits.items() if path not in ("/flaky.html", "/slow.html"))


def test_card_has_statistics_and_reasons(site_crawl):
    server, out, card, _ = site_crawl
    stats = card["stats"]
    assert stats["pages_stored"] == len(STORED)
    assert stats["outcomes"] == dict(Counter(state for state, _ in EXPECTED.values()))
    assert stats["status_codes"] == {"200": 15, "301": 1, "302": 7, "404": 2, "500": 1}
    assert stats["requests_without_response"] == {"read_timeout": 1, "retry": 1}
    assert stats["skipped_by_reason"] == {"max_depth": 2, "out_of_scope": 1, "private_address": 2,
                                          "robots_disallowed": 1, "unsupported_scheme": 1}  # fmt: skip
    assert stats["failed_by_reason"]["content_type"] == 2
    assert stats["pages_per_host"][server.base]["stored"] == len(STORED)
    assert stats["charsets"]["utf-8"] == len(STORED) - 1  # all declare utf-8 but /latin1.html
    skipped = {s["url"]: s for s in card["skipped"]}
    metadata = skipped["http://169.254.169.254/latest/meta-data/"]
    assert metadata["via"] == server.base + "/to-metadata" and "link-local" in metadata["detail"]
    assert card["crawl"]["stop_reason"] == "frontier_empty"
    assert card["crawl_delay"] == {server.base: 0.01}  # robots.txt Crawl-delay beats --delay 0
    readme = (out / "README.md").read_text()
    assert "robots_disallowed" in readme and "private_address" in readme
    log = [json.loads(line) for line in (out / "crawl_log.jsonl").read_text().splitlines()]
    assert sum(1 for e in log if e["event"] == "request") == stats["requests"]
    assert {e["url"] for e in log if e["event"] == "url"} >= {server.base + p for p in STORED}


def test_warc_holds_each_stored_page_once_decoded(site_crawl):
    server, out, card, _ = site_crawl
    files = sorted((out / "warc").glob("*.warc.gz"))
    assert len(files) >= 2  # rotated at 8 KiB
    assert not list((out / "warc").glob(".*"))  # no file left open
    responses = warc_responses(out)
    assert sorted(url.replace(server.base, "") for url, _, _ in responses) == STORED
    by_url = {url.replace(server.base, ""): (headers, body) for url, headers, body in responses}
    headers, body = by_url["/gzipped.html"]
    assert headers.get_header("X-Crawler-Content-Encoding") == "gzip"  # stored decoded, original header kept aside
    assert headers.get_header("Content-Encoding") is None
    assert int(headers.get_header("Content-Length")) == len(body) and body.startswith(b"<!DOCTYPE html>")
    requests = 0
    for path in files:
        with open(path, "rb") as f:
            requests += sum(1 for rec in ArchiveIterator(f) if rec.rec_type == "request")
    assert requests == len(STORED)
    check = subprocess.run([sys.executable, "-c", "from warcio.cli import main; main()", "check", *map(str, files)],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr  # block and payload digests verify


def test_charset_detected_when_undeclared(site_crawl):
    server, out, card, _ = site_crawl
    db = sqlite3.connect(out / "crawl_state.sqlite")
    charset = db.execute("SELECT charset FROM urls WHERE url = ?", (server.base + "/latin1.html",)).fetchone()[0]
    db.close()
    assert charset in ("cp1252", "windows-1252", "latin_1", "iso8859_15", "cp1250")


def test_crawl_ingest_card_end_to_end(site_crawl, tmp_path):
    from corpus.document import data_files, read_card
    from corpus.execution import run_stage
    from corpus.executors import ExecutorConfig
    from corpus.ingest import ingest_job

    server, out, card, _ = site_crawl
    job = ingest_job([{"paths": [str(out / "warc")], "source": "loopback_site", "domain": "insurance"}], "site", progress=False)
    ingest_card = run_stage(job, tmp_path / "ingested", ExecutorConfig(tasks=1, workers=1))
    acc = ingest_card["accounting"][-1]
    assert acc["docs_in"] == len(STORED) == acc["kept"] + sum(acc["rejected"].values())
    assert acc["skipped_records"]["warc_request"] == len(STORED)
    import pyarrow.parquet as pq

    docs = pq.read_table(data_files(tmp_path / "ingested")).to_pylist()
    assert {d["url"].replace(server.base, "") for d in docs} <= set(STORED)
    chip = next(d for d in docs if d["url"].endswith(A[1]))
    assert "CHIP" in chip["text"] and chip["source"] == "loopback_site"
    assert read_card(tmp_path / "ingested")["stats"]["docs"] == len(docs)
    latin1 = next(d for d in docs if d["url"].endswith("/latin1.html"))
    assert "\ufffd" not in latin1["text"] and "í" in latin1["text"]  # decoded with the detected charset


def test_refuses_loopback_seed_without_allow_private(tmp_path, connections, capsys):
    with SiteServer() as server:
        rc = main(["crawl", server.base + "/", "-o", str(tmp_path / "c")])
        assert not server.site.hits
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert "loopback" in err and "--allow-private" in err
    assert connections == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ftp://example.org/"], "scheme 'ftp'"),
        (["http://[::1"], "invalid"),
        (["http://10.0.0.1/"], "private address"),
        (["http://169.254.169.254/"], "link-local"),
        (["--include", "(", "http://10.0.0.1/"], "--include"),
        ([], "at least one seed"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, connections, capsys, argv, message):
    rc = main(["crawl", *argv, "-o", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message.lower() in err.lower() and err.count("\n") == 0, err
    assert connections == []


def test_unwritable_output_and_foreign_crawl_are_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    config = CrawlConfig(seeds=["http://127.0.0.1:9/"], allow_networks=["127.0.0.0/8"])
    with pytest.raises(CorpusError, match="cannot write"):
        crawl(config, blocker / "out")
    not_a_crawl = tmp_path / "full"
    not_a_crawl.mkdir()
    (not_a_crawl / "x.txt").write_text("x")
    with pytest.raises(CorpusError, match="not a crawl folder"):
        crawl(config, not_a_crawl)


def test_stopped_at_max_pages_resumes_without_refetching(tmp_path, connections):
    out = tmp_path / "c"
    with SiteServer() as server:
        first = crawl(site_config(server.base, max_pages=3), out)
        assert first["crawl"]["stop_reason"] == "max_pages" and first["stats"]["pages_stored"] == 3
        stored_first = {u for u, (s, _) in outcomes(out, server.base).items() if s == "stored"}
        hits_first = len(server.site.log)
        with pytest.raises(CorpusError, match="other seeds or scope"):
            crawl(site_config(server.base, max_depth=1), out)
        second = crawl(site_config(server.base), out)  # no page limit: goes on to the end
        again = server.site.log[hits_first:]
    assert second["crawl"]["runs"] == 2 and second["crawl"]["stop_reason"] == "frontier_empty"
    assert not stored_first & set(again)
    assert "/robots.txt" not in again  # the host's robots.txt is remembered
    assert outcomes(out, server.base) == EXPECTED
    assert sorted(u.replace(server.base, "") for u, _, _ in warc_responses(out)) == STORED


@pytest.mark.slow
def test_killed_crawl_resumes_without_refetching(tmp_path):
    out = tmp_path / "c"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with SiteServer() as server:
        args = [sys.executable, "-m", "corpus.cli", "-q", "crawl", server.base + "/", "-o", str(out),
                "--allow-network", "127.0.0.0/8", "--allow-domain", "10.0.0.1", "--allow-domain", "169.254.169.254",
                "--read-timeout", "1", "--retries", "1", "--max-depth", "2", "--max-redirects", "3", "--max-page-bytes", str(PAGE_CAP),
                "--warc-max-bytes", "8192"]  # fmt: skip
        proc = subprocess.Popen([*args, "--delay", "0.3"], env=env, cwd=REPO)
        db_path, stored_before = out / "crawl_state.sqlite", 0
        deadline = time.monotonic() + 60
        while stored_before < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if db_path.exists():
                try:
                    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
                    stored_before = db.execute("SELECT COUNT(*) FROM urls WHERE state = 'stored'").fetchone()[0]
                    db.close()
                except sqlite3.OperationalError:
                    pass
        assert proc.poll() is None, "the crawl ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "card.json").exists()  # a killed crawl does not look finished
        stored_first = {u for u, (s, _) in outcomes(out, server.base).items() if s == "stored"}
        hits_first = len(server.site.log)
        assert subprocess.run([*args, "--delay", "0"], env=env, cwd=REPO).returncode == 0
        again = server.site.log[hits_first:]
    assert len(stored_first) >= 3
    assert not stored_first & set(again)
    assert outcomes(out, server.base) == EXPECTED
    assert sorted(u.replace(server.base, "") for u, _, _ in warc_responses(out)) == STORED
    card = json.loads((out / "card.json").read_text())
    assert card["crawl"]["runs"] == 2 and card["stats"]["pages_stored"] == len(STORED)


def test_sitemap_index_gzipped_and_scope(tmp_path, connections):
    out = tmp_path / "c"
    with SiteServer() as server:
        config = site_config(server.base, seeds=[], sitemaps=[server.base + "/sitemap-index.xml.gz"], max_depth=0)
        card = crawl(config, out)
    got = outcomes(out, server.base)
    assert got == {
        "/sitemap-index.xml.gz": ("sitemap", None),
        "/sitemap.xml": ("sitemap", None),
        A[3]: ("stored", None),
        A[4]: ("stored", None),
        "https://example.org/not-ours": ("skipped", "out_of_scope"),
        "/": ("skipped", "max_depth"),  # the articles' links are one level deeper than allowed
        A[0]: ("skipped", "max_depth"),
    }
    assert card["stats"]["pages_stored"] == 2


def test_normalise():
    assert normalise("HTTP://Example.ORG:80/a/./b/../c?z=1&a=2#frag") == "http://example.org/a/c?a=2&z=1"
    assert normalise("https://example.org") == "https://example.org/"
    assert normalise("../x.html", base="http://h/a/b/c.html") == "http://h/a/x.html"
    with pytest.raises(BadURL) as e:
        normalise("javascript:void(0)")
    assert e.value.reason == "unsupported_scheme"


# Each address with the refusal address_refusal gives under the default config (None: crawled).
ADDRESS_TABLE = [
    # IPv4
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.0.1", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("169.254.169.254", "a link-local address"),
    ("0.0.0.0", "an unspecified address"),
    ("0.1.2.3", "a 'this network' (0.0.0.0/8) address"),
    ("100.64.0.1", "a carrier-grade NAT (100.64.0.0/10) address"),
    ("192.0.0.8", "an IETF protocol assignment (192.0.0.0/24) address"),
    ("192.0.2.1", "a documentation address"),
    ("198.51.100.7", "a documentation address"),
    ("203.0.113.9", "a documentation address"),
    ("198.18.0.1", "a benchmarking address"),
    ("192.88.99.1", "a 6to4 relay anycast (deprecated) address"),
    ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a broadcast address"),
    # native IPv6
    ("::", "an unspecified address"),
    ("::1", "a loopback address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("fec0::1", "a site-local (deprecated) address"),
    ("fc00::1", "a unique local address"),
    ("fd12:3456::1", "a unique local address"),
    ("ff02::1", "a multicast address"),
    ("2001:db8::1", "a documentation address"),
    ("3fff::1", "a documentation address"),
    ("2001:2::1", "a benchmarking address"),
    ("2001:10::1", "an ORCHID address"),
    ("2001:20::1", "an ORCHID address"),
    ("2001:5::1", "an IETF protocol assignment address (2001::/23)"),
    ("100::1", "a reserved address (outside 2000::/3, the global unicast range)"),
    ("::ffff:0:a00:1", "a reserved address (outside 2000::/3, the global unicast range)"),  # IPv4-translated
    # IPv4 carried in IPv6: judged by the IPv4 address
    ("::ffff:10.0.0.1", "a private address (IPv4-mapped IPv6 of 10.0.0.1)"),
    ("::ffff:169.254.169.254", "a link-local address (IPv4-mapped IPv6 of 169.254.169.254)"),
    ("::ffff:127.0.0.1", "a loopback address (IPv4-mapped IPv6 of 127.0.0.1)"),
    ("::127.0.0.1", "a loopback address (IPv4-compatible IPv6 of 127.0.0.1)"),
    ("::10.0.0.1", "a private address (IPv4-compatible IPv6 of 10.0.0.1)"),
    ("::0.0.0.2", "a 'this network' (0.0.0.0/8) address (IPv4-compatible IPv6 of 0.0.0.2)"),
    ("64:ff9b::7f00:1", "a loopback address (NAT64 IPv6 of 127.0.0.1)"),
    ("64:ff9b::a00:1", "a private address (NAT64 IPv6 of 10.0.0.1)"),
    ("64:ff9b::a9fe:a9fe", "a link-local address (NAT64 IPv6 of 169.254.169.254)"),
    ("64:ff9b:1::7f00:1", "a loopback address (local-use NAT64 IPv6 of 127.0.0.1)"),
    ("64:ff9b:1::808:808", "a local-use NAT64 address (local-use NAT64 IPv6 of 8.8.8.8)"),
    ("2002:7f00:0001::", "a loopback address (6to4 IPv6 of 127.0.0.1)"),
    ("2002:0a00:0001::", "a private address (6to4 IPv6 of 10.0.0.1)"),
    ("2002:a9fe:a9fe:1::1", "a link-local address (6to4 IPv6 of 169.254.169.254)"),
    # Teredo: server 65.54.227.120; clients 127.0.0.1 and 8.8.8.8 (last 32 bits inverted). Never crawled.
    ("2001:0:4136:e378:8000:63bf:80ff:fffe",
     "a Teredo tunnel address (server 65.54.227.120, client 127.0.0.1; Teredo is never crawled)"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7",
     "a Teredo tunnel address (server 65.54.227.120, client 8.8.8.8; Teredo is never crawled)"),
    # public unicast: crawled
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("93.184.216.34", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:80b::200e", None),
    ("2001:3::1", None),  # AMT: the IANA registry's one globally reachable block in 2001::/23 of these
    ("::ffff:8.8.8.8", None),
    ("::8.8.8.8", None),
    ("64:ff9b::808:808", None),  # a NAT64 network's way to a public IPv4 host
    ("2002:808:808::1", None),
]


@pytest.mark.parametrize("ip, refusal", ADDRESS_TABLE)
def test_address_guard_allows_only_public_unicast(ip, refusal):
    assert address_refusal(ip, CrawlConfig(seeds=["http://example.org/"])) == refusal


def test_address_guard_options():
    loopback_only = CrawlConfig(seeds=["http://example.org/"], allow_networks=["127.0.0.0/8"])
    assert address_refusal("127.0.0.1", loopback_only) is None
    assert address_refusal("10.0.0.1", loopback_only) == "a private address"
    # --allow-network matches the IPv4 address an IPv6 form carries, as well as the address itself
    for carried in ("::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        assert address_refusal(carried, loopback_only) is None, carried
    assert address_refusal("64:ff9b::a00:1", loopback_only) == "a private address (NAT64 IPv6 of 10.0.0.1)"
    assert address_refusal("fd00::5", CrawlConfig(seeds=["http://example.org/"], allow_networks=["fd00::/8"])) is None
    everything_private = CrawlConfig(seeds=["http://example.org/"], allow_private=True)
    for lifted in ("10.0.0.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "::1", "fe80::1", "fc00::1", "fec0::1",
                   "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:a00:1::"):  # fmt: skip
        assert address_refusal(lifted, everything_private) is None, lifted
    # --allow-private is about private networks, not about addresses no web server has
    for kept in ("0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "192.0.2.1", "2001:db8::1",
                 "2001:0:4136:e378:8000:63bf:80ff:fffe", "::ffff:224.0.0.1"):  # fmt: skip
        assert address_refusal(kept, everything_private) is not None, kept


@pytest.fixture
def numeric_resolver(monkeypatch):
    """The real getaddrinfo, limited to numeric hosts so that a test never sends a DNS query."""
    real = socket.getaddrinfo

    def numeric_only(host, port, family=0, type=0, proto=0, flags=0):
        return real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1"])
def test_numeric_host_spellings_are_judged_as_the_resolver_reads_them(host, numeric_resolver):
    default = CrawlConfig(seeds=["http://example.org/"])
    with pytest.raises(FetchError) as e:
        resolve_allowed(host, 80, default)
    assert e.value.reason == "private_address"
    assert e.value.detail == f"{host} is 127.0.0.1, a loopback address (pass --allow-private to crawl it)"
    assert resolve_allowed(host, 80, CrawlConfig(seeds=["http://example.org/"], allow_networks=["127.0.0.0/8"])) == "127.0.0.1"


def test_every_resolved_address_is_judged(monkeypatch):
    answers = {
        "mixed.test": ["93.184.216.34", "2606:4700:4700::1111", "::ffff:10.0.0.1"],
        "public.test": ["2606:4700:4700::1111", "93.184.216.34"],
        "rebound.test": ["93.184.216.34", "64:ff9b::7f00:1"],
    }
    asked = []

    def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        asked.append(host)
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    default = CrawlConfig(seeds=["http://example.org/"])
    assert resolve_allowed("public.test", 443, default) == "93.184.216.34"  # IPv4 first
    for host, detail in [
        ("mixed.test", "mixed.test is ::ffff:10.0.0.1, a private address (IPv4-mapped IPv6 of 10.0.0.1; pass --allow-private to crawl it)"),
        ("rebound.test", "rebound.test is 64:ff9b::7f00:1, a loopback address (NAT64 IPv6 of 127.0.0.1; pass --allow-private to crawl it)"),
    ]:
        with pytest.raises(FetchError) as e:
            resolve_allowed(host, 80, default)
        assert e.value.reason == "private_address" and e.value.detail == detail
    assert asked == ["public.test", "mixed.test", "rebound.test"]
    # a literal address is judged as it is, without a lookup
    with pytest.raises(FetchError, match=r"::127\.0\.0\.1 is a loopback address \(IPv4-compatible IPv6 of 127\.0\.0\.1;"):
        resolve_allowed("::127.0.0.1", 80, default)
    assert asked == ["public.test", "mixed.test", "rebound.test"]


@pytest.mark.parametrize("seed, message", [
    ("http://[::127.0.0.1]/", "a loopback address (IPv4-compatible IPv6 of 127.0.0.1; pass --allow-private"),
    ("http://[64:ff9b::a00:1]/", "a private address (NAT64 IPv6 of 10.0.0.1; pass --allow-private"),
    ("http://[2002:7f00:1::]:8080/", "a loopback address (6to4 IPv6 of 127.0.0.1; pass --allow-private"),
    ("http://[fec0::1]/", "a site-local (deprecated) address (pass --allow-private"),
    ("http://2130706433/", "2130706433 is 127.0.0.1, a loopback address"),
])  # fmt: skip
def test_ipv6_forms_of_private_seeds_are_refused_before_connecting(tmp_path, connections, numeric_resolver, capsys, seed, message):
    rc = main(["crawl", seed, "-o", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and err.count("\n") == 0, err
    assert connections == [] and not (tmp_path / "c").exists()


def test_inflate_caps_output_without_producing_it():
    import gzip
    import zlib

    bomb = gzip.compress(b"\0" * (8 << 20))
    with pytest.raises(FetchError) as e:
        inflate(bomb, "gzip", 4096, "bomb")
    assert e.value.reason == "decompressed_too_large"
    assert inflate(zlib.compress(b"hello"), "deflate", 4096, "x") == b"hello"
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert inflate(raw.compress(b"hi") + raw.flush(), "deflate", 4096, "x") == b"hi"
    with pytest.raises(FetchError) as e:
        inflate(b"not gzip", "gzip", 4096, "x")
    assert e.value.reason == "bad_content_encoding"


def test_pipeline_source_can_be_a_crawl(tmp_path, connections):
    from corpus.pipeline import run_pipeline

    with SiteServer() as server:
        pipeline = tmp_path / "crawled.yaml"
        pipeline.write_text(
            "name: crawled\noutput: out\nexecutor: {tasks: 1, workers: 1}\n"
            "sources:\n"
            "  - source: loopback_site\n    domain: insurance\n    crawl:\n"
            f"      seeds: ['{server.base}/']\n"
            "      allow_networks: [127.0.0.0/8]\n      max_depth: 1\n      delay: 0\n"
            f"      read_timeout: 1\n      retries: 0\n      max_page_bytes: {PAGE_CAP}\n"
            "stages:\n  - ingest: {}\n",
            encoding="utf-8",
        )
        written = run_pipeline(pipeline, progress=False)
        hits = len(server.site.log)
        assert run_pipeline(pipeline, progress=False) == written  # finished crawl, up-to-date ingest
        assert len(server.site.log) == hits  # nothing fetched again
    crawl_card = json.loads((tmp_path / "out" / "crawl-loopback_site" / "card.json").read_text())
    ingest_card = json.loads((written[0] / "card.json").read_text())
    acc = ingest_card["accounting"][-1]
    assert acc["docs_in"] == crawl_card["stats"]["pages_stored"] > 0
    assert ingest_card["stats"]["by_source"]["loopback_site"]["docs"] == acc["kept"] > 0
    assert ingest_card["inputs"][0]["path"].endswith("crawl-loopback_site/warc")


@pytest.mark.parametrize(
    "source, message",
    [
        ("{path: x, crawl: {seeds: ['http://example.org/']}, source: s, domain: d}", "either 'path' or 'crawl'"),
        ("{crawl: {seeds: ['http://example.org/'], bogus: 1}, source: s, domain: d}", "sources.0.crawl.bogus: unknown key"),
        ("{crawl: {seeds: ['http://example.org/'], exclude: ['(']}, source: s, domain: d}", "sources.0.crawl.exclude"),
    ],
)
def test_pipeline_crawl_source_errors_name_the_key(tmp_path, source, message):
    from corpus.pipeline import load_pipeline

    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text(f"name: bad\noutput: out\nsources:\n  - {source}\nstages:\n  - ingest: {{}}\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message.replace("(", r"\(")):
        load_pipeline(pipeline)


def test_host_name_seed_and_redirected_robots_txt(tmp_path, connections):
    if not any(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)):
        pytest.skip("localhost does not resolve to 127.0.0.1 here")
    with SiteServer(robots="redirect") as server:
        port = server.server.server_address[1]
        card = crawl(site_config(server.base, seeds=[f"http://localhost:{port}/"], max_depth=1), tmp_path / "c")
        hits, host_headers = server.site.hits, server.site.host_headers
    assert hits["/robots.txt"] == 1 and hits["/robots-real.txt"] == 1  # the redirect is followed
    assert "/private/secret.html" not in hits  # and the rules it led to are obeyed
    assert set(host_headers) == {f"localhost:{port}"}  # the name is sent although the address is pinned
    assert card["stats"]["pages_stored"] > 1


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_https_connects_to_the_checked_address_and_verifies_the_name(tmp_path, connections):
    import ssl

    from corpus.crawl.fetch import Fetcher

    cert, key = _self_signed(tmp_path)
    with SiteServer() as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
        url = f"https://localhost:{server.server.server_address[1]}/notes.txt"
        with pytest.raises(FetchError) as e:  # not trusted by the system
            Fetcher(CrawlConfig(seeds=[url])).fetch(url, "127.0.0.1", ("text/plain",))
        assert e.value.reason == "tls_error" and "certificate verify failed" in e.value.detail
        trusted = Fetcher(CrawlConfig(seeds=[url], ca_bundle=str(cert)))
        response = trusted.fetch(url, "127.0.0.1", ("text/plain",))
        assert response.status == 200 and response.body == server.site.notes
        wrong_name = f"https://127.0.0.1:{server.server.server_address[1]}/notes.txt"  # the cert names localhost only
        with pytest.raises(FetchError) as e:
            trusted.fetch(wrong_name, "127.0.0.1", ("text/plain",))
        assert e.value.reason == "tls_error"


def test_byte_budget_stops_the_crawl(tmp_path, connections):
    with SiteServer() as server:
        card = crawl(site_config(server.base, max_bytes=1), tmp_path / "c")
        hits = dict(server.site.hits)
    assert card["crawl"]["stop_reason"] == "max_bytes"
    assert hits == {"/robots.txt": 1}  # robots.txt spent the budget; the seed waits for a rerun
    assert card["stats"]["outcomes"] == {"pending": 1}


def test_links_honour_base_href_and_robots_nofollow():
    from corpus.crawl.links import html_links, sitemap_urls

    page = b"<html><head><base href='http://h/docs/'></head><body><a href='a.html'>a</a><area href='/b'></body></html>"
    assert html_links(page, "http://h/x/y.html", None) == (["http://h/docs/a.html", "http://h/b"], False)
    page = b"<html><head><meta name='ROBOTS' content='noindex, nofollow'></head><body><a href='a'>a</a></body></html>"
    assert html_links(page, "http://h/", None)[1] is True
    assert sitemap_urls(b"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'><url><loc> http://h/a </loc></url></urlset>") == (
        "urlset", ["http://h/a"])  # fmt: skip
    evil = b"<?xml version='1.0'?><!DOCTYPE u [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><urlset><url><loc>&x;</loc></url></urlset>"
    assert sitemap_urls(evil) == ("urlset", [])  # the external entity is not resolved


def test_unreachable_robots_txt_means_nothing_is_fetched(tmp_path, connections):
    with SiteServer(robots="error") as server:
        card = crawl(site_config(server.base), tmp_path / "c")
        hits = dict(server.site.hits)
    assert hits == {"/robots.txt": 2}  # tried, retried once, then the host counts as disallowed (RFC 9309)
    assert outcomes(tmp_path / "c", server.base) == {"/": ("skipped", "robots_disallowed")}
    assert "unreachable" in card["skipped"][0]["detail"]


def test_warc_recovery_cuts_an_unfinished_record(tmp_path):
    """A kill between writing a page and committing it leaves bytes past the committed size: a
    rerun cuts them off, so the page (fetched again) is not in the WARC twice."""
    from corpus.crawl.fetch import Response
    from corpus.crawl.state import CrawlState
    from corpus.crawl.warc import RotatingWarcWriter

    def page(n: int) -> Response:
        return Response(url=f"http://h/{n}", ip="192.0.2.1", status=200, reason_phrase="OK", http_version="HTTP/1.1",
                        headers=[("Content-Type", "text/html")], request_target=f"/{n}", request_headers=[("Host", "h")],
                        body=f"<html><body>page {n}</body></html>".encode())  # fmt: skip

    state = CrawlState(tmp_path / "state.sqlite")
    writer = RotatingWarcWriter(tmp_path / "warc", state, 1 << 20, {})
    name, committed = writer.write_page(page(1))
    state.warc_committed(name, committed, 2)
    state.commit()
    writer.write_page(page(2))  # written, never committed: the process dies here
    writer._file.flush()
    hidden = tmp_path / "warc" / f".{name}.open"
    assert hidden.stat().st_size > committed and not (tmp_path / "warc" / name).exists()
    state.close()

    state = CrawlState(tmp_path / "state.sqlite")
    notes = RotatingWarcWriter(tmp_path / "warc", state, 1 << 20, {}).recover()
    assert len(notes) == 1 and "cut" in notes[0]
    assert not hidden.exists() and (tmp_path / "warc" / name).stat().st_size == committed
    with open(tmp_path / "warc" / name, "rb") as f:
        assert [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f) if r.rec_type != "warcinfo"] == [
            "http://h/1", "http://h/1"]  # fmt: skip
    assert [dict(r)["state"] for r in state.warc_files()] == ["closed"]
    state.close()


def test_per_host_delay_and_concurrency(tmp_path, connections, monkeypatch):
    import threading

    from corpus.crawl.fetch import Fetcher

    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()
    real_fetch = Fetcher.fetch

    def counted(self, *args, **kwargs):  # requests the crawler has open at once (the server cannot tell:
        with lock:  # it goes on sleeping on /slow.html after the crawler gave up on it)
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            return real_fetch(self, *args, **kwargs)
        finally:
            with lock:
                in_flight["now"] -= 1

    monkeypatch.setattr(Fetcher, "fetch", counted)
    with SiteServer() as server:
        crawl(site_config(server.base, delay=0.2, max_pages=3, concurrency=4), tmp_path / "paced")
        starts = server.site.starts[1:]  # after robots.txt
    assert in_flight["max"] == 1  # host_concurrency 1, although 4 workers were free
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # requests start >= 0.2 s apart; arrival jitter on a loaded machine can eat into that, not halve it
    assert len(gaps) >= 2 and min(gaps) > 0.1, gaps
    in_flight["max"] = 0
    with SiteServer() as server:
        crawl(site_config(server.base, delay=0, concurrency=4, host_concurrency=2, max_depth=1), tmp_path / "parallel")
    assert in_flight["max"] == 2  # other pages go on while /slow.html holds one slot
