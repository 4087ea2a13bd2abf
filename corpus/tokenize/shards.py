"""`corpus tokenize`: a dataset folder -> Arrow IPC token shards the trainer memory-maps.

    OUT/
      train-00000.arrow ...  val-00000.arrow ...   one row per document: input_ids, domain, source, id
      index.json            tokenizer hash, dtype, per-shard doc/token counts per domain, sha256
      rejected.parquet      ids of documents not tokenized, with their reason (empty, no_tokens)
      card.json  README.md

Each shard is a single record batch, so its `input_ids` values are one flat token stream and its
offsets the document boundaries; `pyarrow.memory_map` opens it without a copy.

Memory stays bounded by the shard size, whatever the corpus size, with a two-pass external shuffle:
  1. a cheap pass over id/domain/text decides the validation documents (by id hash, with a minimum
     per domain) and estimates the size;
  2. documents are tokenized in large batches (`encode_batch_fast`, Rust threads) and spilled to
     hash buckets; each bucket is a random subset of the corpus;
  3. buckets are read back one after another, joined until a shard's size is reached, ordered by a
     seeded hash and written as shards.
The order depends only on the ids and the seed, not on how the input was split into files.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import queue
import shutil
import sys
import threading
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

import corpus
from corpus.document import CARD_JSON
from corpus.errors import CorpusError
from corpus.progress import say
from corpus.tokenize.common import PartialOutput, id_hashes, load_tokenizer, mix_seed, tokenizer_sha256, unit_interval, vocab_extent

INDEX_JSON = "index.json"
REJECTED_PARQUET = "rejected.parquet"
SPILL_DIR = "_spill"
SPLITS = ("train", "val")
MAX_BUCKETS_PER_SPLIT = 256  # open spill files; beyond this, buckets grow past the shard size
BYTES_PER_TOKEN_GUESS = 3.0  # text bytes per token, to size the buckets before tokenizing
READ_ROWS = 1024
DTYPES = {"uint16": pa.uint16(), "uint32": pa.uint32()}


class TokenizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenizer: str = Field(description="a tokenizer folder (tokenizer.json + tokenizer_config.json)")
    val_fraction: float = Field(0.01, ge=0, lt=1, description="share of documents in the validation split")
    min_val_docs_per_domain: int = Field(
        10, ge=0, description="at least this many validation documents per domain (at most half the domain)"
    )
    shard_size_mb: float = Field(256, gt=0, description="target size of a shard's token data")
    bos: bool = Field(False, description="start every document with the BOS token (EOS always ends it)")
    seed: int = Field(0, description="shuffle seed")
    dtype: Literal["auto", "uint16", "uint32"] = Field("auto", description="token id type; auto: uint16 when it fits")
    batch_mb: float = Field(2, gt=0, description="text per encode_batch call")


def shard_schema(dtype: pa.DataType) -> pa.Schema:
    return pa.schema(
        [
            pa.field("input_ids", pa.list_(pa.field("item", dtype, nullable=False)), nullable=False),
            pa.field("domain", pa.string()),
            pa.field("source", pa.string()),
            pa.field("id", pa.string(), nullable=False),
        ]
    )


def choose_dtype(requested: str, extent: int, tokdir: str) -> pa.DataType:
    if requested == "auto":
        return pa.uint16() if extent <= 1 << 16 else pa.uint32()
    limit = {"uint16": 1 << 16, "uint32": 1 << 32}[requested]
    if extent > limit:
        raise CorpusError(f"{tokdir}: token ids reach {extent - 1:,}, too large for {requested} (use --dtype uint32 or auto)")
    return DTYPES[requested]


# ---------------------------------------------------------------- reading


def _check_columns(path: str) -> None:
    names = set(pq.read_schema(path).names)
    missing = [c for c in ("id", "text", "domain", "source") if c not in names]
    if missing:
        raise CorpusError(f"{path}: not a document file (missing column {', '.join(missing)})")


def _rows_per_read(parquet: pq.ParquetFile, target_bytes: float) -> int:
    """Rows per read so one read holds about a quarter of a batch of text, however long the documents."""
    meta = parquet.metadata
    if meta.num_rows == 0:
        return READ_ROWS
    text_column = parquet.schema_arrow.get_field_index("text")
    text_bytes = sum(meta.row_group(g).column(text_column).total_uncompressed_size for g in range(meta.num_row_groups))
    return int(max(1, min(READ_ROWS, target_bytes / 4 / max(1.0, text_bytes / meta.num_rows))))


def _check_utf8(batch: pa.RecordBatch, path: str) -> None:
    texts = batch.column(batch.schema.get_field_index("text"))
    try:
        texts.validate(full=True)
    except pa.ArrowInvalid:
        ids = batch.column(batch.schema.get_field_index("id")).to_pylist()
        for doc_id, value in zip(ids, texts.cast(pa.large_binary()).to_pylist()):
            try:
                (value or b"").decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(f"{path}: document {doc_id}: text is not valid UTF-8 ({e.reason} at byte {e.start}); "
                                  "ingest rejects such records, so this file was not made by it") from None  # fmt: skip
        raise


def read_batches(files: list[str], columns: list[str], target_bytes: float) -> Iterator[pa.Table]:
    """Tables of about `target_bytes` of text, in file order."""
    pending, pending_bytes = [], 0
    for path in files:
        try:
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=_rows_per_read(parquet, target_bytes), columns=columns):
                _check_utf8(batch, path)
                pending.append(batch)
                pending_bytes += batch.column(columns.index("text")).nbytes
                if pending_bytes >= target_bytes:
                    yield pa.Table.from_batches(pending)
                    pending, pending_bytes = [], 0
        except (OSError, pa.ArrowException) as e:
            raise CorpusError(f"{path}: cannot read documents ({' '.join(str(e).split())[:160]})") from None
    if pending:
        yield pa.Table.from_batches(pending)


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run an iterator in a thread so Parquet reading overlaps tokenization (both release the GIL)."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work():
        try:
            for item in items:
                box.put(item)
        except BaseException as e:  # handed to the consumer, raised there
            box.put(e)
        box.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := box.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def empty_mask(texts: pa.ChunkedArray) -> np.ndarray:
    """Documents with no text but whitespace: nothing to tokenize."""
    # utf8_is_space is true when every character is whitespace, false for the empty string.
    blank = pc.or_(pc.equal(pc.binary_length(texts), 0), pc.utf8_is_space(texts))
    return pc.fill_null(blank, True).to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------- pass 1: the validation split


class ValidationPlan:
    """Which documents are validation: hash below `val_fraction`, or among a domain's smallest hashes."""

    def __init__(self, val_fraction: float, min_per_domain: int):
        self.val_fraction = val_fraction
        self.min_per_domain = min_per_domain
        self.docs: dict[str, int] = {}
        self.smallest: dict[str, np.ndarray] = {}
        self.text_bytes = 0
        self.cutoff: dict[str, np.uint64] = {}

    def observe(self, domains: list[str], hashes: np.ndarray) -> None:
        domain_of = np.asarray(domains, dtype=object)
        for domain in set(domains):
            mine = hashes[domain_of == domain]
            self.docs[domain] = self.docs.get(domain, 0) + len(mine)
            if self.min_per_domain:
                both = np.concatenate([self.smallest.get(domain, np.empty(0, np.uint64)), mine])
                keep = min(self.min_per_domain, len(both))
                self.smallest[domain] = np.sort(np.partition(both, keep - 1)[:keep]) if keep else both[:0]

    def finish(self) -> None:
        for domain, count in self.docs.items():
            wanted = min(self.min_per_domain, count // 2)  # never the whole of a small domain
            self.cutoff[domain] = self.smallest[domain][wanted - 1] if wanted else None

    def is_val(self, domains: list[str], hashes: np.ndarray) -> np.ndarray:
        val = unit_interval(hashes) < self.val_fraction
        domain_of = np.asarray(domains, dtype=object)
        for domain in set(domains):
            cutoff = self.cutoff.get(domain)
            if cutoff is not None:
                val |= (domain_of == domain) & (hashes <= cutoff)
        return val


def plan_validation(files: list[str], config: TokenizeConfig) -> ValidationPlan:
    plan = ValidationPlan(config.val_fraction, config.min_val_docs_per_domain)
    for table in read_batches(files, ["id", "text", "domain"], 8e6):
        keep = ~empty_mask(table.column("text"))
        plan.text_bytes += int(pc.sum(pc.binary_length(table.column("text").filter(keep))).as_py() or 0)
        ids = table.column("id").filter(keep).to_pylist()
        domains = pc.fill_null(table.column("domain").filter(keep), "unknown").to_pylist()
        plan.observe(domains, id_hashes(ids))
    plan.finish()
    return plan


# ---------------------------------------------------------------- pass 2: tokenize and spill


def encode(tokenizer, texts: list[str], dtype: np.dtype, bos_id: int | None, eos_id: int):
    """Token ids of each text with BOS/EOS: (offsets int32 [n+1], values [total], text token counts [n])."""
    # encode_batch_fast skips character offsets, which token shards never use.
    encodings = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)(texts, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype, int(lengths.sum()))
    extra = 1 + (bos_id is not None)
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lengths + extra, out=offsets[1:])
    values = np.empty(offsets[-1], dtype)
    values[offsets[1:] - 1] = eos_id
    body = np.ones(offsets[-1], bool)
    body[offsets[1:] - 1] = False
    if bos_id is not None:
        values[offsets[:-1]] = bos_id
        body[offsets[:-1]] = False
    values[body] = flat
    if offsets[-1] > np.iinfo(np.int32).max:
        raise CorpusError(f"one encode batch holds {offsets[-1]:,} tokens; lower --batch-mb")
    return offsets.astype(np.int32), values, lengths


class BucketSpill:
    """Per-split hash buckets written as Arrow IPC streams; each bucket is a random subset."""

    def __init__(self, folder: Path, schema: pa.Schema, buckets: dict[str, int]):
        self.folder = folder
        self.schema = schema.append(pa.field("key", pa.uint64()))
        self.buckets = buckets
        self.writers: dict[tuple[str, int], pa.ipc.RecordBatchStreamWriter] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, split: str, bucket: int) -> Path:
        return self.folder / f"{split}-{bucket:05d}.arrows"

    def write(self, split: str, table: pa.Table) -> None:
        n = self.buckets[split]
        table = table.cast(self.schema)
        bucket = (table.column("key").to_numpy() % np.uint64(n)).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        table = table.take(pa.array(order))
        starts = np.searchsorted(bucket[order], np.arange(n + 1))
        for b in range(n):
            if starts[b + 1] > starts[b]:
                writer = self.writers.get((split, b))
                if writer is None:
                    writer = self.writers[(split, b)] = pa.ipc.new_stream(str(self.path(split, b)), self.schema)
                writer.write_table(table.slice(starts[b], starts[b + 1] - starts[b]))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def read(self, split: str, bucket: int) -> pa.Table | None:
        path = self.path(split, bucket)
        if not path.exists():
            return None
        with pa.ipc.open_stream(pa.memory_map(str(path))) as reader:
            table = reader.read_all()
        return table


# ---------------------------------------------------------------- pass 3: shards


def shard_stats(table: pa.Table) -> dict:
    tokens = pc.list_value_length(table.column("input_ids"))
    by = pa.table({"domain": pc.fill_null(table.column("domain"), "unknown"), "tokens": tokens})
    grouped = by.group_by("domain").aggregate([("tokens", "sum"), ("tokens", "count")]).sort_by("domain")
    by_domain = {
        d: {"docs": int(c), "tokens": int(t)}
        for d, t, c in zip(grouped["domain"].to_pylist(), grouped["tokens_sum"].to_pylist(), grouped["tokens_count"].to_pylist())
    }
    return {"docs": table.num_rows, "tokens": int(pc.sum(tokens).as_py() or 0), "by_domain": by_domain}


def write_shard(path: Path, table: pa.Table, schema: pa.Schema) -> dict:
    from corpus.document import file_sha256

    table = table.select(schema.names).cast(schema).combine_chunks()
    tmp = path.with_name(path.name + ".tmp")
    with pa.ipc.new_file(str(tmp), schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))  # one batch: one flat token stream
    tmp.replace(path)
    return {"file": path.name, **shard_stats(table), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def write_split_shards(spill: BucketSpill, split: str, out: Path, schema: pa.Schema, shard_bytes: float) -> list[dict]:
    """Join buckets until a shard's size, order rows by the seeded key, cut into shards."""
    itemsize = schema.field("input_ids").type.value_type.byte_width
    shards: list[dict] = []
    pending: list[pa.Table] = []
    pending_tokens = 0

    def flush():
        nonlocal pending, pending_tokens
        table = pa.concat_tables(pending).combine_chunks()
        table = table.take(pc.sort_indices(table, [("key", "ascending"), ("id", "ascending")]))
        pieces = max(1, round(pending_tokens * itemsize / shard_bytes))
        # Equal token counts per piece; cut between documents.
        cumulative = np.cumsum(pc.list_value_length(table.column("input_ids")).to_numpy())
        cuts = [0, *np.searchsorted(cumulative, [cumulative[-1] * k / pieces for k in range(1, pieces)]).tolist(), table.num_rows]
        for start, stop in itertools.pairwise(cuts):
            if stop > start:
                entry = write_shard(out / f"{split}-{len(shards):05d}.arrow", table.slice(start, stop - start), schema)
                shards.append({"split": split, **entry})
        pending, pending_tokens = [], 0

    for bucket in range(spill.buckets[split]):
        table = spill.read(split, bucket)
        if table is None:
            continue
        pending.append(table)
        pending_tokens += int(pc.sum(pc.list_value_length(table.column("input_ids"))).as_py() or 0)
        if pending_tokens * itemsize >= shard_bytes:
            flush()
        spill.path(split, bucket).unlink()
    if pending and sum(t.num_rows for t in pending):
        flush()
    return shards


# ---------------------------------------------------------------- the command


def is_shards_folder(path: Path) -> bool:
    return (Path(path) / INDEX_JSON).is_file() and (Path(path) / CARD_JSON).is_file()


def tokenize_dataset(inputs: list[str], output: str | Path, config: TokenizeConfig, overwrite: bool = False,
                     command: list[str] | None = None, name: str | None = None, fingerprint: str | None = None) -> dict:  # fmt: skip
    from corpus.execution import dataset_inputs

    files, lineage = dataset_inputs(inputs)
    for f in files:
        _check_columns(f)
    tokenizer, specials = load_tokenizer(config.tokenizer)
    if "eos" not in specials:
        raise CorpusError(f"{config.tokenizer}: tokenizer_config.json names no eos_token; documents need one to end with")
    if config.bos and "bos" not in specials:
        raise CorpusError(f"{config.tokenizer}: --bos asked for, but tokenizer_config.json names no bos_token")
    eos_id = specials["eos"][1]
    bos_id = specials["bos"][1] if config.bos else None
    extent = vocab_extent(tokenizer)
    dtype = choose_dtype(config.dtype, extent, config.tokenizer)
    target = PartialOutput(output, overwrite, is_shards_folder, inputs)
    partial = target.start()
    try:
        card = _tokenize_into(partial, files, lineage, inputs, config, tokenizer, extent, dtype, eos_id, bos_id, command,
                              name or Path(output).name, fingerprint)  # fmt: skip
    except BaseException:
        target.abandon()
        raise
    final = target.finish()
    acc = card["accounting"][-1]
    rej = ", ".join(f"{k} {v:,}" for k, v in acc["rejected"].items()) or "none"
    say(f"tokenize: {acc['docs_in']:,} documents in, {acc['kept']:,} tokenized ({card['stats']['tokens']:,} tokens in "
        f"{card['stats']['shards']} shards), rejected: {rej} -> {final}")  # fmt: skip
    return card


def _tokenize_into(partial: Path, files, lineage, inputs, config: TokenizeConfig, tokenizer, extent, dtype, eos_id, bos_id,
                   command, name, fingerprint) -> dict:  # fmt: skip
    np_dtype = np.dtype(dtype.to_pandas_dtype())
    schema = shard_schema(dtype)

    plan = plan_validation(files, config)
    shard_bytes = config.shard_size_mb * 1e6
    estimated = plan.text_bytes / BYTES_PER_TOKEN_GUESS * np_dtype.itemsize
    val_minimum = sum(1 for c in plan.cutoff.values() if c is not None) * config.min_val_docs_per_domain
    val_share = min(1.0, config.val_fraction + val_minimum / max(1, sum(plan.docs.values())))
    # Four buckets per shard keep shard sizes within about a quarter of the target.
    buckets = {
        split: min(MAX_BUCKETS_PER_SPLIT, max(1, math.ceil(4 * estimated * share / shard_bytes)))
        for split, share in (("train", 1 - val_share), ("val", val_share))
    }
    spill = BucketSpill(partial / SPILL_DIR, schema, buckets)
    rejected_writer = pq.ParquetWriter(str(partial / REJECTED_PARQUET), REJECTED_SCHEMA, compression="zstd")
    docs_in, rejected = 0, {}
    say(f"tokenize: {plan.text_bytes / 1e6:,.1f} MB of text, {sum(plan.docs.values()):,} documents, {dtype} ids")
    for table in prefetch(read_batches(files, ["id", "text", "domain", "source"], config.batch_mb * 1e6)):
        docs_in += table.num_rows
        empty = empty_mask(table.column("text"))
        if empty.any():
            _reject(rejected_writer, rejected, table.filter(pa.array(empty)), "empty", "no text but whitespace")
            table = table.filter(pa.array(~empty))
        if not table.num_rows:
            continue
        offsets, values, lengths = encode(tokenizer, table.column("text").to_pylist(), np_dtype, bos_id, eos_id)
        no_tokens = lengths == 0
        input_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=dtype))
        hashes = id_hashes(table.column("id").to_pylist())
        domains = pc.fill_null(table.column("domain"), "unknown").to_pylist()
        rows = pa.table(
            {
                "input_ids": input_ids,
                "domain": table.column("domain"),
                "source": table.column("source"),
                "id": table.column("id"),
                "key": mix_seed(hashes, config.seed),
            }
        )
        if no_tokens.any():
            _reject(rejected_writer, rejected, table.filter(pa.array(no_tokens)), "no_tokens", "the tokenizer produced no tokens")
            rows, hashes = rows.filter(pa.array(~no_tokens)), hashes[~no_tokens]
            domains = [d for d, n in zip(domains, no_tokens) if not n]
        val = plan.is_val(domains, hashes)
        spill.write("val", rows.filter(pa.array(val)))
        spill.write("train", rows.filter(pa.array(~val)))
    spill.close()
    rejected_writer.close()

    shards = []
    for split in SPLITS:
        shards += write_split_shards(spill, split, partial, schema, shard_bytes)
    shutil.rmtree(partial / SPILL_DIR)

    kept = sum(s["docs"] for s in shards)
    if docs_in != kept + sum(rejected.values()):
        raise CorpusError(f"tokenize: accounting does not add up: {docs_in} in, {kept} tokenized, {rejected} rejected")
    index = build_index(config, tokenizer, extent, dtype, eos_id, bos_id, shards)
    (partial / INDEX_JSON).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    card = shards_card(inputs, lineage, config, index, docs_in, kept, rejected, command, name)
    card["fingerprint"] = fingerprint
    from corpus.tokenize.report import write_shards_card

    write_shards_card(partial, card, index)
    return card


REJECTED_SCHEMA = pa.schema(
    [("id", pa.string()), ("domain", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)


def _reject(writer: pq.ParquetWriter, counts: dict, table: pa.Table, reason: str, detail: str) -> None:
    n = table.num_rows
    writer.write_table(
        pa.table(
            {
                "id": table.column("id"),
                "domain": table.column("domain"),
                "source": table.column("source"),
                "reason": pa.array([reason] * n, pa.string()),
                "detail": pa.array([detail] * n, pa.string()),
            },
            schema=REJECTED_SCHEMA,
        )
    )
    counts[reason] = counts.get(reason, 0) + n


def build_index(config, tokenizer, extent, dtype, eos_id, bos_id, shards: list[dict]) -> dict:
    totals = {"docs": 0, "tokens": 0, "by_split": {}}
    for s in shards:
        totals["docs"] += s["docs"]
        totals["tokens"] += s["tokens"]
        split = totals["by_split"].setdefault(s["split"], {"docs": 0, "tokens": 0, "shards": 0})
        split["docs"] += s["docs"]
        split["tokens"] += s["tokens"]
        split["shards"] += 1
    return {
        "format": "corpus-token-shards",
        "format_version": 1,
        "tokenizer": {
            "path": str(Path(config.tokenizer).resolve()),
            "sha256": tokenizer_sha256(Path(config.tokenizer)),
            "vocab_size": extent,
        },
        "dtype": str(dtype),
        "eos_id": eos_id,
        "bos_id": bos_id,
        "seed": config.seed,
        "val_fraction": config.val_fraction,
        "min_val_docs_per_domain": config.min_val_docs_per_domain,
        "columns": ["input_ids", "domain", "source", "id"],
        "shards": shards,
        "totals": totals,
    }


def shards_card(inputs, lineage, config, index, docs_in, kept, rejected, command, name) -> dict:
    upstream: list[dict] = []
    for item in lineage:
        try:
            for row in json.loads((Path(item["path"]) / CARD_JSON).read_text())["accounting"]:
                if row not in upstream:
                    upstream.append(row)
        except (OSError, KeyError, json.JSONDecodeError):
            pass
    by_split_domain: dict[str, dict] = {}
    for s in index["shards"]:
        for domain, v in s["by_domain"].items():
            slot = by_split_domain.setdefault(s["split"], {}).setdefault(domain, {"docs": 0, "tokens": 0})
            slot["docs"] += v["docs"]
            slot["tokens"] += v["tokens"]
    return {
        "card_version": 1,
        "name": name,
        "stage": "tokenize",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "corpus", "version": corpus.__version__},
        "command": command if command is not None else sys.argv,
        "config": config.model_dump(),
        "inputs": lineage,
        "accounting": upstream + [{"stage": "tokenize", "docs_in": docs_in, "kept": kept, "rejected": dict(rejected)}],
        "stats": {"docs": kept, "tokens": index["totals"]["tokens"], "shards": len(index["shards"]), "by_split_domain": by_split_domain},
        "index_sha256": _sha256_text(json.dumps(index, indent=2) + "\n"),
    }


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()
