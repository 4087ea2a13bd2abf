"""End-to-end dedup speed, ours vs datatrove 0.10.1's four MinHash stages, same documents, 2 workers.

    .venv/bin/python benchmarks/dedup_speed.py --docs 20000 200000

Documents are about 2.2 KB, made of random real sentences from ../shared/data (10% near copies).
Both read the same Parquet files and write Parquet; both use 5-grams and 14 x 8 permutations.
Ours runs with its default verification of candidate pairs (real shingle Jaccard >= 0.7), which
datatrove does not do; one more run with --no-verify shows what verification costs.
Ours runs before and after datatrove (the machine is shared: the two timings show the noise) and
the ratio uses their mean. datasketch (one process, it has no executor; `pip install -e .[bench]`)
runs on --datasketch-max documents at most. Ours is timed as a command (`corpus dedup`, interpreter
start to exit); datatrove's four executors run from this already-started process.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_common import run_datasketch, run_datatrove, run_ours, synthetic_docs, write_dataset  # noqa: E402
from summary import median, record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="dedup speed: ours vs datatrove")
    parser.add_argument("--docs", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--work", default="benchmarks/out/speed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--datasketch-max", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="ours and datatrove alternate this many times; medians are reported")
    args = parser.parse_args()
    work = Path(args.work)
    rows = []
    for n in args.docs:
        keys, texts = synthetic_docs(n, seed=n)
        mean_kb = sum(len(t.encode()) for t in texts) / n / 1024
        dataset = write_dataset(work / f"in-{n}", keys, texts, files=2 * args.workers)
        os.sync()  # the inputs on disk before any timing: no write-back competes with the first run
        ours_runs, datatrove_runs = [], []
        for _ in range(args.rounds):  # alternating, so both see the same machine load
            ours_runs.append(run_ours(dataset, work / f"ours-{n}", ["--mode", "minhash"], tasks=args.workers, workers=args.workers))
            datatrove_runs.append(run_datatrove(dataset, work / f"datatrove-{n}", 5, 14, 8, tasks=args.workers, workers=args.workers))
        both = run_ours(dataset, work / f"ours-both-{n}", ["--mode", "both"], tasks=args.workers, workers=args.workers)
        unverified = run_ours(dataset, work / f"ours-nv-{n}", ["--mode", "minhash", "--no-verify"], tasks=args.workers,
                              workers=args.workers)  # fmt: skip
        sketch = run_datasketch(keys, texts, 5, 14, 8)[1] if n <= args.datasketch_max else None
        ours, datatrove = median(ours_runs), median(datatrove_runs)
        rows.append((n, mean_kb, ours_runs, both, unverified, datatrove, sketch, ours))
        record("dedup", f"documents/s end to end, {n:,} documents, 2 workers, verified", n / ours, n / datatrove,
               "datatrove MinHash", "docs/s", target=10, rounds=args.rounds)
        print(
            f"{n} docs ({mean_kb:.2f} KB): ours minhash {', '.join(f'{t:.2f}s' for t in ours_runs)}, ours both {both:.2f}s, "
            f"ours --no-verify {unverified:.2f}s, datatrove {', '.join(f'{t:.1f}s' for t in datatrove_runs)}"
            + (f", datasketch {sketch:.1f}s" if sketch else ""),
            file=sys.stderr,
            flush=True,
        )
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{args.workers} workers; documents per second, end to end (signatures to filtered Parquet output); "
          f"load average at the end (1/5/15 min): {load}\n")  # fmt: skip
    print(f"| docs | KB/doc | ours minhash, verified (median of {args.rounds}) | ours exact+minhash | ours --no-verify | datatrove 0.10.1 (median) "
          "| datasketch | ours / datatrove |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, kb, ours_runs, both, unverified, datatrove, sketch, ours in rows:
        sk = f"{n / sketch:,.0f}" if sketch else "not run"
        print(
            f"| {n:,} | {kb:.2f} | {n / ours:,.0f} | {n / both:,.0f} | {n / unverified:,.0f} "
            f"| {n / datatrove:,.0f} | {sk} | {datatrove / ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
