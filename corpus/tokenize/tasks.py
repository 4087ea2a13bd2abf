"""The two passes of `corpus tokenize` as datatrove pipeline steps, run by any of its executors.

    tokenize  N tasks, input files dealt out by rank: encode each document and spill it into the
              bucket of its order key -> _work/spill/BBBBB/NNNNN.arrows; per bucket, the docs
              and tokens that are validation by their id hash and the rest; per domain, the
              documents with the smallest id hashes (the candidates for the validation minimum)
              -> _work/counts/NNNNN.json; rejected documents -> _work/rejected/NNNNN.parquet
    shards    M tasks, shard groups dealt out by rank: a group is a run of consecutive buckets of
              one split (planned by the command from the counts, once the validation minimum is
              known); its rows of that split are ordered by key and cut into shards with their
              final names -> OUT/SPLIT-NNNNN.arrow, entries -> _work/entries/

Bucket b holds the order keys in [b, b + 1) * 2**64 / buckets, so the shards of a split, in number
order, hold its documents in key order (documents with the same id, so the same key, in their
order in the input: file number, then row), and the groups and shard cuts depend only on the
counts: the output is the same, file for file, whatever the number of tasks. The input is read
once. Each task first removes what an interrupted attempt of its rank left, so a rerun resumes.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from corpus.errors import CorpusError
from corpus.outputs import atomic_write
from corpus.shard_format import (
    TOKENIZER_JSON,
    arrow_dtype,
    id_hashes,
    load_tokenizer,
    mix_seed,
    shard_schema,
    tokenizer_sha256,
    unit_interval,
)

SPILL_DIR, REJECTED_DIR, COUNTS_DIR, ENTRIES_DIR = "spill", "rejected", "counts", "entries"
REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("domain", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")


def bucket_of(keys: np.ndarray, buckets: int) -> np.ndarray:
    """The key range of each key: monotonic in the key, exact in integers."""
    return ((keys >> np.uint64(32)) * np.uint64(buckets)) >> np.uint64(32)


_TOKENIZERS: dict[tuple[str, str], object] = {}
_TOKENIZERS_LOCK = threading.Lock()


def remember_tokenizer(tokdir: str, sha256: str, tokenizer) -> None:
    """The command's own tokenizer, for its tasks that are threads (no second load)."""
    with _TOKENIZERS_LOCK:
        _TOKENIZERS[(str(Path(tokdir).resolve()), sha256)] = tokenizer


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


ENCODES_AHEAD = 2  # batches encoded at once by a task: one's tail (its longest documents) overlaps the next


def ordered_map(fn, items: Iterator, ahead: int) -> Iterator:
    """fn over items in `ahead` threads, results in the order of the items, at most `ahead` pending."""
    with ThreadPoolExecutor(ahead, thread_name_prefix="encode") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _TaskStep(PipelineStep):
    """A step that does its pass's work for one rank in `run`; it yields once per batch, so an
    executor that runs tasks as threads can stop it between batches."""

    type = "tokenize"


# ---------------------------------------------------------------- pass 1: tokenize and spill

TRAIN_DOCS, TRAIN_TOKENS, VAL_DOCS, VAL_TOKENS = range(4)  # a bucket's counts, split by id hash alone


class TokenizeStep(_TaskStep):
    name = "tokenize and spill"

    def __init__(self, files: list[str], work_dir: str, tokdir: str, tokenizer_sha256: str, dtype: str, eos_id: int,
                 bos_id: int | None, seed: int, batch_mb: float, buckets: int, val_fraction: float, min_val_docs: int):  # fmt: skip
        super().__init__()
        self.files, self.work_dir, self.tokdir, self.tokenizer_sha256, self.dtype = files, work_dir, tokdir, tokenizer_sha256, dtype
        self.eos_id, self.bos_id, self.seed, self.batch_mb = eos_id, bos_id, seed, batch_mb
        self.buckets, self.val_fraction, self.min_val_docs = buckets, val_fraction, min_val_docs

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[None]:
        from corpus.tokenize.shards import empty_mask, encode, prefetch, read_batches

        work = Path(self.work_dir)
        dtype = arrow_dtype(self.dtype)
        np_dtype = np.dtype(dtype.to_pandas_dtype())
        tokenizer = shared_tokenizer(self.tokdir, self.tokenizer_sha256)
        spill = BucketSpill(work / SPILL_DIR, shard_schema(dtype), self.buckets, rank, self.val_fraction)
        spill.clear()
        rejected_path = work / REJECTED_DIR / f"{rank:05d}.parquet"
        rejected_path.parent.mkdir(parents=True, exist_ok=True)
        rejected_writer = pq.ParquetWriter(str(rejected_path) + ".tmp", REJECTED_SCHEMA, compression="zstd")
        self._docs_in, self._rejected, self._docs, self._candidates = 0, {}, {}, {}

        def encoded(table):
            empty = empty_mask(table.column("text"))
            kept = table.filter(pa.array(~empty)) if empty.any() else table
            result = encode(tokenizer, kept.column("text").to_pylist(), np_dtype, self.bos_id, self.eos_id) if kept.num_rows else None
            return table, empty, kept, result

        numbers = list(range(len(self.files)))[rank::world_size]
        batches = read_batches(self.files[rank::world_size], ["id", "text", "domain", "source"], self.batch_mb * 1e6, numbers)
        try:
            for table, empty, kept, result in ordered_map(encoded, prefetch(batches), ahead=ENCODES_AHEAD):
                self._docs_in += table.num_rows
                if empty.any():
                    _reject(rejected_writer, self._rejected, table.filter(pa.array(empty)), "empty", "no text but whitespace")
                if result is not None:
                    self._spill(spill, kept, *result, dtype, rejected_writer)
                yield
        finally:
            spill.close()
            rejected_writer.close()
        os.replace(str(rejected_path) + ".tmp", rejected_path)
        candidates = {d: c.tolist() for d, c in sorted(self._candidates.items())}
        _write_json(work / COUNTS_DIR / f"{rank:05d}.json", {"docs_in": self._docs_in, "rejected": self._rejected,
                    "buckets": spill.counts.tolist(), "docs": self._docs, "candidates": candidates})  # fmt: skip

    def _spill(self, spill: "BucketSpill", table, offsets, values, lengths, dtype, rejected_writer) -> None:
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
                "hash": hashes,
            }
        )
        if no_tokens.any():
            _reject(rejected_writer, self._rejected, table.filter(pa.array(no_tokens)), "no_tokens", "the tokenizer produced no tokens")
            rows, lengths = rows.filter(pa.array(~no_tokens)), lengths[~no_tokens]
        if not rows.num_rows:
            return
        buckets = spill.write(rows)
        # the candidates for each domain's validation minimum: its smallest id hashes, with where
        # they went, so that the command can move the chosen ones from train to val in the counts
        hashes, positions = rows.column("hash").to_numpy(), rows.column("position").to_numpy()
        domains = np.asarray(pc.fill_null(rows.column("domain"), "unknown").to_pylist(), dtype=object)
        tokens = lengths + 1 + (self.bos_id is not None)
        for domain in set(domains.tolist()):
            mine = domains == domain
            self._docs[domain] = self._docs.get(domain, 0) + int(mine.sum())
            if self.min_val_docs:
                new = np.stack([hashes[mine], positions[mine], buckets[mine].astype(np.uint64), tokens[mine].astype(np.uint64)], axis=1)
                both = np.concatenate([self._candidates.get(domain, np.empty((0, 4), np.uint64)), new])
                self._candidates[domain] = both[np.lexsort((both[:, 1], both[:, 0]))[: self.min_val_docs]]


def _reject(writer: pq.ParquetWriter, counts: dict, table: pa.Table, reason: str, detail: str) -> None:
    n = table.num_rows
    columns = {name: table.column(name) for name in ("id", "domain", "source")}
    columns.update(reason=pa.array([reason] * n, pa.string()), detail=pa.array([detail] * n, pa.string()))
    writer.write_table(pa.table(columns, schema=REJECTED_SCHEMA))
    counts[reason] = counts.get(reason, 0) + n


def val_by_hash(hashes: np.ndarray, val_fraction: float) -> np.ndarray:
    return unit_interval(hashes) < val_fraction


class BucketSpill:
    """One task's rows of each key-range bucket, as Arrow IPC streams, with their counts."""

    def __init__(self, folder: Path, schema: pa.Schema, buckets: int, rank: int, val_fraction: float = 0.0):
        self.folder = folder
        self.schema = pa.schema([*schema, pa.field("key", pa.uint64()), pa.field("position", pa.uint64()), pa.field("hash", pa.uint64())])
        self.buckets = buckets
        self.rank = rank
        self.val_fraction = val_fraction
        self.writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        self.counts = np.zeros((buckets, 4), np.int64)  # TRAIN_DOCS, TRAIN_TOKENS, VAL_DOCS, VAL_TOKENS

    def path(self, bucket: int, rank: int | None = None) -> Path:
        return self.folder / f"{bucket:05d}" / f"{self.rank if rank is None else rank:05d}.arrows"

    def clear(self) -> None:
        for b in range(self.buckets):
            self.path(b).unlink(missing_ok=True)

    def write(self, table: pa.Table) -> np.ndarray:
        """Spill the rows; returns each row's bucket (in the order of `table`)."""
        table = table.cast(self.schema)
        bucket = bucket_of(table.column("key").to_numpy(), self.buckets).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        sorted_table = table.take(pa.array(order))
        tokens = pc.list_value_length(sorted_table.column("input_ids")).to_numpy()
        val = val_by_hash(sorted_table.column("hash").to_numpy(), self.val_fraction)
        starts = np.searchsorted(bucket[order], np.arange(self.buckets + 1))
        for b in np.flatnonzero(starts[1:] > starts[:-1]).tolist():
            writer = self.writers.get(b)
            if writer is None:
                path = self.path(b)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = self.writers[b] = pa.ipc.new_stream(str(path), self.schema)
            lo, hi = starts[b], starts[b + 1]
            writer.write_table(sorted_table.slice(lo, hi - lo))
            in_val = val[lo:hi]
            self.counts[b] += [int((~in_val).sum()), int(tokens[lo:hi][~in_val].sum()), int(in_val.sum()), int(tokens[lo:hi][in_val].sum())]
        return bucket

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


# ---------------------------------------------------------------- between the passes: the split and the groups


def validation_minimum(counts: list[dict], val_fraction: float, min_per_domain: int) -> tuple[dict[str, list | None], np.ndarray]:
    """Each domain's cut-off (id hash, input position): its `min_per_domain` documents of smallest
    id hash are validation (never more than half of the domain; the place in the input breaks a
    tie of hashes), and the bucket counts with those documents moved from train to val."""
    per_bucket = np.sum([c["buckets"] for c in counts], axis=0).reshape(-1, 4)
    docs: dict[str, int] = {}
    candidates: dict[str, list] = {}
    for c in counts:
        for domain, n in c["docs"].items():
            docs[domain] = docs.get(domain, 0) + n
        for domain, rows in c["candidates"].items():
            candidates.setdefault(domain, []).extend(rows)
    cutoffs: dict[str, int | None] = {}
    for domain in sorted(docs):
        wanted = min(min_per_domain, docs[domain] // 2)
        chosen = sorted(candidates.get(domain, []))[:wanted]
        cutoffs[domain] = [int(chosen[-1][0]), int(chosen[-1][1])] if chosen else None
        for hash_, _, bucket, tokens in chosen:
            if not val_by_hash(np.array([hash_], np.uint64), val_fraction)[0]:
                per_bucket[bucket] += [-1, -tokens, 1, tokens]
    return cutoffs, per_bucket


def plan_groups(per_bucket: np.ndarray, itemsize: int, shard_bytes: float) -> list[dict]:
    """Per split, consecutive buckets joined until a shard's size; each group is cut into pieces of
    about the shard size (never an empty one). Shards are numbered per split in group order."""
    groups = []
    for split, docs_col, tokens_col in (("train", TRAIN_DOCS, TRAIN_TOKENS), ("val", VAL_DOCS, VAL_TOKENS)):
        number, pending, docs, tokens = 0, [], 0, 0
        last = len(per_bucket) - 1
        for b, (bucket_docs, bucket_tokens) in enumerate(zip(per_bucket[:, docs_col].tolist(), per_bucket[:, tokens_col].tolist())):
            if bucket_docs:
                pending.append(b)
                docs += bucket_docs
                tokens += bucket_tokens
            if pending and (tokens * itemsize >= shard_bytes or b == last):
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


# ---------------------------------------------------------------- pass 2: shards


class ShardStep(_TaskStep):
    name = "write shards"

    def __init__(self, out_dir: str, work_dir: str, dtype: str, groups: list[dict], spill_tasks: int, buckets: int,
                 val_fraction: float, cutoffs: dict[str, list | None]):  # fmt: skip
        super().__init__()
        self.out_dir, self.work_dir, self.dtype, self.groups, self.spill_tasks = out_dir, work_dir, dtype, groups, spill_tasks
        self.buckets, self.val_fraction, self.cutoffs = buckets, val_fraction, cutoffs

    def is_val(self, table: pa.Table) -> np.ndarray:
        hashes, positions = table.column("hash").to_numpy(), table.column("position").to_numpy()
        val = val_by_hash(hashes, self.val_fraction)
        domains = pc.fill_null(table.column("domain"), "unknown")
        for domain, cutoff in self.cutoffs.items():
            if cutoff is not None:
                last_hash, last_position = np.uint64(cutoff[0]), np.uint64(cutoff[1])
                smallest = (hashes < last_hash) | ((hashes == last_hash) & (positions <= last_position))
                val |= pc.equal(domains, domain).to_numpy(zero_copy_only=False) & smallest
        return val

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[None]:
        from corpus.tokenize.shards import write_shard

        work, out = Path(self.work_dir), Path(self.out_dir)
        schema = shard_schema(arrow_dtype(self.dtype))
        spill = BucketSpill(work / SPILL_DIR, schema, self.buckets, rank)
        entries = []
        for group in self.groups[rank::world_size]:
            split = group["split"]
            parts = []
            for bucket, task in itertools.product(group["buckets"], range(self.spill_tasks)):
                path = spill.path(bucket, task)
                if path.exists():
                    with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
                        parts.append(reader.read_all())  # memory-mapped: no copy
            table = pa.concat_tables(parts)  # still no copy: chunks of the mapped buckets
            del parts
            val = self.is_val(table)
            rows = np.flatnonzero(val if split == "val" else ~val)
            # one copy: the group's rows in key order, the place in the input breaking a tie of keys
            # (documents with the same id)
            key, position = table.column("key").to_numpy()[rows], table.column("position").to_numpy()[rows]
            table = table.take(pa.array(rows[np.lexsort((position, key))]))
            if table.num_rows != group["docs"]:
                raise RuntimeError(f"{split} group at shard {group['first']}: {table.num_rows} rows spilled, {group['docs']} counted")
            tokens = pc.list_value_length(table.column("input_ids")).to_numpy()
            for k, (start, stop) in enumerate(itertools.pairwise(cut_points(tokens, group["pieces"]))):
                entry = write_shard(out / f"{split}-{group['first'] + k:05d}.arrow", table.slice(start, stop - start), schema)
                entries.append({"split": split, **entry})
            del table
            yield
        _write_json(work / ENTRIES_DIR / f"{rank:05d}.json", entries)
