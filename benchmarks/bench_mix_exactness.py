"""Achieved vs target token shares of `corpus mix` on the bundled sample, over budgets and seeds.

    python benchmarks/bench_mix_exactness.py --work /tmp/mixexact

Ingests sample/insurance (healthcare.gov) and sample/general (Python docs), trains a 2,000-token
BPE as the target tokenizer, then mixes insurance=0.3,general=0.7 at several token budgets (from
down-sampling to up-sampling with repeats) and seeds, and prints one table row per run, measured on
the written data/ (n_tokens summed per domain).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from corpus.cli import main as corpus
    from corpus.document import data_files, read_card

    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--budgets", default="100k,300k,1M,2M")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "ins").exists():
        corpus(["-q", "ingest", str(REPO / "sample/insurance"), "-o", str(work / "ins"), "--source", "healthcare_gov", "--domain", "insurance"])
        corpus(["-q", "ingest", str(REPO / "sample/general"), "-o", str(work / "gen"), "--source", "python_docs", "--domain", "general"])
    if not (work / "tok").exists():
        corpus(["-q", "tokenizer", "train", str(work / "ins"), str(work / "gen"), "-o", str(work / "tok"), "--vocab-size", "2000", "--no-compare"])
    print("| budget (tokens) | seed | achieved tokens | insurance share | general share | max error (pp) | repeated copies |")
    print("|---|---|---|---|---|---|---|")
    for budget in args.budgets.split(","):
        for seed in range(args.seeds):
            out = work / f"mix-{budget}-{seed}"
            code = corpus(["-q", "mix", str(work / "ins"), str(work / "gen"), "-o", str(out), "--overwrite", "--budget-tokens", budget,
                           "--tokenizer", str(work / "tok"), "--weights", "insurance=0.3,general=0.7", "--seed", str(seed)])  # fmt: skip
            if code:
                print(f"| {budget} | {seed} | error (exit {code}) | | | | |")
                continue
            data = pl.concat([pl.read_parquet(f, columns=["domain", "n_tokens"]) for f in data_files(out)])
            per = dict(data.group_by("domain").agg(pl.col("n_tokens").sum()).iter_rows())
            total = sum(per.values())
            ins, gen = per.get("insurance", 0) / total, per.get("general", 0) / total
            error = 100 * max(abs(ins - 0.3), abs(gen - 0.7))
            repeats = read_card(out)["stage_facts"]["mix"]["repeated_copies"]
            print(f"| {budget} | {seed} | {total:,} | {100 * ins:.3f}% | {100 * gen:.3f}% | {error:.3f} | {repeats:,} |")


if __name__ == "__main__":
    main()
