"""Crawl the whole bundled insurance sample served as a website on loopback, then ingest it.

    .venv/bin/python benchmarks/crawl_loopback.py [--concurrency 4] [--host-concurrency 4]

The 1,033 Markdown pages are rendered to HTML (index -> every 20th page, each page -> the next two),
served by `python -m http.server` in its own process on 127.0.0.1, and crawled with no delay. It
prints pages, requests, seconds and pages per second of the crawl, and what ingest made of it.
The numbers measure the crawler's own overhead (loopback has no network latency); a real crawl is
bound by --delay and the sites.
"""

from __future__ import annotations

import argparse
import html
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample" / "insurance" / "healthcare-gov-2013"
sys.path.insert(0, str(REPO))

from corpus.ingest.readers import split_front_matter  # noqa: E402


def build_site(root: Path) -> int:
    pages = sorted(SAMPLE.rglob("*.md"))
    names = [f"p{i:04d}.html" for i in range(len(pages))]
    for i, md in enumerate(pages):
        front, body, _ = split_front_matter(md.read_text(encoding="utf-8"))
        title = html.escape(str(front.get("title", md.stem)))
        paragraphs = "".join(f"<p>{html.escape(p.strip())}</p>\n" for p in body.split("\n\n") if p.strip())
        links = "".join(f'<a href="{names[j]}">next</a> ' for j in (i + 1, i + 2) if j < len(pages))
        (root / names[i]).write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body><main><h1>{title}</h1>\n"
            f"{paragraphs}</main><nav><a href='index.html'>home</a> {links}</nav></body></html>\n",
            encoding="utf-8",
        )
    index = "".join(f'<a href="{names[i]}">{i}</a>\n' for i in range(0, len(pages), 20))
    (root / "index.html").write_text(f"<!DOCTYPE html><html><body>{index}</body></html>\n", encoding="utf-8")
    return len(pages) + 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--host-concurrency", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site, out = Path(tmp) / "site", Path(tmp) / "crawl"
        site.mkdir()
        n_pages = build_site(site)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(1.0)
            corpus = [sys.executable, "-m", "corpus.cli", "-q"]
            started = time.monotonic()
            subprocess.run([*corpus, "crawl", f"http://127.0.0.1:{port}/index.html", "-o", str(out),
                            "--allow-network", "127.0.0.0/8", "--delay", "0", "--max-depth", "100",
                            "--concurrency", str(args.concurrency), "--host-concurrency", str(args.host_concurrency)],
                           check=True, cwd=REPO)  # fmt: skip
            crawl_seconds = time.monotonic() - started
        finally:
            server.terminate()
            server.wait()
        card = json.loads((out / "card.json").read_text())
        started = time.monotonic()
        subprocess.run([*corpus, "ingest", str(out / "warc"), "--source", "site", "--domain", "insurance",
                        "-o", str(Path(tmp) / "ingested")], check=True, cwd=REPO)  # fmt: skip
        ingest_seconds = time.monotonic() - started
        ingest = json.loads((Path(tmp) / "ingested" / "card.json").read_text())["accounting"][-1]
    s = card["stats"]
    print(json.dumps({
        "site_pages": n_pages,
        "pages_stored": s["pages_stored"],
        "requests": s["requests"],
        "outcomes": s["outcomes"],
        "warc_bytes": sum(w["bytes"] for w in card["warc_files"]),
        "crawl_seconds_wall": round(crawl_seconds, 1),
        "pages_per_second": round(s["pages_stored"] / crawl_seconds, 1),
        "concurrency": args.concurrency,
        "host_concurrency": args.host_concurrency,
        "ingest": {"docs_in": ingest["docs_in"], "kept": ingest["kept"], "rejected": ingest["rejected"],
                   "seconds_wall": round(ingest_seconds, 1)},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
