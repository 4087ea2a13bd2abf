"""`make bench`: every side-by-side benchmark at a reduced size, one table of ours / peer per stage.

Each benchmark runs as its own process, as it would by hand, with BENCH_SUMMARY pointing at a file
that it appends its measurements to (benchmarks/summary.py); its full output goes to
OUT/logs/NAME.log. The table is printed at the end and written to OUT/summary.md, with the load
average each figure was measured under. The full-size figures, with their commands, are in
benchmarks/README.md; these reduced runs are for spotting a regression before it lands, and the
ratios at reduced sizes are not the targets' sizes (start-up weighs more in a small run).

    .venv/bin/python benchmarks/bench_quick.py [--only dedup filter ...] [--out benchmarks/out/quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable

# name -> (commands run in order, what they measure); every command runs from the repository root.
BENCHMARKS: dict[str, tuple[list[list[str]], str]] = {
    "dedup-speed": ([[PY, "benchmarks/dedup_speed.py", "--docs", "20000", "--rounds", "3", "--datasketch-max", "0", "--work", "{out}/dedup-speed"]],
                    "documents/s end to end, 20k documents, 2 workers, vs datatrove's MinHash stages"),
    "dedup-quality": ([[PY, "benchmarks/make_neardup_set.py", "--out", "{out}/neardup.jsonl", "--bases", "300"],
                       [PY, "benchmarks/dedup_quality.py", "--set", "{out}/neardup.jsonl", "--work", "{out}/dedup-quality",
                        "--sweep", "--sets", "generated", "clough"]],
                      "F1 of duplicate pairs vs datatrove's MinHash"),
    "filter": ([[PY, "benchmarks/bench_filter.py", "--whole-process", "3000,29280", "--rounds", "3", "--work", "{out}/filter"]],
               "documents/s, whole process, 2 workers, vs datatrove's Gopher + C4 + FineWeb chain"),
    "tokenize": ([[PY, "benchmarks/bench_tokenize.py", "--rounds", "3", "--tasks", "2", "--work", "{out}/tokenize"]],
                 "MB/s vs datatrove's DocumentTokenizer and raw encode_batch"),
    "decontaminate": ([[PY, "benchmarks/bench_decontaminate.py", "--docs", "5000", "--per-form", "50", "--work", "{out}/decontaminate"]],
                      "documents/s vs a plain-Python 13-gram set"),
    "classify": ([[PY, "benchmarks/bench_classify.py", "speed", "--docs", "20000", "--rounds", "3", "--work", "{out}/classify"]],
                 "documents/s vs datatrove's FastTextClassifierFilter"),
    "pretrain": ([[PY, "benchmarks/bench_pretrain.py", "--presets", "tiny", "--steps", "8", "--rounds", "3", "--threads", "1", "--clock", "cpu"]],
                 "tokens/s vs a plain PyTorch loop on the same model and batches"),
    # real PDFs are not bundled: with --pdf DIR (e.g. the R manuals, see RESULTS-pdf.md)
    "pdf": ([[PY, "benchmarks/bench_pdf.py", "speed", "--pdf", "{pdf}", "--rounds", "3"]],
            "pages/s of corpus ingest vs the plain pypdfium2 text (needs --pdf DIR)"),
}


def run(name: str, commands: list[list[str]], out: Path, summary: Path, pdf: Path | None) -> tuple[bool, float]:
    log = out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_SUMMARY": str(summary), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as f:
        for command in commands:
            command = [part.format(out=out, pdf=pdf) for part in command]
            f.write("$ " + " ".join(command) + "\n")
            f.flush()
            done = subprocess.run(command, cwd=HERE.parent, env=env, stdout=f, stderr=subprocess.STDOUT)
            if done.returncode:
                return False, time.perf_counter() - started
    return True, time.perf_counter() - started


def number(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def table(rows: list[dict]) -> str:
    # the targets are set at full size (benchmarks/README.md); a reduced run is read against them, not judged
    lines = ["| stage | measure | ours | peer | ours / peer | target at full size | load |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        target = "" if r["target"] is None else f">= {r['target']:g}x"
        lines.append(f"| {r['stage']} | {r['measure']} | {number(r['ours'])} {r['unit']} | {number(r['peer'])} ({r['peer_name']}) "
                     f"| {r['ratio']:.2f}x | {target} | {r['load']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "quick")
    parser.add_argument("--pdf", type=Path, help="a folder of real PDFs for the PDF ingest benchmark (skipped without it)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.jsonl"
    summary.unlink(missing_ok=True)
    failed = []
    for name in args.only or list(BENCHMARKS):
        commands, what = BENCHMARKS[name]
        if name == "pdf" and args.pdf is None:
            print(f"{name}: skipped (no --pdf DIR of real PDFs)")
            continue
        print(f"{name}: {what} ...", end=" ", flush=True)
        ok, seconds = run(name, commands, out, summary, args.pdf.resolve() if args.pdf else None)
        print(f"{'done' if ok else 'FAILED'} in {seconds:.0f} s (log: {out / 'logs' / (name + '.log')})", flush=True)
        if not ok:
            failed.append(name)
    rows = [json.loads(line) for line in summary.read_text(encoding="utf-8").splitlines()] if summary.exists() else []
    text = table(rows)
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    print("\n" + text)
    if failed:
        print(f"\nfailed: {', '.join(failed)} (see their logs)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
