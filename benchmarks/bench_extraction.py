"""HTML main-text extraction quality on trafilatura's evaluation pages, and speed.

For every page in ../shared/data/web/trafilatura-eval/evaldata.json, the extracted text must contain
the `with` snippets and must not contain the `without` snippets. Score = share of snippets on the
right side; we also report the two halves (with found, without absent) and pages per second.

"ours" is the text `corpus ingest` wrote for each page (the real command, end to end). The other
rows call extractors directly on the same pages, to show what the choice of settings costs:
datatrove's Trafilatura step settings (favour_precision, deduplicate) and resiliparse when installed.

    .venv/bin/python benchmarks/bench_extraction.py [--eval-dir ../shared/data/web/trafilatura-eval]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent


def score(text: str, with_snippets: list[str], without_snippets: list[str]) -> tuple[int, int, int, int]:
    found = sum(1 for s in with_snippets if s in text)
    absent = sum(1 for s in without_snippets if s not in text)
    return found, len(with_snippets), absent, len(without_snippets)


def ours(eval_dir: Path) -> tuple[dict[str, str], float]:
    """Run `corpus ingest` on the pages folder; map each page file to its extracted text."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pages"
        started = time.perf_counter()
        cmd = [str(Path(sys.executable).parent / "corpus"), "--quiet", "ingest", str(eval_dir / "pages"),
               "-o", str(out), "--source", "trafilatura_eval", "--domain", "web", "--tasks", "2"]  # fmt: skip
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - started
        texts: dict[str, str] = {}
        for kind in ("data", "rejected"):
            files = sorted((out / kind).glob("*.parquet"))
            if not files:
                continue
            df = pl.read_parquet(files)
            for meta, text, reason in zip(df["metadata"], df["text"], df["reason"] if "reason" in df.columns else [None] * df.height):
                path = Path(json.loads(meta)["path"]).name
                texts[path] = "" if reason else text
        return texts, seconds


def direct(eval_dir: Path, pages: list[str], extract) -> tuple[dict[str, str], float]:
    texts = {}
    started = time.perf_counter()
    for name in pages:
        html = (eval_dir / "pages" / name).read_bytes().decode("utf-8", errors="replace")
        try:
            texts[name] = extract(html) or ""
        except Exception:
            texts[name] = ""
    return texts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "data" / "web" / "trafilatura-eval")
    args = parser.parse_args()
    evaldata = json.loads((args.eval_dir / "evaldata.json").read_text())
    cases = [v for v in evaldata.values() if (args.eval_dir / "pages" / v["file"]).exists()]
    pages = [c["file"] for c in cases]

    rows = {}
    rows["ours: corpus ingest (trafilatura, favor_precision, 2 tasks)"] = ours(args.eval_dir)

    import trafilatura

    rows["trafilatura.extract, default settings (1 process)"] = direct(args.eval_dir, pages, lambda h: trafilatura.extract(h))
    from datatrove.pipeline.extractors import Trafilatura

    dt = Trafilatura()  # datatrove's defaults: favour_precision=True, deduplicate=True
    rows["datatrove Trafilatura step settings (1 process)"] = direct(args.eval_dir, pages, dt.extract)
    try:
        from resiliparse.extract.html2text import extract_plain_text

        rows["resiliparse extract_plain_text(main_content=True) (1 process)"] = direct(
            args.eval_dir, pages, lambda h: extract_plain_text(h, main_content=True)
        )
    except ImportError:
        print("resiliparse not installed: its row is left out", file=sys.stderr)

    print(f"{len(cases)} pages, {sum(len(c['with']) for c in cases)} 'with' and "
          f"{sum(len(c['without']) for c in cases)} 'without' snippets\n")  # fmt: skip
    print("| extractor | score | with found | without absent | pages/s |")
    print("|---|---|---|---|---|")
    for label, (texts, seconds) in rows.items():
        found = total_with = absent = total_without = 0
        for case in cases:
            f, tw, a, two = score(texts.get(case["file"], ""), case["with"], case["without"])
            found, total_with, absent, total_without = found + f, total_with + tw, absent + a, total_without + two
        total = (found + absent) / (total_with + total_without)
        print(f"| {label} | {total:.3f} | {found / total_with:.3f} | {absent / total_without:.3f} | {len(cases) / seconds:.1f} |")


if __name__ == "__main__":
    main()
