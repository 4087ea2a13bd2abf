"""Tokenization throughput: `corpus tokenize` vs raw `Tokenizer.encode_batch` vs datatrove's DocumentTokenizer.

Same text (the healthcare.gov pages and the Python 3.11 docs from ../shared, ingested with
`corpus ingest`), same 32k byte-level BPE (trained with `corpus tokenizer train`), same thread count
(RAYON_NUM_THREADS, default 2), one process, methods interleaved round by round so machine noise
hits all of them alike. Throughput is MB of UTF-8 text per second; the median of the rounds is used.

    .venv/bin/python benchmarks/bench_tokenize.py [--rounds 3] [--repeat 2] [--work /tmp/bench-tokenize]

- raw encode_batch:        `Tokenizer.encode_batch` on in-memory text in the same 2 MB batches, output discarded
- raw encode_batch, one call: the same on the whole text in a single call (datatrove's batching here)
- raw encode_batch_fast:   the same with `encode_batch_fast` (no character offsets), which ours uses
- corpus tokenize:         `tokenize_dataset()` in-process: Parquet in -> finished, checksummed shards + index + card
- corpus tokenize (CLI):   the same as a `corpus tokenize` subprocess, interpreter start-up included
- datatrove:               `DocumentTokenizer` (local tokenizer.json, shuffle on) on in-memory Documents -> .ds files

`--rss` instead measures peak RSS of `corpus tokenize` (each in a fresh process) on the input and
on the input repeated ten times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # before tokenizers starts its thread pool
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (or beside the folder of worktrees); CORPUS_SHARED overrides.
SHARED = Path(os.environ.get("CORPUS_SHARED") or next(
    (p / "shared" for p in (REPO.parent, REPO.parent.parent) if (p / "shared" / "data").is_dir()), REPO.parent / "shared"
)) / "data"
CORPUS = [sys.executable, "-m", "corpus.cli", "-q"]
SOURCES = [
    ("insurance", SHARED / "insurance" / "healthcare-gov-2013", "healthcare_gov_2013"),
    ("general", SHARED / "general" / "python-3.11-docs", "python_3_11_docs"),
]
BATCH_BYTES = 2_000_000


def prepare(work: Path, vocab_size: int, repeat: int) -> tuple[list[Path], Path]:
    """Dataset folders (ingested once, cached in `work`) and the 32k tokenizer."""
    work.mkdir(parents=True, exist_ok=True)
    datasets = []
    for domain, path, source in SOURCES:
        out = work / f"ds-{domain}"
        if not (out / "card.json").exists():
            subprocess.run([*CORPUS, "ingest", str(path), "-o", str(out), "--source", source, "--domain", domain, "--overwrite"], check=True)
        datasets.append(out)
    tokdir = work / f"tok-{vocab_size}"
    if not (tokdir / "card.json").exists():
        subprocess.run([*CORPUS, "tokenizer", "train", *map(str, datasets), "-o", str(tokdir), "--vocab-size", str(vocab_size),
                        "--no-compare", "--overwrite"], check=True)  # fmt: skip
    if repeat > 1:
        datasets = [repeated(d, work / f"{d.name}-x{repeat}", repeat) for d in datasets]
    return datasets, tokdir


def repeated(dataset: Path, out: Path, times: int) -> Path:
    """A dataset folder whose data/ holds the input's files `times` over (the same documents again)."""
    if (out / "card.json").exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    for k in range(times):
        for f in sorted((dataset / "data").glob("*.parquet")):
            os.link(f, out / "data" / f"r{k:02d}-{f.name}")
    shutil.copy(dataset / "card.json", out / "card.json")
    return out


def load_texts(datasets: list[Path]) -> list[str]:
    import pyarrow.parquet as pq

    texts = []
    for d in datasets:
        for f in sorted((d / "data").glob("*.parquet")):
            texts += pq.read_table(f, columns=["text"]).column(0).to_pylist()
    return texts


def text_batches(texts: list[str]) -> list[list[str]]:
    batches, batch, size = [], [], 0
    for t in texts:
        batch.append(t)
        size += len(t.encode("utf-8"))
        if size >= BATCH_BYTES:
            batches.append(batch)
            batch, size = [], 0
    return batches + ([batch] if batch else [])


def cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(args) -> None:
    from datatrove.data import Document
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.utils.logging import logger
    from tokenizers import Tokenizer

    from corpus.progress import set_quiet
    from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset

    set_quiet(True)
    work = Path(args.work)
    datasets, tokdir = prepare(work, args.vocab_size, args.repeat)
    texts = [t for t in load_texts(datasets) if t.strip()]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    tokenizer = Tokenizer.from_file(str(tokdir / "tokenizer.json"))
    batches = text_batches(texts)
    documents = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    out = work / "out"

    def raw_encode_batch():
        for batch in batches:
            tokenizer.encode_batch(batch, add_special_tokens=False)

    def raw_encode_batch_one_call():
        tokenizer.encode_batch(texts, add_special_tokens=False)

    def raw_encode_batch_fast():
        for batch in batches:
            tokenizer.encode_batch_fast(batch, add_special_tokens=False)

    def corpus_tokenize():
        tokenize_dataset([str(d) for d in datasets], out / "ours", TokenizeConfig(tokenizer=str(tokdir)), overwrite=True)

    def corpus_tokenize_cli():
        subprocess.run([*CORPUS, "tokenize", *map(str, datasets), "-o", str(out / "cli"), "--tokenizer", str(tokdir), "--overwrite"],
                       check=True)  # fmt: skip

    def datatrove_tokenizer():
        folder = out / "datatrove"
        shutil.rmtree(folder, ignore_errors=True)
        step = DocumentTokenizer(str(folder), tokenizer_name_or_path=str(tokdir / "tokenizer.json"), eos_token="<|end_of_text|>",
                                 shuffle_documents=True, save_final_metadata=False)  # fmt: skip
        logger.remove()  # its INFO lines are not part of the measurement
        for _ in step.run(iter(documents), rank=0, world_size=1) or []:
            pass

    methods = {
        "raw encode_batch": raw_encode_batch,
        "raw encode_batch, one call": raw_encode_batch_one_call,
        "raw encode_batch_fast": raw_encode_batch_fast,
        "corpus tokenize": corpus_tokenize,
        "corpus tokenize (CLI)": corpus_tokenize_cli,
        "datatrove DocumentTokenizer": datatrove_tokenizer,
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(args.rounds):
        for name, fn in methods.items():
            cpu_start = cpu_seconds()
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds() - cpu_start)
        print(f"round {r + 1}: " + ", ".join(f"{n} {mb / s[-1]:.2f}" for n, s in seconds.items()), file=sys.stderr)

    # Other work on a shared machine steals wall time unevenly; CPU seconds (all threads, and the
    # child process for the CLI) are the steadier measure of how much work each method does.
    rate = {name: mb / statistics.median(s) for name, s in seconds.items()}
    cpu_rate = {name: mb / statistics.median(s) for name, s in cpu.items()}
    base, cpu_base = rate["raw encode_batch"], cpu_rate["raw encode_batch"]
    print(f"\n{mb:.1f} MB of text, {len(texts):,} documents, {tokenizer.get_vocab_size():,}-token BPE, "
          f"RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}, median of {args.rounds} rounds\n")  # fmt: skip
    print("| method | MB/s (wall) | vs raw encode_batch | MB per CPU-second | vs raw encode_batch |")
    print("|---|---|---|---|---|")
    for name in methods:
        print(f"| {name} | {rate[name]:.2f} | {rate[name] / base:.0%} | {cpu_rate[name]:.2f} | {cpu_rate[name] / cpu_base:.0%} |")
    ours, peer = "corpus tokenize", "datatrove DocumentTokenizer"
    print(f"\n{ours} / {peer}: {rate[ours] / rate[peer]:.2f}x (wall), {cpu_rate[ours] / cpu_rate[peer]:.2f}x (CPU)")


def peak_rss(args) -> None:
    work = Path(args.work)
    rows = []
    for repeat in (1, 10):
        datasets, tokdir = prepare(work, args.vocab_size, repeat)
        code = (
            "import resource, sys\n"
            "from corpus.progress import set_quiet\n"
            "from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset\n"
            "set_quiet(True)\n"
            f"card = tokenize_dataset({[str(d) for d in datasets]!r}, {str(work / 'out' / f'rss-x{repeat}')!r}, "
            f"TokenizeConfig(tokenizer={str(tokdir)!r}, shard_size_mb={args.shard_size_mb}), overwrite=True)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, card['stats']['tokens'])\n"
        )
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        rss_kb, tokens = map(int, result.stdout.split())
        mb = sum(f.stat().st_size for d in datasets for f in (d / "data").glob("*.parquet")) / 1e6
        rows.append((repeat, mb, tokens, rss_kb / 1024, time.perf_counter() - start))
    imports_only = subprocess.run(
        [sys.executable, "-c", "import resource, corpus.tokenize.shards, corpus.execution, tokenizers\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"], check=True, capture_output=True, text=True,
    )  # fmt: skip
    print(f"\npeak RSS of corpus tokenize, --shard-size-mb {args.shard_size_mb}, one fresh process each "
          f"(the imports alone: {int(imports_only.stdout) / 1024:.0f} MB)\n")  # fmt: skip
    print("| input | Parquet MB | tokens | peak RSS MB | seconds |")
    print("|---|---|---|---|---|")
    for repeat, mb, tokens, rss, secs in rows:
        print(f"| {repeat}x | {mb:.1f} | {tokens:,} | {rss:.0f} | {secs:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/bench-tokenize", help="cache of ingested inputs and the tokenizer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="use the input this many times over")
    parser.add_argument("--vocab-size", type=int, default=32_000)
    parser.add_argument("--rss", action="store_true", help="measure peak RSS at 1x and 10x instead")
    parser.add_argument("--shard-size-mb", type=float, default=16, help="shard size for --rss")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} not found: this benchmark reads ../shared/data")
    peak_rss(args) if args.rss else throughput(args)


if __name__ == "__main__":
    main()
