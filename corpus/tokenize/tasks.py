"""The three passes of `corpus tokenize` as datatrove pipeline steps, run by any of its executors.

    plan      N tasks, input files dealt out by rank: per-domain counts and smallest id hashes,
              text bytes -> _work/plan/NNNNN.json; merged into _work/plan.json (the validation
              cut-offs and the number of hash buckets) by the command between the passes
    tokenize  N tasks, files dealt out by rank: encode, split, spill each document into the bucket
              of its order key -> _work/spill/SPLIT-BBBBB/NNNNN.arrows, rejected documents and
              per-bucket counts -> _work/rejected/, _work/counts/
    shards    M tasks, shard groups dealt out by rank: a group is a run of consecutive buckets
              (planned by the command from the counts); its rows are ordered by key and cut
              into shards with their final names -> OUT/SPLIT-NNNNN.arrow, entries -> _work/entries/
              (documents with the same id, so the same key, keep their order in the input: file
              number, then row)

Bucket b of a split holds the order keys in [b, b + 1) * 2**64 / buckets, so the shards, in
number order, hold the documents in key order, and the groups and shard cuts depend only on the
counts: the output is the same file for file whatever the number of tasks of either pass.
Each task first removes what an interrupted attempt of the same rank left, so a rerun resumes.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from corpus.errors import CorpusError
from corpus.tokenize.common import TOKENIZER_JSON, id_hashes, load_tokenizer, mix_seed, tokenizer_sha256

PLAN_DIR, SPILL_DIR, REJECTED_DIR, COUNTS_DIR, ENTRIES_DIR = "plan", "spill", "rejected", "counts", "entries"
REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("domain", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def bucket_of(keys: np.ndarray, buckets: int) -> np.ndarray:
    """The key range of each key: monotonic in the key, exact in integers."""
    return ((keys >> np.uint64(32)) * np.uint64(buckets)) >> np.uint64(32)


_TOKENIZERS: dict[str, object] = {}
_TOKENIZERS_LOCK = threading.Lock()


def shared_tokenizer(tokdir: str, sha256: str):
    """One tokenizer per process and file content: tasks that are threads share it (and its word cache)."""
    with _TOKENIZERS_LOCK:
        key = (str(Path(tokdir).resolve()), sha256)
        if key not in _TOKENIZERS:
            tokenizer = load_tokenizer(tokdir)[0]
            if tokenizer_sha256(Path(tokdir)) != sha256:
                raise CorpusError(f"{tokdir}: {TOKENIZER_JSON} changed while tokenizing; rerun with the tokenizer left as it is")
            _TOKENIZERS[key] = tokenizer
        return _TOKENIZERS[key]


class _TaskStep(PipelineStep):
    """A step that does its pass's work for one rank; it yields once per batch, so an executor
    that runs tasks as threads can stop it between batches."""

    type = "tokenize"

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[None]:
        raise NotImplementedError


# ---------------------------------------------------------------- pass 1: the validation plan


class PlanStep(_TaskStep):
    name = "plan the validation split"

    def __init__(self, files: list[str], work_dir: str, min_per_domain: int):
        super().__init__()
        self.files, self.work_dir, self.min_per_domain = files, work_dir, min_per_domain

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[None]:
        from corpus.tokenize.shards import ValidationPlan, empty_mask, read_batches

        plan = ValidationPlan(0.0, self.min_per_domain)
        for table in read_batches(self.files[rank::world_size], ["id", "text", "domain"], 8e6):
            keep = ~empty_mask(table.column("text"))
            plan.text_bytes += int(pc.sum(pc.binary_length(table.column("text").filter(keep))).as_py() or 0)
            domains = pc.fill_null(table.column("domain").filter(keep), "unknown").to_pylist()
            plan.observe(domains, id_hashes(table.column("id").filter(keep).to_pylist()))
            yield
        _write_json(Path(self.work_dir) / PLAN_DIR / f"{rank:05d}.json", plan.partial_state())


# ---------------------------------------------------------------- pass 2: tokenize and spill


class TokenizeStep(_TaskStep):
    name = "tokenize and spill"

    def __init__(self, files: list[str], work_dir: str, tokdir: str, tokenizer_sha256: str, dtype: str, eos_id: int,
                 bos_id: int | None, seed: int, batch_mb: float):  # fmt: skip
        super().__init__()
        self.files, self.work_dir, self.tokdir, self.tokenizer_sha256, self.dtype = files, work_dir, tokdir, tokenizer_sha256, dtype
        self.eos_id, self.bos_id, self.seed, self.batch_mb = eos_id, bos_id, seed, batch_mb

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[None]:
        from corpus.tokenize.shards import DTYPES, ValidationPlan, empty_mask, encode, prefetch, read_batches, shard_schema

        work = Path(self.work_dir)
        plan = ValidationPlan.load(work / "plan.json")
        dtype = DTYPES[self.dtype]
        np_dtype = np.dtype(dtype.to_pandas_dtype())
        tokenizer = shared_tokenizer(self.tokdir, self.tokenizer_sha256)
        spill = BucketSpill(work / SPILL_DIR, shard_schema(dtype), plan.buckets, rank)
        spill.clear()
        rejected_path = work / REJECTED_DIR / f"{rank:05d}.parquet"
        rejected_path.parent.mkdir(parents=True, exist_ok=True)
        rejected_writer = pq.ParquetWriter(str(rejected_path) + ".tmp", REJECTED_SCHEMA, compression="zstd")
        docs_in, rejected = 0, {}

        def encoded(tables):
            """Runs in its own thread: the next batch is encoded while this one is spilled."""
            for table in tables:
                empty = empty_mask(table.column("text"))
                kept = table.filter(pa.array(~empty)) if empty.any() else table
                result = encode(tokenizer, kept.column("text").to_pylist(), np_dtype, self.bos_id, self.eos_id) if kept.num_rows else None
                yield table, empty, kept, result

        numbers = list(range(len(self.files)))[rank::world_size]
        batches = read_batches(self.files[rank::world_size], ["id", "text", "domain", "source"], self.batch_mb * 1e6, numbers)
        try:
            for table, empty, kept, result in prefetch(encoded(prefetch(batches)), depth=1):
                docs_in += table.num_rows
                if empty.any():
                    _reject(rejected_writer, rejected, table.filter(pa.array(empty)), "empty", "no text but whitespace")
                if result is not None:
                    self._spill(spill, plan, kept, *result, dtype, rejected_writer, rejected)
                yield
        finally:
            spill.close()
            rejected_writer.close()
        os.replace(str(rejected_path) + ".tmp", rejected_path)
        _write_json(work / COUNTS_DIR / f"{rank:05d}.json", {"docs_in": docs_in, "rejected": rejected, "buckets": spill.counts})

    def _spill(self, spill, plan, table, offsets, values, lengths, dtype, rejected_writer, rejected) -> None:
        no_tokens = lengths == 0
        hashes = id_hashes(table.column("id").to_pylist())
        rows = pa.table(
            {
                "input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=dtype)),
                "domain": table.column("domain"),
                "source": table.column("source"),
                "id": table.column("id"),
                "key": mix_seed(hashes, self.seed),
                "position": table.column("position"),
            }
        )
        if no_tokens.any():
            _reject(rejected_writer, rejected, table.filter(pa.array(no_tokens)), "no_tokens", "the tokenizer produced no tokens")
            rows, hashes = rows.filter(pa.array(~no_tokens)), hashes[~no_tokens]
        domains = pc.fill_null(rows.column("domain"), "unknown").to_pylist()
        val = plan.is_val(domains, hashes)
        spill.write("val", rows.filter(pa.array(val)))
        spill.write("train", rows.filter(pa.array(~val)))


def _reject(writer: pq.ParquetWriter, counts: dict, table: pa.Table, reason: str, detail: str) -> None:
    n = table.num_rows
    columns = {name: table.column(name) for name in ("id", "domain", "source")}
    columns.update(reason=pa.array([reason] * n, pa.string()), detail=pa.array([detail] * n, pa.string()))
    writer.write_table(pa.table(columns, schema=REJECTED_SCHEMA))
    counts[reason] = counts.get(reason, 0) + n


class BucketSpill:
    """One task's rows of each (split, key-range bucket), as Arrow IPC streams, with their counts."""

    def __init__(self, folder: Path, schema: pa.Schema, buckets: dict[str, int], rank: int):
        self.folder = folder
        self.schema = schema.append(pa.field("key", pa.uint64())).append(pa.field("position", pa.uint64()))
        self.buckets = buckets
        self.rank = rank
        self.writers: dict[tuple[str, int], pa.ipc.RecordBatchStreamWriter] = {}
        self.counts = {split: [[0, 0] for _ in range(n)] for split, n in buckets.items()}  # [docs, tokens]

    def path(self, split: str, bucket: int, rank: int | None = None) -> Path:
        return self.folder / f"{split}-{bucket:05d}" / f"{self.rank if rank is None else rank:05d}.arrows"

    def clear(self) -> None:
        for split, n in self.buckets.items():
            for b in range(n):
                self.path(split, b).unlink(missing_ok=True)

    def write(self, split: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        n = self.buckets[split]
        table = table.cast(self.schema)
        bucket = bucket_of(table.column("key").to_numpy(), n).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        table = table.take(pa.array(order))
        tokens = pc.list_value_length(table.column("input_ids")).to_numpy()
        starts = np.searchsorted(bucket[order], np.arange(n + 1))
        for b in np.flatnonzero(starts[1:] > starts[:-1]).tolist():
            writer = self.writers.get((split, b))
            if writer is None:
                path = self.path(split, b)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = self.writers[(split, b)] = pa.ipc.new_stream(str(path), self.schema)
            writer.write_table(table.slice(starts[b], starts[b + 1] - starts[b]))
            self.counts[split][b][0] += int(starts[b + 1] - starts[b])
            self.counts[split][b][1] += int(tokens[starts[b] : starts[b + 1]].sum())

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


# ---------------------------------------------------------------- between passes 2 and 3: the groups


def plan_groups(counts: dict[str, list[list[int]]], itemsize: int, shard_bytes: float) -> list[dict]:
    """Consecutive buckets joined until a shard's size; each group is cut into pieces of about the
    shard size (never an empty one). Shards are numbered per split in group order."""
    groups = []
    for split, per_bucket in counts.items():
        number, pending, docs, tokens = 0, [], 0, 0
        for b, (bucket_docs, bucket_tokens) in enumerate(per_bucket):
            if bucket_docs:
                pending.append(b)
                docs += bucket_docs
                tokens += bucket_tokens
            if pending and (tokens * itemsize >= shard_bytes or b == len(per_bucket) - 1):
                pieces = min(docs, max(1, round(tokens * itemsize / shard_bytes)))
                groups.append({"split": split, "buckets": pending, "first": number, "pieces": pieces, "docs": docs})
                number += pieces
                pending, docs, tokens = [], 0, 0
    return groups


def cut_points(tokens_per_row: np.ndarray, pieces: int) -> list[int]:
    """Row positions that cut rows into `pieces` runs of about equal tokens, none of them empty."""
    rows = len(tokens_per_row)
    cumulative = np.cumsum(tokens_per_row)
    inner = np.searchsorted(cumulative, [cumulative[-1] * k / pieces for k in range(1, pieces)]).tolist() if rows else []
    cuts = [0]
    for k, cut in enumerate(inner, start=1):
        cuts.append(min(max(cut, cuts[-1] + 1), rows - (pieces - k)))
    return cuts + [rows]


# ---------------------------------------------------------------- pass 3: shards


class ShardStep(_TaskStep):
    name = "write shards"

    def __init__(self, out_dir: str, work_dir: str, dtype: str, groups: list[dict], spill_tasks: int):
        super().__init__()
        self.out_dir, self.work_dir, self.dtype, self.groups, self.spill_tasks = out_dir, work_dir, dtype, groups, spill_tasks

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[None]:
        from corpus.tokenize.shards import DTYPES, shard_schema, write_shard

        work, out = Path(self.work_dir), Path(self.out_dir)
        schema = shard_schema(DTYPES[self.dtype])
        spill = BucketSpill(work / SPILL_DIR, schema, {}, rank)
        entries = []
        for group in self.groups[rank::world_size]:
            split = group["split"]
            parts = []
            for bucket, task in itertools.product(group["buckets"], range(self.spill_tasks)):
                path = spill.path(split, bucket, task)
                if path.exists():
                    with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
                        parts.append(reader.read_all())
            table = pa.concat_tables(parts).combine_chunks()
            del parts
            # the place in the input breaks a tie of keys (documents with the same id)
            table = table.take(pc.sort_indices(table, [("key", "ascending"), ("position", "ascending")]))
            if table.num_rows != group["docs"]:
                raise RuntimeError(f"{split} group at shard {group['first']}: {table.num_rows} rows spilled, {group['docs']} counted")
            tokens = pc.list_value_length(table.column("input_ids")).to_numpy()
            for k, (start, stop) in enumerate(itertools.pairwise(cut_points(tokens, group["pieces"]))):
                entry = write_shard(out / f"{split}-{group['first'] + k:05d}.arrow", table.slice(start, stop - start), schema)
                entries.append({"split": split, **entry})
            del table
            yield
        _write_json(work / ENTRIES_DIR / f"{rank:05d}.json", entries)
