"""Quality rules: datatrove's four filters vs our `filter` stage, same documents, thresholds, 2 workers.

Documents: the bundled sample (sample/), ../shared/data/sft/llama-factory/c4_demo.jsonl and the
trafilatura-eval pages' extracted text, each ingested with our ingest stage. Both sides run as
datatrove pipelines on the local executor with 2 tasks and 2 workers, reading the same Parquet
files and writing Parquet:

    datatrove: ParquetReader -> GopherQuality -> GopherRepetition -> C4Quality -> FineWebQuality -> ParquetWriter
    ours:      corpus filter, profile web-strict (sanitiser and language ID off; rules decided for every language)

datatrove's filters get a regex WordTokenizer (the same splitting as ours: corpus.filter.words), so
both run offline and split words the same way; their thresholds are datatrove 0.10.1's defaults,
which are our web-strict profile (the default `general` profile judges other things: docs/filter.md). 1,464 documents are too few for a stable timing, so the set is repeated
(--repeat, default 30) with the copies' ids made unique. Runs alternate datatrove / ours and the
best of --rounds is reported for each. Decision agreement is counted over the distinct documents.

    .venv/bin/python benchmarks/bench_filter.py [--repeat 30] [--rounds 2] [--work /tmp/bench_filter]

`--whole-process 3000,29280,87840` times instead each side as a fresh process, start-up included, at
each size (the documents repeated, then cut to the size): our `corpus filter` command line vs a
Python script running datatrove's chain, both 2 tasks and 2 workers on the same Parquet input,
median of --rounds (at least 3), with the load average before each size and the agreement check.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (or beside its parent, for a worktree one level deeper)
SHARED = next((p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "data").is_dir()), ROOT.parent / "shared" / "data")
sys.path.insert(0, str(ROOT))

from corpus.execution import run_stage  # noqa: E402
from corpus.executors import ExecutorConfig, configure_main_logging  # noqa: E402
from corpus.progress import set_quiet  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summary import record  # noqa: E402

SOURCES = [
    {"paths": [str(ROOT / "sample" / "insurance" / "healthcare-gov-2013")], "source": "healthcare_gov_2013", "domain": "insurance"},
    {"paths": [str(ROOT / "sample" / "general" / "python-3.11-docs")], "source": "python_3_11_docs", "domain": "general"},
    {"paths": [str(SHARED / "sft" / "llama-factory" / "c4_demo.jsonl")], "source": "c4_demo", "domain": "web"},
    {"paths": [str(SHARED / "web" / "trafilatura-eval" / "pages")], "source": "trafilatura_eval", "domain": "web", "format": "html"},
]


def cpu_seconds() -> float:
    """CPU time of this process plus its pool workers so far.

    datatrove's local executor starts its workers from multiprocess's forkserver, which reaps them, so
    their CPU time shows up as the forkserver's children's time (cutime + cstime in /proc/PID/stat).
    On a shared machine this is steadier than wall-clock time.
    """
    import os

    import multiprocess.forkserver as forkserver

    own = time.process_time()
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if not pid:
        return own
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return own + (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def ingest_all(work: Path) -> pl.DataFrame:
    from corpus.ingest import ingest_job

    frames = []
    for spec in SOURCES:
        out = work / "ingested" / spec["source"]
        if not (out / "card.json").exists():
            job = ingest_job([{"format": "auto", "text_key": "text", **spec}], spec["source"], progress=False)
            run_stage(job, out, ExecutorConfig(tasks=2, workers=2))
        frames.append(pl.read_parquet(out / "data"))
    return pl.concat(frames, how="diagonal_relaxed")


def write_input(docs: pl.DataFrame, repeat: int, folder: Path, size: int | None = None) -> int:
    """A dataset folder with the documents repeated (the first `size` of the copies), in two files (one per task)."""
    import json

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    copies = pl.concat([docs.with_columns(pl.format("{}-{}", pl.int_range(pl.len()), pl.lit(i)).alias("id")) for i in range(repeat)])
    if size is not None:
        copies = copies.head(size)
    half = copies.height // 2
    for rank, part in enumerate((copies.slice(0, half), copies.slice(half))):
        table = part.to_arrow().cast(pa.schema([f if f.name != "text" else pa.field("text", pa.large_string()) for f in part.to_arrow().schema]))
        pq.write_table(table, folder / "data" / f"part-{rank:05d}-0000.parquet")
    (folder / "card.json").write_text(json.dumps({"name": "bench_filter_input", "stage": "bench", "accounting": []}))
    return copies.height


def _id_and_text(writer, document) -> dict:
    return {"id": document.id, "text": document.text}


def run_datatrove(input_data: Path, out: Path) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from corpus.filter.words import RegexWordTokenizer

    if out.exists():
        shutil.rmtree(out)
    tok = RegexWordTokenizer()
    pipeline = [
        ParquetReader(str(input_data), text_key="text", id_key="id", read_metadata=False),
        GopherQualityFilter(language=tok),
        GopherRepetitionFilter(language=tok),
        C4QualityFilter(language=tok),
        FineWebQualityFilter(language=tok),
        ParquetWriter(str(out / "kept"), output_filename="${rank}.parquet", adapter=_id_and_text),
    ]
    configure_main_logging()  # datatrove's INFO summary would flood the output
    started = time.perf_counter()
    LocalPipelineExecutor(pipeline, tasks=2, workers=2, logging_dir=str(out / "logs")).run()
    return time.perf_counter() - started


def our_config():
    from corpus.filter.config import FilterConfig

    # datatrove's chain is the web-strict profile (the general one judges other things)
    return FilterConfig.model_validate({"profile": "web-strict", "sanitise": {"enabled": False}, "langid": {"enabled": False},
                                        "quality": {"languages": None}})  # fmt: skip


def run_ours(input_folder: Path, out: Path) -> float:
    from corpus.filter.stage import filter_job

    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    run_stage(filter_job([str(input_folder)], "bench", our_config(), progress=False), out, ExecutorConfig(tasks=2, workers=2))
    return time.perf_counter() - started


# datatrove's chain as a script of its own, for the whole-process timing: its imports and nothing of ours but the tokenizer
DATATROVE_SCRIPT = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from corpus.filter.words import RegexWordTokenizer


def id_and_text(writer, document):
    return {"id": document.id, "text": document.text}


if __name__ == "__main__":
    tok = RegexWordTokenizer()
    LocalPipelineExecutor([
        ParquetReader(sys.argv[1], text_key="text", id_key="id", read_metadata=False),
        GopherQualityFilter(language=tok), GopherRepetitionFilter(language=tok),
        C4QualityFilter(language=tok), FineWebQualityFilter(language=tok),
        ParquetWriter(sys.argv[2] + "/kept", output_filename="${rank}.parquet", adapter=id_and_text),
    ], tasks=2, workers=2, logging_dir=sys.argv[2] + "/logs", skip_completed=False).run()
"""

OUR_CONFIG_YAML = "profile: web-strict\nsanitise: {enabled: false}\nlangid: {enabled: false}\nquality: {languages: null}\n"


def timed_process(argv: list[str], log: Path) -> float:
    """Wall-clock seconds of one command, start-up included; stops the benchmark when it fails."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    took = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}): see {log}")
    return took


def whole_process(docs: pl.DataFrame, sizes: list[int], rounds: int, work: Path) -> None:
    import os
    import statistics

    script = work / "datatrove_chain.py"
    script.write_text(DATATROVE_SCRIPT)
    config = work / "filter.yaml"
    config.write_text(OUR_CONFIG_YAML)
    python = sys.executable
    for size in sizes:
        folder = work / f"input-{size}"
        n_docs = write_input(docs, -(-size // docs.height), folder, size)
        times: dict[str, list[float]] = {"datatrove": [], "ours": []}
        load = os.getloadavg()[0]
        for _ in range(rounds):  # interleaved, so both see the same machine load
            dt_out, our_out = work / f"datatrove-{size}", work / f"ours-{size}"
            for path in (dt_out, our_out):
                if path.exists():
                    shutil.rmtree(path)
            times["datatrove"].append(timed_process([python, str(script), str(folder / "data"), str(dt_out)], work / "datatrove.log"))
            times["ours"].append(timed_process(
                [python, "-c", "from corpus.cli import entry; entry()", "filter", str(folder), "-o", str(our_out), "--config", str(config),
                 "--tasks", "2", "--workers", "2", "--quiet"], work / "ours.log"))  # fmt: skip
        agree, distinct, all_agree = agreement(docs, dt_out, our_out)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{n_docs:>7,} docs, load average {load:.1f} -> {os.getloadavg()[0]:.1f}: "
              f"datatrove {', '.join(f'{t:.2f}' for t in times['datatrove'])} s (median {med['datatrove']:.2f}), "
              f"ours {', '.join(f'{t:.2f}' for t in times['ours'])} s (median {med['ours']:.2f}) -> {med['datatrove'] / med['ours']:.2f}x; "
              f"agreement {agree:,}/{distinct:,} distinct, {all_agree:,}/{n_docs:,} all")  # fmt: skip
        record("filter", f"documents/s whole process, {n_docs:,} documents, 2 workers (agreement {agree:,}/{distinct:,})",
               n_docs / med["ours"], n_docs / med["datatrove"], "datatrove Gopher + C4 + FineWeb", "docs/s", target=5, rounds=rounds)


def agreement(docs: pl.DataFrame, dt_out: Path, our_out: Path) -> tuple[int, int, int]:
    """(distinct documents both keep or both reject, distinct documents, all copies agreeing)."""
    kept_files = list((dt_out / "kept").glob("*.parquet"))
    dt_kept = set(pl.read_parquet(kept_files)["id"].to_list()) if kept_files else set()
    ours = pl.concat([pl.read_parquet(our_out / d).select("id", pl.col("reason") if d == "rejected" else pl.lit(None, pl.String).alias("reason"))
                      for d in ("data", "rejected") if list((our_out / d).glob("*.parquet"))])  # fmt: skip
    first = {f"{i}-0" for i in range(docs.height)}
    agree = sum((i in dt_kept) == (r is None) for i, r in zip(ours["id"], ours["reason"]) if i in first)
    return agree, docs.height, sum((i in dt_kept) == (r is None) for i, r in zip(ours["id"], ours["reason"]))


def datatrove_reasons(texts: list[str]) -> list[str | None]:
    """The reason datatrove gives each document (called directly, for listing disagreements)."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

    from corpus.filter.words import RegexWordTokenizer

    tok = RegexWordTokenizer()
    filters = [GopherQualityFilter(language=tok), GopherRepetitionFilter(language=tok), C4QualityFilter(language=tok), FineWebQualityFilter(language=tok)]
    out = []
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(i))
        reason = None
        for f in filters:
            result = f.filter(doc)
            if result is not True:
                reason = result[1] if isinstance(result, tuple) else f.name
                break
        out.append(reason)
    return out


def rules_only(texts: list[str], rounds: int) -> dict[str, float]:
    """CPU seconds of the rules alone, in this process: datatrove's filter() per document vs our
    batch scoring and decisions (2,048 documents a batch, as the stage reads them)."""
    import numpy as np

    from corpus.filter.quality import failing_masks, quality_scores

    cfg = our_config().quality
    series = pl.Series(texts)
    quality_scores(series.head(16), cfg)  # load the compiled n-gram kernel before timing
    cpu = {"datatrove": 0.0, "ours": 0.0}
    for _ in range(rounds):
        started = time.process_time()
        datatrove_reasons(texts)
        cpu["datatrove"] += time.process_time() - started
        started = time.process_time()
        for offset in range(0, len(texts), 2048):
            batch = series.slice(offset, 2048)
            scores = quality_scores(batch, cfg)
            failing_masks(scores, pl.Series([None] * len(batch), dtype=pl.String), pl.Series(np.ones(len(batch), bool)), cfg)
        cpu["ours"] += time.process_time() - started
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default="/tmp/bench_filter")
    parser.add_argument("--rules-repeat", type=int, default=5, help="copies of the documents for the in-process rules-only timing")
    parser.add_argument("--whole-process", metavar="SIZES", help="comma-separated document counts: time each side as a fresh process")
    parser.add_argument("--rules-only", action="store_true", help="only the in-process rules timing (--rules-repeat, --rounds)")
    args = parser.parse_args()
    set_quiet(True)
    work = Path(args.work)
    docs = ingest_all(work)
    if args.whole_process:
        whole_process(docs, [int(n) for n in args.whole_process.split(",")], max(args.rounds, 3), work)
        return 0
    if args.rules_only:
        texts = docs["text"].to_list() * args.rules_repeat
        rules = rules_only(texts, args.rounds)
        print(f"rules only, one process, {len(texts):,} documents x {args.rounds} rounds: datatrove {rules['datatrove']:.2f} CPU-s, "
              f"ours {rules['ours']:.2f} CPU-s -> {rules['datatrove'] / rules['ours']:.2f}x")  # fmt: skip
        return 0
    n_docs = write_input(docs, args.repeat, work / "input")
    print(f"documents: {docs.height:,} distinct ({docs['text'].str.len_chars().sum():,} characters), x{args.repeat} = {n_docs:,}")

    times: dict[str, list[float]] = {"datatrove": [], "ours": []}
    cpu: dict[str, list[float]] = {"datatrove": [], "ours": []}
    for _ in range(args.rounds):  # interleaved, so both see the same machine load
        for name, run in (("datatrove", lambda: run_datatrove(work / "input" / "data", work / "datatrove")),
                          ("ours", lambda: run_ours(work / "input", work / "ours"))):
            before = cpu_seconds()
            times[name].append(run())
            cpu[name].append(cpu_seconds() - before)

    # Decisions, over the distinct documents (copy 0 of each)
    dt_kept = set(pl.read_parquet(work / "datatrove" / "kept")["id"].to_list()) if list((work / "datatrove" / "kept").glob("*.parquet")) else set()
    ours_all = pl.concat(
        [pl.read_parquet(work / "ours" / d).select("id", pl.col("reason") if d == "rejected" else pl.lit(None, pl.String).alias("reason")) for d in ("data", "rejected") if list((work / "ours" / d).glob("*.parquet"))]
    )
    ours_reason = dict(zip(ours_all["id"], ours_all["reason"]))
    first = docs.with_columns(pl.format("{}-0", pl.int_range(pl.len())).alias("copy_id"))
    agree, disagreements = 0, []
    for copy_id, source, text in first.select("copy_id", "source", "text").iter_rows():
        dt_keeps = copy_id in dt_kept
        ours_keeps = ours_reason[copy_id] is None
        if dt_keeps == ours_keeps:
            agree += 1
        else:
            disagreements.append((copy_id, source, text))
    all_copies_agree = sum((i in dt_kept) == (r is None) for i, r in ours_reason.items())

    best = {k: min(v) for k, v in times.items()}
    rate = {k: n_docs / best[k] for k in best}
    print(f"decision agreement: {agree:,}/{docs.height:,} distinct documents ({agree / docs.height:.2%}); all copies: {all_copies_agree:,}/{n_docs:,}")
    print(f"kept: datatrove {len(dt_kept) // args.repeat if dt_kept else 0:,} / ours {sum(r is None for r in ours_reason.values()) // args.repeat:,} per copy")
    if disagreements:
        their = datatrove_reasons([t for _, _, t in disagreements])
        for (copy_id, source, text), reason in zip(disagreements, their):
            print(f"  disagree {copy_id} ({source}): datatrove {reason or 'keeps'}, ours {ours_reason[copy_id] or 'keeps'}: {' '.join(text[:80].split())!r}")
    for name in ("datatrove", "ours"):
        print(f"{name:>9}: wall {', '.join(f'{t:.2f}s' for t in times[name])} -> best {best[name]:.2f}s, {rate[name]:,.0f} docs/s; "
              f"CPU {', '.join(f'{t:.2f}s' for t in cpu[name])} -> {n_docs * args.rounds / sum(cpu[name]):,.0f} docs per CPU-second")
    print(f"throughput ratio (ours / datatrove), wall-clock, best of {args.rounds}: {rate['ours'] / rate['datatrove']:.2f}x")
    print(f"throughput ratio (ours / datatrove), per CPU-second, all rounds: {sum(cpu['datatrove']) / sum(cpu['ours']):.2f}x")
    texts = docs["text"].to_list() * args.rules_repeat
    rules = rules_only(texts, args.rounds)
    print(
        f"rules only, one process, {len(texts):,} documents x {args.rounds} rounds: datatrove {rules['datatrove']:.2f} CPU-s, "
        f"ours {rules['ours']:.2f} CPU-s -> {rules['datatrove'] / rules['ours']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
