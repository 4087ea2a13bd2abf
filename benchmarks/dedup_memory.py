"""Peak memory of `corpus dedup` at 100k, 300k and 1M synthetic documents of about 2 KB.

    .venv/bin/python benchmarks/dedup_memory.py --docs 100000 300000 1000000

The documents are random real sentences from ../shared/data (10% near copies), in 20 Parquet
files. Memory is the peak of the summed RSS of the command and all its worker processes (sampled
every 0.1 s; shared pages are counted once per process, so this overstates), and the peak of the
largest single process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_common import CORPUS, measured_run, synthetic_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="dedup peak memory")
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--work", default="benchmarks/out/memory")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", default="both")
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs and outputs")
    args = parser.parse_args()
    work = Path(args.work)
    rows = []
    for n in args.docs:
        dataset = synthetic_dataset(work / f"in-{n}", n, files=20, seed=n)
        out = work / f"out-{n}"
        cmd = [*CORPUS, "-q", "dedup", str(dataset), "-o", str(out), "--overwrite", "--mode", args.mode,
               "--tasks", str(args.workers), "--workers", str(args.workers)]
        seconds, total, single = measured_run(cmd)
        rows.append((n, seconds, total, single))
        print(f"{n} docs: {seconds:.1f}s, peak RSS summed {total / 2**30:.2f} GiB, largest process {single / 2**30:.2f} GiB",
              file=sys.stderr, flush=True)
        if not args.keep:
            import shutil

            shutil.rmtree(dataset)
            shutil.rmtree(out)
    print(f"\n`corpus dedup --mode {args.mode}`, {args.workers} workers\n")
    print("| docs | seconds | docs/s | peak RSS, all processes | peak RSS, largest process |")
    print("|---:|---:|---:|---:|---:|")
    for n, seconds, total, single in rows:
        print(f"| {n:,} | {seconds:.1f} | {n / seconds:,.0f} | {total / 2**30:.2f} GiB | {single / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
