"""A small website on loopback for the crawler's tests: pages rendered from the bundled sample
(sample/insurance, public domain) plus every kind of trouble a crawler must handle politely."""

from __future__ import annotations

import gzip
import html
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from corpus.ingest.readers import split_front_matter

SAMPLE = Path(__file__).resolve().parent.parent / "sample" / "insurance" / "healthcare-gov-2013"
ARTICLES = [
    "articles/0001-02-01-am-i-eligible-for-coverage-in-the-marketplace.md",
    "articles/0001-02-01-are-my-children-eligible-for-chip.md",
    "articles/0001-02-01-can-i-buy-a-catastrophic-plan.md",
    "articles/0001-02-01-can-i-keep-my-child-on-my-insurance-until-age-26.md",
    "articles/0001-02-01-can-i-keep-my-own-doctor.md",
]
PAGE_CAP = 64 * 1024  # the tests' --max-page-bytes


def render(md_path: Path, links: list[str]) -> bytes:
    front, body, _ = split_front_matter(md_path.read_text(encoding="utf-8"))
    title = html.escape(str(front.get("title", md_path.stem)))
    paragraphs = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in body.split("\n\n") if p.strip())
    anchors = "\n".join(f'<li><a href="{html.escape(h)}">{html.escape(h)}</a></li>' for h in links)
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
            f"<body><main><h1>{title}</h1>\n{paragraphs}\n</main><nav><ul>\n{anchors}\n</ul></nav></body></html>\n")  # fmt: skip
    return page.encode("utf-8")


def article_path(i: int) -> str:
    return f"/articles/{Path(ARTICLES[i]).stem}.html"


# what the home page links to, and what each kind of trouble is
HOME_LINKS = [
    article_path(0),
    article_path(1) + "#eligibility",  # a fragment: the same page as article 1
    "/private/secret.html",  # robots.txt disallows /private/
    "/old-article",  # 301 to article 2
    "/loop-a",  # 302 to /loop-b, which redirects back
    "/chain/1",  # a redirect chain longer than the limit
    "/missing.html",  # 404
    "/flaky.html",  # 500, then 200
    "/slow.html",  # never answers while the crawl runs: the read timeout must give up on it
    "/big.html",  # over the size cap, no Content-Length
    "/big-declared.html",  # over the size cap, says so in Content-Length
    "/bomb.html",  # gzip that decompresses past the cap
    "/gzipped.html",  # a well-behaved gzip-encoded page
    "/image.png",
    "/report.pdf",
    "/notes.txt",  # text/plain is allowed
    "http://10.0.0.1/admin",  # private address: refused before any connection
    "/to-metadata",  # redirects to a link-local address
    "https://example.org/elsewhere",  # another host: out of scope
    "mailto:someone@example.org",
    "/articles/",  # 404 on the folder
    "/latin1.html",  # windows-1252, no charset declared anywhere: detected
]


class Site:
    def __init__(self, robots: str = "ok") -> None:
        self.base = ""  # set once the server has its port
        self.robots = robots  # ok | redirect (301 to /robots-real.txt) | error (503)
        self.host_headers: Counter = Counter()
        self.hits: Counter = Counter()
        self.starts: list[float] = []  # monotonic time each request arrived
        self.active = self.max_active = 0  # requests being answered at once
        self.log: list[str] = []
        self._lock = threading.Lock()
        self.released = threading.Event()  # set when the server stops: /slow.html answers only then
        self.pages: dict[str, bytes] = {"/": render(SAMPLE / "0001-01-01-home.md", HOME_LINKS)}
        for i, rel in enumerate(ARTICLES):
            links = ["/", article_path((i + 1) % len(ARTICLES))]
            if i == 0:
                links.append("/deep/level2.html")
            self.pages[article_path(i)] = render(SAMPLE / rel, links)
        glossary = sorted((SAMPLE / "glossary").glob("*.md"))
        self.pages["/deep/level2.html"] = render(glossary[0], ["/deep/level3.html"])
        self.pages["/deep/level3.html"] = render(glossary[1], [])
        self.pages["/private/secret.html"] = render(glossary[2], [])
        self.pages["/flaky.html"] = render(glossary[3], [])
        self.pages["/gzipped.html"] = render(glossary[4], [])
        spanish = sorted((SAMPLE / "glossary" / "es").glob("*.md"))[0]
        self.pages["/latin1.html"] = render(spanish, []).replace(b'<meta charset="utf-8">', b"").decode().encode("cp1252", errors="xmlcharrefreplace")
        self.notes = (SAMPLE / "glossary" / glossary[5].name).read_text(encoding="utf-8").encode("utf-8")

    def hit(self, path: str) -> int:
        with self._lock:
            self.hits[path] += 1
            self.log.append(path)
            self.starts.append(time.monotonic())
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            return self.hits[path]

    def done(self) -> None:
        with self._lock:
            self.active -= 1


def make_handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8", headers=(), length=True):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in headers:
                self.send_header(k, v)
            if length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the crawler hung up on purpose
                pass

        def redirect(self, status: int, location: str) -> None:
            self.send(status, b"", headers=[("Location", location)])

        def do_GET(self) -> None:
            n = site.hit(self.path)
            try:
                self.answer(self.path, n)
            finally:
                site.done()

        def answer(self, path: str, n: int) -> None:
            site.host_headers[self.headers.get("Host")] += 1
            if path == "/robots.txt" and site.robots == "redirect":
                return self.redirect(301, "/robots-real.txt")
            if path == "/robots.txt" and site.robots == "error":
                return self.send(503, b"busy")
            if path in ("/robots.txt", "/robots-real.txt"):
                return self.send(200, b"User-agent: *\nDisallow: /private/\nCrawl-delay: 0.01\n", "text/plain")
            if path == "/old-article":
                return self.redirect(301, article_path(2))
            if path == "/loop-a":
                return self.redirect(302, "/loop-b")
            if path == "/loop-b":
                return self.redirect(302, "/loop-a")
            if path.startswith("/chain/"):
                return self.redirect(302, f"/chain/{int(path.rsplit('/', 1)[1]) + 1}")
            if path == "/to-metadata":
                return self.redirect(302, "http://169.254.169.254/latest/meta-data/")
            if path == "/flaky.html" and n == 1:
                return self.send(500, b"try again")
            if path == "/slow.html":  # no byte before the crawler has given up, however slow the machine
                site.released.wait()
                return self.send(200, b"<html><body>too late</body></html>")
            if path == "/big.html":
                return self.send(200, b"<html><body>" + b"x" * (2 * PAGE_CAP) + b"</body></html>", length=False)
            if path == "/big-declared.html":
                return self.send(200, b"<html><body>" + b"y" * (2 * PAGE_CAP) + b"</body></html>")
            if path == "/bomb.html":
                bomb = gzip.compress(b"<html><body>" + b"\0" * (16 << 20), compresslevel=9)
                return self.send(200, bomb, headers=[("Content-Encoding", "gzip")])
            if path == "/gzipped.html":
                return self.send(200, gzip.compress(site.pages[path]), headers=[("Content-Encoding", "gzip")])
            if path == "/image.png":
                return self.send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
            if path == "/report.pdf":
                return self.send(200, b"%PDF-1.4\n%%EOF\n", "application/pdf")
            if path == "/notes.txt":
                return self.send(200, site.notes, "text/plain; charset=utf-8")
            if path == "/latin1.html":
                return self.send(200, site.pages[path], "text/html")
            if path == "/sitemap.xml":
                return self.send(200, sitemap("urlset", "url", [site.base + article_path(3), site.base + article_path(4),
                                                                "https://example.org/not-ours"]), "application/xml")
            if path == "/sitemap-index.xml.gz":
                return self.send(200, gzip.compress(sitemap("sitemapindex", "sitemap", [site.base + "/sitemap.xml"])),
                                 "application/gzip")
            if path in site.pages:
                return self.send(200, site.pages[path])
            return self.send(404, b"<html><body>not found</body></html>")

    return Handler


def sitemap(root: str, item: str, locs: list[str]) -> bytes:
    entries = "".join(f"<{item}><loc>{html.escape(loc)}</loc></{item}>" for loc in locs)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<{root} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{root}>\n').encode()  # fmt: skip


class SiteServer:
    """The site on 127.0.0.1 at an ephemeral port, served by threads."""

    def __init__(self, robots: str = "ok") -> None:
        self.site = Site(robots)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.site))
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a handler still answering must not hold up shutdown
        self.site.base = self.base
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "SiteServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.site.released.set()
        self.server.shutdown()
        self.server.server_close()
