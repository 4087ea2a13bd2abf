"""Tokenization throughput, whole processes: `corpus tokenize` vs datatrove's DocumentTokenizer vs raw `encode_batch`.

Same text (the healthcare.gov pages and the Python 3.11 docs from ../shared, ingested with
`corpus ingest`: two Parquet files of 6.4 and 5.5 MB), same 32k byte-level BPE (trained with
`corpus tokenizer train`), same thread count (RAYON_NUM_THREADS, default 2). Every method is a fresh
process timed from its start to its exit (interpreter, imports, reading the Parquet input, loading
the tokenizer, writing the output); methods are interleaved round by round so machine noise hits
them alike, and the median of the rounds is used. MB are MB of UTF-8 text. CPU seconds are those of
the process and the children it waited for (datatrove's workers are not among them: n/a).

    .venv/bin/python benchmarks/bench_tokenize.py [--rounds 3] [--tasks 2] [--repeat 1] [--work /tmp/bench-tokenize]

- raw encode_batch:   read the texts with pyarrow, `Tokenizer.encode_batch` in one call on all of them,
                      take every document's ids (`.ids`, as any writer must), write nothing
- corpus tokenize:    `corpus tokenize --tasks N` (local executor): finished shards, sha256, index.json, card
- datatrove:          datatrove's LocalPipelineExecutor, N tasks and workers: ParquetReader ->
                      DocumentTokenizer (the same tokenizer.json, EOS, shuffle on, its default batch
                      of 10,000 documents) -> .ds files; its DocumentTokenizerMerger is not run

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary import record  # noqa: E402

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


def cpu_seconds() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


RAW = """
import sys, pyarrow.parquet as pq
from tokenizers import Tokenizer
texts = [t for f in sys.argv[2:] for t in pq.read_table(f, columns=["text"]).column(0).to_pylist() if t and t.strip()]
ids = [e.ids for e in Tokenizer.from_file(sys.argv[1]).encode_batch(texts, add_special_tokens=False)]
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizer
input_dir, out, tokenizer, tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LocalPipelineExecutor([
    ParquetReader(input_dir, glob_pattern="*.parquet", text_key="text", id_key="id"),
    DocumentTokenizer(out + "/tokens", tokenizer_name_or_path=tokenizer, eos_token="<|end_of_text|>", shuffle_documents=True),
], tasks=tasks, workers=tasks, logging_dir=out + "/logs").run()
"""


def throughput(args) -> None:
    import pyarrow.parquet as pq

    work = Path(args.work)
    datasets, tokdir = prepare(work, args.vocab_size, args.repeat)
    files = [f for d in datasets for f in sorted((d / "data").glob("*.parquet"))]
    texts = [t for f in files for t in pq.read_table(f, columns=["text"]).column(0).to_pylist() if t and t.strip()]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    del texts
    # datatrove's ParquetReader reads one folder: the same files, linked into one
    flat = work / f"flat-x{args.repeat}"
    shutil.rmtree(flat, ignore_errors=True)
    flat.mkdir(parents=True)
    for k, f in enumerate(files):
        os.link(f, flat / f"{k:03d}-{f.name}")
    out = work / "out"
    tasks = str(args.tasks)
    tok_json = str(tokdir / "tokenizer.json")
    common = [*map(str, datasets), "--tokenizer", str(tokdir), "--overwrite"]
    methods = {
        "raw encode_batch (one call)": [sys.executable, "-c", RAW, tok_json, *map(str, files)],
        f"corpus tokenize --tasks {tasks}": [*CORPUS, "tokenize", *common, "-o", str(out / "ours"), "--tasks", tasks],
        "corpus tokenize --tasks 1": [*CORPUS, "tokenize", *common, "-o", str(out / "ours-1"), "--tasks", "1"],
        f"datatrove DocumentTokenizer, {tasks} tasks": [sys.executable, "-c", DATATROVE, str(flat), str(out / "datatrove"), tok_json, tasks],
    }
    if tasks == "1":
        del methods["corpus tokenize --tasks 1"]
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    loads = []
    for r in range(args.rounds):
        for name, command in methods.items():
            shutil.rmtree(out / "datatrove", ignore_errors=True)
            cpu_start = cpu_seconds()
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds() - cpu_start)
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1} (load {loads[-1]:.2f}): " + ", ".join(f"{n} {mb / s[-1]:.2f} MB/s" for n, s in seconds.items()),
              file=sys.stderr)  # fmt: skip

    # Other work on a shared machine steals wall time unevenly; CPU seconds (all threads of each
    # process) are the steadier measure of how much work each method does.
    rate = {name: mb / statistics.median(s) for name, s in seconds.items()}
    cpu_rate = {name: mb / statistics.median(s) for name, s in cpu.items()}
    raw, ours, peer = list(methods)[0], list(methods)[1], list(methods)[-1]
    print(f"\n{mb:.1f} MB of text in {len(files)} Parquet files, {len(datasets)} datasets, {args.vocab_size:,}-token BPE, "
          f"RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}, {os.cpu_count()} CPUs, median of {args.rounds} rounds, "
          f"load average (1 min) after each round: {', '.join(f'{x:.2f}' for x in loads)}\n")  # fmt: skip
    # datatrove's workers are children of its forkserver, which is never waited for: their CPU time
    # does not reach this process, so its CPU column would be wrong
    print("| method (whole process) | seconds | MB/s (wall) | vs datatrove | vs raw encode_batch | MB per CPU-second | vs raw encode_batch |")
    print("|---|---|---|---|---|---|---|")
    for name in methods:
        cpu_cells = "n/a | n/a" if name == peer else f"{cpu_rate[name]:.2f} | {cpu_rate[name] / cpu_rate[raw]:.0%}"
        print(f"| {name} | {statistics.median(seconds[name]):.2f} | {rate[name]:.2f} | {rate[name] / rate[peer]:.2f}x | "
              f"{rate[name] / rate[raw]:.0%} | {cpu_cells} |")  # fmt: skip
    print(f"\n{ours} / datatrove: {rate[ours] / rate[peer]:.2f}x (wall); "
          f"vs raw encode_batch: {rate[ours] / rate[raw]:.0%} (wall), {cpu_rate[ours] / cpu_rate[raw]:.0%} (CPU)")  # fmt: skip
    record("tokenize", f"MB/s whole process, {mb:.1f} MB, {args.tasks} tasks", rate[ours], rate[peer], "datatrove DocumentTokenizer",
           "MB/s", target=1.3, rounds=args.rounds)
    record("tokenize", f"MB/s whole process, {mb:.1f} MB, {args.tasks} tasks", rate[ours], rate[raw], "raw encode_batch", "MB/s",
           target=0.95, rounds=args.rounds)


def peak_rss(args) -> None:
    work = Path(args.work)
    rows = []
    for repeat in (1, 10):
        datasets, tokdir = prepare(work, args.vocab_size, repeat)
        code = (
            "import resource, sys\n"
            "from corpus.progress import set_quiet\n"
            "from corpus.executors import ExecutorConfig\n"
            "from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset\n"
            "set_quiet(True)\n"
            f"card = tokenize_dataset({[str(d) for d in datasets]!r}, {str(work / 'out' / f'rss-x{repeat}')!r}, "
            f"TokenizeConfig(tokenizer={str(tokdir)!r}, shard_size_mb={args.shard_size_mb}), overwrite=True, "
            f"executor=ExecutorConfig(tasks={args.tasks}))\n"
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
    print(f"\npeak RSS of corpus tokenize, --shard-size-mb {args.shard_size_mb} --tasks {args.tasks}, one fresh process each "
          f"(the imports alone: {int(imports_only.stdout) / 1024:.0f} MB)\n")  # fmt: skip
    print("| input | Parquet MB | tokens | peak RSS MB | seconds |")
    print("|---|---|---|---|---|")
    for repeat, mb, tokens, rss, secs in rows:
        print(f"| {repeat}x | {mb:.1f} | {tokens:,} | {rss:.0f} | {secs:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/bench-tokenize", help="cache of ingested inputs and the tokenizer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2, help="tasks (and workers) for corpus tokenize and datatrove")
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
