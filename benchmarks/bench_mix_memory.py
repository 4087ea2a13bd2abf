"""Peak memory of `corpus mix` on a synthetic dataset of many tiny documents.

    python benchmarks/bench_mix_memory.py make  --docs 10000000 --out /tmp/mixbench/synthetic
    python benchmarks/bench_mix_memory.py mix   --input /tmp/mixbench/synthetic --out /tmp/mixbench/mixed \\
        --tokenizer TOKDIR --budget-tokens 50000000

`make` writes a dataset folder (files of 200,000 rows, 3 domains in 6 sources, texts of 40-200
bytes). `mix` runs the stage in this process and prints the peak resident memory (ru_maxrss, which
only grows) after each phase: reading the document table (ids, groups, sizes; token counts), the
plan, writing data/ and rejected/ (the datatrove task), measuring the achieved shares, and the
card (the foundation's statistics over the written texts). Texts are never held all at once; the document table
costs about 40 bytes per document.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = np.array("policy premium deductible claim coverage python function module class general insurance "
                 "network plan member benefit data text model token list value error system user".split())  # fmt: skip
DOMAINS = ["insurance", "finance", "general"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make(docs: int, out: Path, rows_per_file: int = 200_000, seed: int = 0) -> None:
    from corpus.cards import write_card
    from corpus.document import DATA_DIR, DOCUMENT_SCHEMA, PartWriter

    rng = np.random.default_rng(seed)
    writer = PartWriter(out / DATA_DIR, 0, max_rows_per_file=rows_per_file)
    for start in range(0, docs, rows_per_file):
        n = min(rows_per_file, docs - start)
        length = rng.integers(6, 30, n)
        words = WORDS[rng.integers(0, len(WORDS), int(length.sum()))]
        offsets = np.concatenate([[0], np.cumsum(length)])
        texts = [f"document {start + i}: " + " ".join(words[offsets[i] : offsets[i + 1]]) for i in range(n)]
        domain = rng.choice(3, n, p=[0.2, 0.1, 0.7])
        source = domain * 2 + rng.integers(0, 2, n)
        table = pa.table(
            {
                "id": [f"{start + i:032x}" for i in range(n)],
                "text": pa.array(texts, pa.large_string()),
                "source": [f"src{s}" for s in source],
                "domain": [DOMAINS[d] for d in domain],
                "url": pa.nulls(n, pa.string()),
                "lang": ["en"] * n,
                "lang_score": pa.array(np.ones(n, np.float32)),
                "metadata": ["{}"] * n,
            },
            schema=DOCUMENT_SCHEMA,
        )
        writer.write(table)
    writer.close()
    write_card(out, name=out.name, stage="ingest", config={"synthetic": True}, inputs=[],
               accounting={"stage": "ingest", "docs_in": docs, "kept": docs, "rejected": {}}, stage_facts={},
               executor={}, fingerprint="synthetic", command=sys.argv, pipeline_file=None)  # fmt: skip


def mix(args) -> dict:
    import corpus.mix.stage as stage
    from corpus.execution import run_stage
    from corpus.executors import ExecutorConfig

    config = stage.MixConfig(budget_tokens=args.budget_tokens, budget_docs=args.budget_docs, tokenizer=args.tokenizer,
                             estimate_sample=args.estimate_sample, weights={"insurance": 0.3, "finance": 0.2, "general": 0.5}, max_epochs=4)  # fmt: skip
    executor = ExecutorConfig(tasks=args.tasks)
    phases, seconds = {"start": peak_mb()}, {}
    clock = [time.time()]

    def mark(name: str) -> None:
        phases[name] = peak_mb()
        seconds[name] = round(time.time() - clock[0], 1)
        clock[0] = time.time()

    read_document_table = stage.read_document_table

    def read_and_mark(*a, **k):
        table = read_document_table(*a, **k)
        mark("document_table")
        return table

    class MarkedPlan(stage.MixPlan):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            mark("plan")

        def achieved_facts(self, *a, **k):  # run_stage calls it after the tasks, before the card
            mark("write_data")
            facts = super().achieved_facts(*a, **k)
            mark("achieved_facts")
            return facts

    stage.read_document_table, stage.MixPlan = read_and_mark, MarkedPlan  # the job as `corpus mix` builds it
    job = stage.mix_job([args.input], "bench", config, args.out, executor, overwrite=True, progress=False)
    card = run_stage(job, args.out, executor, overwrite=True, command=sys.argv)
    mark("card")
    result = {
        "docs": card["accounting"][-1]["docs_in"],
        "peak_rss_mb_after": {k: round(v) for k, v in phases.items()},
        "seconds": seconds,
        "mix_shares": card["stage_facts"]["mix_shares"],
        "accounting": card["accounting"][-1],
        "rows_in_data": card["stage_facts"]["mix"]["rows_in_data"],
        "token_counts": {k: v for k, v in card["stage_facts"]["token_counts"].items() if k != "tokenizer"},
    }
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make")
    p.add_argument("--docs", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("mix")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer")
    p.add_argument("--budget-tokens", type=int)
    p.add_argument("--budget-docs", type=int)
    p.add_argument("--tasks", type=int, default=1)
    p.add_argument("--estimate-sample", type=int)
    args = parser.parse_args()
    if args.command == "make":
        make(args.docs, args.out)
    else:
        mix(args)


if __name__ == "__main__":
    main()
