"""Shared pieces of the dedup benchmarks: data, the three dedupers, pair metrics, process-tree memory.

The three methods see the same documents, the same word n-gram size and the same number of
permutations (bands x rows). Words are runs of letters and digits, lower-cased: the rule of our
tokeniser, given to datatrove as a regex word tokenizer (so it needs no spacy) and to datasketch.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# ../shared beside the checkout (or beside the folder of worktrees); CORPUS_SHARED overrides
SHARED = Path(
    os.environ.get("CORPUS_SHARED")
    or next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), REPO.parent / "shared")
) / "data"
# the `corpus` command of this checkout: its venv's script, or this interpreter running this checkout's entry point
CORPUS = (
    [str(REPO / ".venv" / "bin" / "corpus")]
    if (REPO / ".venv" / "bin" / "corpus").exists()
    else [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); from corpus.cli import entry; entry()", str(REPO)]
)

WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def shingles(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    if len(w) < n:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# ---------------------------------------------------------------- datatrove's word tokenizer

from datatrove.utils.word_tokenizers import WordTokenizer  # noqa: E402


class RegexWordTokenizer(WordTokenizer):
    """Our word rule for datatrove's MinHash (its default needs spacy models)."""

    def word_tokenize(self, text: str) -> list[str]:
        return WORD.findall(text.lower())

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in WORD.finditer(text)]


# ---------------------------------------------------------------- dataset folders for corpus


def write_dataset(folder: Path, keys: list[str], texts: list[str], files: int = 2, source: str = "bench") -> Path:
    """A dataset folder (data/*.parquet + card.json) holding the texts; `url` carries the key."""
    from corpus.document import document_id

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    for f in range(files):
        part_keys, part_texts = keys[f::files], texts[f::files]
        table = pa.table(
            {
                "id": [document_id(t) for t in part_texts],
                "text": pa.array(part_texts, pa.large_string()),
                "source": [source] * len(part_texts),
                "domain": ["bench"] * len(part_texts),
                "url": part_keys,
                "lang": pa.nulls(len(part_texts), pa.string()),
                "lang_score": pa.nulls(len(part_texts), pa.float32()),
                "metadata": ["{}"] * len(part_texts),
            }
        )
        pq.write_table(table, folder / "data" / f"part-{f:05d}-0000.parquet", compression="zstd")
    (folder / "card.json").write_text(json.dumps({"name": folder.name, "stage": "benchmark", "accounting": []}))
    return folder


# ---------------------------------------------------------------- the three methods


def run_ours(dataset: Path, out: Path, args: list[str], tasks: int = 2, workers: int = 2) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [*CORPUS, "-q", "dedup", str(dataset), "-o", str(out), "--tasks", str(tasks), "--workers", str(workers), *args],
        check=True,
    )
    return time.perf_counter() - started


def ours_clusters(out: Path) -> dict[str, str]:
    import polars as pl

    files = [str(f) for f in sorted((out / "data").glob("*.parquet")) + sorted((out / "rejected").glob("*.parquet"))]
    if not files:
        return {}
    df = pl.concat([pl.read_parquet(f, columns=["url", "cluster_id", "cluster_size"]) for f in files])
    df = df.filter(pl.col("cluster_size") > 1)
    return dict(zip(df["url"], df["cluster_id"]))


def run_datatrove(dataset: Path, work: Path, ngram: int, bands: int, rows: int, tasks: int = 2, workers: int = 2) -> float:
    """datatrove 0.10.1's four MinHash stages, end to end from the same Parquet files."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(work, ignore_errors=True)
    cfg = MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows, seed=1)
    data = str(Path(dataset) / "data")
    started = time.perf_counter()
    LocalPipelineExecutor(
        [
            ParquetReader(data, text_key="text", id_key="url"),
            MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg, language=RegexWordTokenizer()),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=str(work / "logs1"),
    ).run()
    LocalPipelineExecutor(
        [MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=cfg)],
        tasks=bands,
        workers=workers,
        logging_dir=str(work / "logs2"),
    ).run()
    LocalPipelineExecutor(
        [
            MinhashDedupCluster(
                input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=cfg, save_cluster_id=True
            )
        ],
        tasks=1,
        logging_dir=str(work / "logs3"),
    ).run()
    LocalPipelineExecutor(
        [
            ParquetReader(data, text_key="text", id_key="url"),
            MinhashDedupFilter(
                input_folder=str(work / "remove"),
                exclusion_writer=ParquetWriter(str(work / "removed")),
                load_cluster_ids=True,
            ),
            ParquetWriter(str(work / "kept")),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=str(work / "logs4"),
    ).run()
    return time.perf_counter() - started


def datatrove_clusters(work: Path) -> dict[str, str]:
    import polars as pl

    files = [str(f) for f in sorted((work / "kept").glob("*.parquet")) + sorted((work / "removed").glob("*.parquet"))]
    df = pl.read_parquet(files).select("id", "metadata")
    out = {}
    for key, meta in zip(df["id"], df["metadata"]):
        cluster = (meta or {}).get("minhash_cluster_id", -1)
        if cluster is not None and cluster != -1:
            out[key] = f"dt{cluster}"
    return out


def run_datasketch(keys: list[str], texts: list[str], ngram: int, bands: int, rows: int) -> tuple[dict[str, str], float]:
    """datasketch MinHash + MinHashLSH (b, r), candidates from querying every document, union-find."""
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    sketches = {}
    for key, text in zip(keys, texts):
        m = MinHash(num_perm=bands * rows, seed=1)
        m.update_batch([" ".join(s).encode() for s in shingles(text, ngram)])
        sketches[key] = m
        lsh.insert(key, m)
    parent = {k: k for k in keys}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, m in sketches.items():
        for other in lsh.query(m):
            ra, rb = find(key), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    seconds = time.perf_counter() - started
    groups = defaultdict(list)
    for k in keys:
        groups[find(k)].append(k)
    return {k: root for root, members in groups.items() if len(members) > 1 for k in members}, seconds


# ---------------------------------------------------------------- metrics


def cluster_pairs(clusters: dict[str, str]) -> set[tuple[str, str]]:
    groups = defaultdict(list)
    for key, cluster in clusters.items():
        groups[cluster].append(key)
    return {tuple(sorted(p)) for members in groups.values() for p in itertools.combinations(sorted(members), 2)}


def prf(predicted: set, truth: set) -> dict:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"pairs": len(predicted), "tp": tp, "precision": precision, "recall": recall, "f1": f1}


# ---------------------------------------------------------------- memory of a process tree


class TreeMemory:
    """Peak of the summed RSS of a process and its descendants, sampled every 0.1 s."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss = []
                for p in procs:
                    try:
                        rss.append(p.memory_info().rss)
                    except psutil.Error:
                        pass
                self.peak_total = max(self.peak_total, sum(rss))
                self.peak_single = max(self.peak_single, max(rss, default=0))
            except psutil.Error:
                pass
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measured_run(cmd: list[str]) -> tuple[float, int, int]:
    """(seconds, peak summed RSS bytes, peak single-process RSS bytes) of a command."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    with TreeMemory(proc.pid) as mem:
        rc = proc.wait()
    if rc:
        sys.exit(f"{' '.join(cmd)} failed with exit code {rc}")
    return time.perf_counter() - started, mem.peak_total, mem.peak_single


# ---------------------------------------------------------------- synthetic corpora from real sentences


@functools.lru_cache(maxsize=1)
def real_sentences() -> tuple[str, ...]:
    """Sentences of the real insurance and Python-docs texts (../shared/data)."""
    out = []
    for folder in (SHARED / "insurance", SHARED / "general"):
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".md", ".txt", ".rst") or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
                s = " ".join(s.split())
                if 40 <= len(s) <= 400:
                    out.append(s)
    return tuple(sorted(set(out)))


@functools.lru_cache(maxsize=1)
def _vocab() -> list[str]:
    return sorted({w for s in real_sentences()[:5000] for w in s.split()})


def synthetic_docs(count: int, seed: int = 0, target_chars: int = 2200, dup_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """`count` documents of about `target_chars` made of random real sentences; `dup_fraction` of
    them are near copies (a few words substituted) of an earlier one."""
    rng = random.Random(seed)
    pool = real_sentences()
    vocab = _vocab()
    texts: list[str] = []
    for i in range(count):
        if texts and rng.random() < dup_fraction:
            w = texts[rng.randrange(len(texts))].split()
            for _ in range(max(1, len(w) // 50)):
                w[rng.randrange(len(w))] = rng.choice(vocab)
            texts.append(" ".join(w))
            continue
        parts, size = [], 0
        while size < target_chars:
            s = pool[rng.randrange(len(pool))]
            parts.append(s)
            size += len(s) + 1
        texts.append(" ".join(parts))
    return [f"doc{i:08d}" for i in range(count)], texts


def synthetic_dataset(folder: Path, count: int, files: int, seed: int = 0, target_chars: int = 2000) -> Path:
    """Like write_dataset(synthetic_docs(...)) but generated file by file, so 1M documents never sit
    in the generating process's memory at once (near copies are of documents of the same file)."""
    from corpus.document import document_id

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    per_file = -(-count // files)
    for f in range(files):
        n = min(per_file, count - f * per_file)
        if n <= 0:
            break
        _, texts = synthetic_docs(n, seed=seed * 1000 + f, target_chars=target_chars)
        table = pa.table(
            {
                "id": [document_id(t) for t in texts],
                "text": pa.array(texts, pa.large_string()),
                "source": ["bench"] * n,
                "domain": ["bench"] * n,
                "url": [f"doc{f:03d}-{i:07d}" for i in range(n)],
                "lang": pa.nulls(n, pa.string()),
                "lang_score": pa.nulls(n, pa.float32()),
                "metadata": ["{}"] * n,
            }
        )
        pq.write_table(table, folder / "data" / f"part-{f:05d}-0000.parquet", compression="zstd")
        del table, texts
    (folder / "card.json").write_text(json.dumps({"name": folder.name, "stage": "benchmark", "accounting": []}))
    return folder
