"""PDF ingest against the plain library call: text quality on manuals that exist as PDF and HTML,
and speed on a folder of real PDFs.

    .venv/bin/python benchmarks/bench_pdf.py quality --pdf DIR --html DIR
    .venv/bin/python benchmarks/bench_pdf.py speed --pdf DIR [--rounds 3] [--workers 2] [--in-process]

quality: for every NAME.pdf with a NAME.html beside it in --html, the HTML's text (paragraphs,
list items, definitions, headings; no <pre> code) is the reference, and each of two texts is
scored against it: the plain library text (pypdfium2's get_text_range, page after page) and ours
(`corpus ingest`'s document text).
  word recall          share of the HTML's words (as a multiset) found in the text; "-running" is the
                       plain text less its header/footer lines (below), to show what they add
  sentence integrity   share of the HTML's sentences (>= 6 words) that stand whole on one line of
                       the text: neither broken by a newline nor hyphenated
  header/footer lines  running-title and page-number lines left: the plain text's first and last
                       lines of each page that repeat (digits aside) on 3 or more pages, or are a
                       bare number, counted where they still appear in the text
Text is compared after NFKC, quotes and dashes made plain, case folded, everything but letters and
digits made a space.

speed: pages per second of the whole `corpus ingest` command (2 workers, 2 tasks, Parquet and card
included) and of the plain library call in 2 processes (one PDF per process at a time), median of
--rounds runs, with the ratio.

Real manuals used in benchmarks/README.md: the R manuals, which Debian ships as PDF (r-doc-pdf)
and as HTML (r-doc-html), both built from the same Texinfo sources (GPL-2+):
    apt-get download r-doc-pdf r-doc-html; dpkg -x r-doc-pdf_*.deb x; dpkg -x r-doc-html_*.deb x
    PDF: x/usr/share/R/doc/manual/R-*.pdf   HTML: x/usr/share/R/doc/manual/R-*.html (or r-doc-html's)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary import record  # noqa: E402

_PLAIN = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "\u00ad": ""})
_NON_WORD = re.compile(r"[^0-9a-z]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


def norm(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).translate(_PLAIN).lower()).split())


def html_reference(path: Path) -> tuple[list[str], list[str]]:
    """(words, sentences) of a manual's HTML: prose elements only, code blocks and navigation out."""
    import lxml.html

    tree = lxml.html.parse(str(path))
    for bad in tree.xpath("//pre|//script|//style|//div[@class='nav-panel']|//div[@class='header']|//table[@class='menu']"):
        bad.drop_tree()
    words: list[str] = []
    sentences: list[str] = []
    for el in tree.xpath("//p|//li[not(.//p)]|//dd[not(.//p)]|//h1|//h2|//h3|//h4"):
        text = " ".join(el.text_content().split())
        words.extend(norm(text).split())
        if el.tag == "p":
            for s in _SENTENCE.split(text):
                n = norm(s)
                if len(n.split()) >= 6:
                    sentences.append(n)
    return words, sentences


def running_lines(plain_pages: list[str]) -> tuple[list[str], set[str]]:
    """Header/footer lines of the plain text: a page's first/last lines repeating on >= 3 pages
    (digits aside), or bare numbers."""
    edges = []
    for page in plain_pages:
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        edges.extend(lines[:1] + lines[-1:])
    keys = Counter(re.sub(r"\d+", "#", e) for e in edges)
    titles = [e for e in edges if keys[re.sub(r"\d+", "#", e)] >= 3 and not e.isdigit()]
    return titles, {e for e in edges if e.isdigit()}


def leakage(text: str, titles: list[str], numbers: set[str]) -> int:
    lines = [line.strip() for line in text.splitlines()]
    bare = sum(1 for line in lines if line in numbers)
    return bare + sum(1 for t in set(titles) if t in text)


def score(text: str, words: list[str], sentences: list[str]) -> tuple[float, float]:
    have = Counter(norm(text).split())
    want = Counter(words)
    recall = sum(min(n, have[w]) for w, n in want.items()) / max(sum(want.values()), 1)
    line_text = "\n".join(norm(line) for line in text.splitlines())
    whole = sum(1 for s in sentences if s in line_text)
    return recall, whole / max(len(sentences), 1)


def plain_pages(path: str) -> list[str]:
    from corpus.ingest.pdf import plain_pdf_pages

    return plain_pdf_pages(path)


def ingest(paths: list, out: Path, workers: int = 2) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "corpus.cli", "ingest", *map(str, paths), "-o", str(out), "--source", "bench", "--domain", "docs",
                    "--tasks", str(workers), "--workers", str(workers), "--quiet", "--overwrite"],  # fmt: skip
                   check=True, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    return time.perf_counter() - start


def ours_texts(out: Path) -> dict[str, str]:
    import polars as pl

    table = pl.read_parquet(str(out / "data" / "*.parquet"))
    return {Path(json.loads(m)["path"]).stem: t for t, m in zip(table["text"], table["metadata"])}


def cmd_quality(args) -> None:
    pdfs = sorted(p for p in Path(args.pdf).glob("*.pdf") if (Path(args.html) / f"{p.stem}.html").exists())
    with tempfile.TemporaryDirectory() as tmp:
        ingest(pdfs, Path(tmp) / "out")
        ours = ours_texts(Path(tmp) / "out")
    rows = []
    total = Counter()
    print(f"{'manual':<10} {'pages':>5} {'sentences':>9} | {'recall plain':>12} {'-running':>8} {'ours':>6} | "
          f"{'integrity plain':>15} {'ours':>6} | {'hdr/ftr plain':>13} {'ours':>5}")  # fmt: skip
    for p in pdfs:
        words, sentences = html_reference(Path(args.html) / f"{p.stem}.html")
        pages = plain_pages(str(p))
        plain = "\n".join(pages)
        titles, numbers = running_lines(pages)
        r0, s0 = score(plain, words, sentences)
        r1, s1 = score(ours[p.stem], words, sentences)
        running = set(titles) | numbers  # the plain text less its running lines: where its extra recall comes from
        r2, _ = score("\n".join(line for line in plain.splitlines() if line.strip() not in running), words, sentences)
        l0, l1 = leakage(plain, titles, numbers), leakage(ours[p.stem], titles, numbers)
        rows.append((p.stem, len(pages), len(sentences), r0, r1, s0, s1, l0, l1))
        for k, v in zip(("pages", "sentences", "words", "r0", "r1", "r2", "s0", "s1", "l0", "l1"),
                        (len(pages), len(sentences), len(words), r0 * len(words), r1 * len(words), r2 * len(words),
                         s0 * len(sentences), s1 * len(sentences), l0, l1)):  # fmt: skip
            total[k] += v
        print(f"{p.stem:<10} {len(pages):>5} {len(sentences):>9} | {r0:>12.3f} {r2:>8.3f} {r1:>6.3f} | {s0:>15.3f} {s1:>6.3f} | {l0:>13} {l1:>5}")
    w, s = total["words"], total["sentences"]
    print(f"{'all':<10} {total['pages']:>5} {s:>9} | {total['r0'] / w:>12.4f} {total['r2'] / w:>8.4f} {total['r1'] / w:>6.4f} | "
          f"{total['s0'] / s:>15.3f} {total['s1'] / s:>6.3f} | {total['l0']:>13} {total['l1']:>5}")  # fmt: skip


def _plain_file(path: str) -> int:
    return len(plain_pages(path))


def cmd_speed(args) -> None:
    import pypdfium2 as pdfium

    pdfs = sorted(str(p) for p in Path(args.pdf).glob("*.pdf"))
    n_pages = sum(len(pdfium.PdfDocument(p)) for p in pdfs)
    if args.in_process:  # the extraction alone, one process, no start-up, Parquet or card
        from corpus.ingest.pdf import extract_pdf

        plain_t, ours_t = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for p in pdfs:
                plain_pages(p)
            plain_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            for p in pdfs:
                extract_pdf(p, 100_000, 1 << 40)
            ours_t.append(time.perf_counter() - start)
        p, o = statistics.median(plain_t), statistics.median(ours_t)
        print(f"in process, 1 process: plain {n_pages / p:,.0f} pages/s, ours (extract_pdf) {n_pages / o:,.0f} pages/s, "
              f"ours / plain {p / o:.2f}; load {open('/proc/loadavg').read().split()[:3]}")  # fmt: skip
        record("pdf ingest", f"pages/s, extraction alone, one process, {n_pages:,} pages", n_pages / o, n_pages / p,
               "plain pypdfium2 text", "pages/s", rounds=args.rounds)
        return
    plain_t, ours_t = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(_plain_file, pdfs))
        plain_t.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            ours_t.append(ingest(pdfs, Path(tmp) / "out", args.workers))
    p, o = statistics.median(plain_t), statistics.median(ours_t)
    print(f"{len(pdfs)} PDFs, {n_pages} pages, {args.workers} workers, median of {args.rounds}; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"plain pypdfium2 text, {args.workers} processes: {p:.2f} s, {n_pages / p:,.0f} pages/s  (runs {', '.join(f'{t:.2f}' for t in plain_t)})")
    print(f"corpus ingest, whole command:      {o:.2f} s, {n_pages / o:,.0f} pages/s  (runs {', '.join(f'{t:.2f}' for t in ours_t)})")
    print(f"ours / plain: {p / o:.2f}")
    record("pdf ingest", f"pages/s whole command, {len(pdfs)} PDFs, {n_pages:,} pages, {args.workers} workers", n_pages / o, n_pages / p,
           "plain pypdfium2 text", "pages/s", target=0.8, rounds=args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--pdf", required=True)
    q.add_argument("--html", required=True)
    q.set_defaults(func=cmd_quality)
    s = sub.add_parser("speed")
    s.add_argument("--pdf", required=True)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--in-process", action="store_true", help="time the extraction alone, in this process")
    s.set_defaults(func=cmd_speed)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
