"""`corpus tokenize`: a dataset folder -> Arrow IPC token shards the trainer memory-maps.

    OUT/
      train-00000.arrow ...  val-00000.arrow ...   one row per document: input_ids, domain, source, id
      index.json            tokenizer hash, dtype, per-shard doc/token counts per domain, sha256
      rejected.parquet      ids of documents not tokenized, with their reason (empty, no_tokens)
      card.json  README.md

Each shard is a single record batch, so its `input_ids` values are one flat token stream and its
offsets the document boundaries; `pyarrow.memory_map` opens it without a copy.

Memory stays bounded by the shard size, whatever the corpus size, with an external shuffle in two
passes on datatrove's executors (corpus/tokenize/tasks.py):
  1. tasks read their input files once, tokenize in large batches (`encode_batch_fast`, Rust
     threads) and spill each document into the key-range bucket of its seeded order key;
  2. the command joins the tasks' counts (the validation minimum per domain, the shard groups);
     tasks read one group of consecutive buckets at a time, order its rows by key and write shards.
The order depends only on the ids, the seed and the input order of documents sharing an id, not
on how the input was split into files or tasks.
"""

from __future__ import annotations

import itertools
import json
import math
import queue
import shutil
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
from corpus.errors import CorpusError, StageFailed
from corpus.outputs import OutputFolder, card_header
from corpus.progress import say
from corpus.shard_format import (
    INDEX_JSON,
    SHARD_COLUMNS,
    arrow_dtype,
    file_sha256,
    load_tokenizer,
    shard_stats,
    tokenizer_sha256,
    vocab_extent,
)

REJECTED_PARQUET = "rejected.parquet"
WORK_DIR = "_work"  # in OUT.partial: the passes' plan, spill buckets, counts and logs
SPLITS = ("train", "val")
MAX_BUCKETS = 256  # spill files per task; beyond this, buckets grow past a quarter of the shard size
BYTES_PER_TOKEN_GUESS = 3.0  # text bytes per token, to size the buckets before tokenizing
READ_ROWS = 1024


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


def choose_dtype(requested: str, extent: int, tokdir: str) -> pa.DataType:
    if requested == "auto":
        return pa.uint16() if extent <= 1 << 16 else pa.uint32()
    limit = {"uint16": 1 << 16, "uint32": 1 << 32}[requested]
    if extent > limit:
        raise CorpusError(f"{tokdir}: token ids reach {extent - 1:,}, too large for {requested} (use --dtype uint32 or auto)")
    return arrow_dtype(requested)


# ---------------------------------------------------------------- reading


def _check_inputs(files: list[str]) -> int:
    """Every data file has the document columns; returns the text's size from the Parquet footers
    (uncompressed pages), enough to size the buckets. One footer read per file: with a column's
    statistics in it, a footer can hold a copy of the text."""
    total = 0
    for path in files:
        meta = pq.read_metadata(path)
        columns = [meta.schema.column(i).path for i in range(meta.num_columns)]
        missing = [c for c in ("id", "text", "domain", "source") if c not in columns]
        if missing:
            raise CorpusError(f"{path}: not a document file (missing column {', '.join(missing)})")
        text = columns.index("text")
        total += sum(meta.row_group(g).column(text).total_uncompressed_size for g in range(meta.num_row_groups))
    return total


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


def read_batches(files: list[str], columns: list[str], target_bytes: float, numbers: list[int] | None = None) -> Iterator[pa.Table]:
    """Tables of about `target_bytes` of text, in file order. With `numbers` (each file's number in
    the whole input), a `position` column: file number << 40 | row in the file, the document's
    place in the input whatever task reads it."""
    pending, pending_bytes = [], 0
    for k, path in enumerate(files):
        try:
            parquet = pq.ParquetFile(path)
            row = 0
            for batch in parquet.iter_batches(batch_size=_rows_per_read(parquet, target_bytes), columns=columns):
                _check_utf8(batch, path)
                if numbers is not None:
                    position = (numbers[k] << 40) + row + np.arange(batch.num_rows, dtype=np.uint64)
                    batch = batch.append_column("position", pa.array(position, pa.uint64()))
                    row += batch.num_rows
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


# ---------------------------------------------------------------- encoding


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


# ---------------------------------------------------------------- shards


def write_shard(path: Path, table: pa.Table, schema: pa.Schema) -> dict:
    table = table.select(schema.names).cast(schema).combine_chunks()
    tmp = path.with_name(path.name + ".tmp")
    with pa.ipc.new_file(str(tmp), schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))  # one batch: one flat token stream
    tmp.replace(path)
    return {"file": path.name, **shard_stats(table), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


# ---------------------------------------------------------------- the command


def is_shards_folder(path: Path) -> bool:
    return (Path(path) / INDEX_JSON).is_file() and (Path(path) / CARD_JSON).is_file()


def tokenize_dataset(inputs: list[str], output: str | Path, config: TokenizeConfig, overwrite: bool = False,
                     command: list[str] | None = None, name: str | None = None, fingerprint: str | None = None,
                     executor=None) -> dict | None:  # fmt: skip
    """Tokenize into `output` on `executor` (default: one local task). Returns the card, or None
    when the tasks of a pass were only submitted (Slurm: rerun the command when they finish)."""
    from corpus.execution import dataset_inputs
    from corpus.executors import ExecutorConfig, configure_main_logging

    executor = executor or ExecutorConfig()
    files, lineage = dataset_inputs(inputs)
    target = OutputFolder(output, overwrite, is_shards_folder, inputs, fingerprint)
    if target.up_to_date():
        say(f"tokenize: {output} is up to date (same inputs and config); nothing to do")
        return json.loads((target.final / CARD_JSON).read_text(encoding="utf-8"))
    target.check()  # before any work
    text_bytes = _check_inputs(files)
    tokenizer, specials = load_tokenizer(config.tokenizer)
    if "eos" not in specials:
        raise CorpusError(f"{config.tokenizer}: tokenizer_config.json names no eos_token; documents need one to end with")
    if config.bos and "bos" not in specials:
        raise CorpusError(f"{config.tokenizer}: --bos asked for, but tokenizer_config.json names no bos_token")
    eos_id = specials["eos"][1]
    bos_id = specials["bos"][1] if config.bos else None
    extent = vocab_extent(tokenizer)
    dtype = choose_dtype(config.dtype, extent, config.tokenizer)
    configure_main_logging()
    attempt = _sha256_text(json.dumps({"config": config.model_dump(), "files": files, "tokenizer": tokenizer_sha256(Path(config.tokenizer)),
                                       "executor": [executor.type, executor.tasks], "version": corpus.__version__}, sort_keys=True))  # fmt: skip
    partial = target.start(resume=attempt)
    try:
        card = _tokenize_into(partial, files, text_bytes, lineage, inputs, config, executor, tokenizer, extent, dtype, eos_id, bos_id,
                              command, name or Path(output).name, fingerprint)  # fmt: skip
    except CorpusError as e:
        if isinstance(e, StageFailed):
            target.release()  # a task failed: its finished siblings stay for the rerun
        else:
            target.abandon()  # bad input: nothing to resume
        raise
    except BaseException:
        target.release()  # interrupted: a rerun resumes
        raise
    if card is None:
        target.release()
        say(f"tokenize: submitted {executor.tasks} tasks to Slurm; rerun this command when they finish")
        return None
    final = target.finish()
    acc = card["accounting"][-1]
    rej = ", ".join(f"{k} {v:,}" for k, v in acc["rejected"].items()) or "none"
    say(f"tokenize: {acc['docs_in']:,} documents in, {acc['kept']:,} tokenized ({card['stats']['tokens']:,} tokens in "
        f"{card['stats']['shards']} shards), rejected: {rej} -> {final}")  # fmt: skip
    return card


def _run_pass(steps: list, executor, work: Path, name: str, tasks: int) -> bool:
    """Run one pass's tasks (those not completed by an earlier attempt); False: only submitted."""
    from corpus import lifetime
    from corpus.executors import build_executor

    cfg = executor.model_copy(update={"tasks": tasks})
    runner = build_executor(cfg, steps, str(work / f"logs-{name}"), threads=True)
    try:
        with lifetime.interrupts_stop_workers():
            runner.run()
    except CorpusError:  # bad input a task found: its one line
        raise
    except Exception as e:
        raise StageFailed(f"tokenize: a task of the {name} pass failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                          f"logs in {work / f'logs-{name}'}; rerun the same command to resume") from e  # fmt: skip
    incomplete = runner.get_incomplete_ranks(range(tasks))
    if incomplete and executor.type != "slurm":
        raise StageFailed(f"tokenize: tasks {incomplete} of the {name} pass did not complete; logs in {work / f'logs-{name}'}")
    return not incomplete


def _tokenize_into(partial: Path, files, text_bytes: int, lineage, inputs, config: TokenizeConfig, executor, tokenizer, extent, dtype, eos_id,
                   bos_id, command, name, fingerprint) -> dict | None:  # fmt: skip
    from corpus.tokenize import tasks as passes

    np_dtype = np.dtype(dtype.to_pandas_dtype())
    work = partial / WORK_DIR
    tasks = max(1, min(executor.tasks, len(files))) if executor.type != "slurm" else executor.tasks

    shard_bytes = config.shard_size_mb * 1e6
    # Four buckets per shard of train keep shard sizes within about a quarter of the target.
    buckets = min(MAX_BUCKETS, max(1, math.ceil(4 * text_bytes / BYTES_PER_TOKEN_GUESS * np_dtype.itemsize / shard_bytes)))
    say(f"tokenize: about {text_bytes / 1e6:,.1f} MB of text in {len(files)} files, {dtype} ids, {tasks} tasks")

    # pass 1: tokenize and spill into key-range buckets
    sha256 = tokenizer_sha256(Path(config.tokenizer))
    passes.remember_tokenizer(config.tokenizer, sha256, tokenizer)
    step = passes.TokenizeStep(files, str(work), config.tokenizer, sha256, str(dtype), eos_id, bos_id, config.seed, config.batch_mb,
                               buckets, config.val_fraction, config.min_val_docs_per_domain)  # fmt: skip
    if not _run_pass([step], executor, work, "tokenize", tasks):
        return None
    counts = [json.loads((work / passes.COUNTS_DIR / f"{r:05d}.json").read_text()) for r in range(tasks)]

    # between: the validation minimum per domain, then consecutive buckets into numbered shards
    cutoffs, per_bucket = passes.validation_minimum(counts, config.val_fraction, config.min_val_docs_per_domain)
    groups = passes.plan_groups(per_bucket, np_dtype.itemsize, shard_bytes)

    # pass 2: each group's rows of its split, in key order, cut into shards
    shard_tasks = max(1, min(tasks, len(groups)))
    step = passes.ShardStep(str(partial), str(work), str(dtype), groups, tasks, buckets, config.val_fraction, cutoffs)
    if groups and not _run_pass([step], executor, work, "shards", shard_tasks):
        return None
    entries = [e for r in range(shard_tasks if groups else 0) for e in json.loads((work / passes.ENTRIES_DIR / f"{r:05d}.json").read_text())]
    shards = sorted(entries, key=lambda e: (SPLITS.index(e["split"]), e["file"]))

    docs_in = sum(c["docs_in"] for c in counts)
    rejected: dict[str, int] = {}
    for c in counts:
        for reason, n in c["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + n
    rejected = dict(sorted(rejected.items()))
    kept = sum(s["docs"] for s in shards)
    if docs_in != kept + sum(rejected.values()):
        raise StageFailed(f"tokenize: accounting does not add up: {docs_in} in, {kept} tokenized, {rejected} rejected")
    parts = [pq.read_table(work / passes.REJECTED_DIR / f"{r:05d}.parquet") for r in range(tasks)]
    rejected_rows = pa.concat_tables(parts).sort_by([("id", "ascending"), ("reason", "ascending")])  # the same for any task count
    pq.write_table(rejected_rows, partial / REJECTED_PARQUET, compression="zstd")
    index = build_index(config, tokenizer, extent, dtype, eos_id, bos_id, shards)
    (partial / INDEX_JSON).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    card = shards_card(inputs, lineage, config, index, docs_in, kept, rejected, command, name)
    card["fingerprint"] = fingerprint
    card["executor"] = executor.model_dump(exclude_none=True)
    from corpus.tokenize.report import write_shards_card

    write_shards_card(partial, card, index)
    shutil.rmtree(work)
    return card


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
        "columns": list(SHARD_COLUMNS),
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
        **card_header(name, "tokenize", command),
        "config": config.model_dump(),
        "inputs": lineage,
        "accounting": upstream + [{"stage": "tokenize", "docs_in": docs_in, "kept": kept, "rejected": dict(rejected)}],
        "stats": {"docs": kept, "tokens": index["totals"]["tokens"], "shards": len(index["shards"]), "by_split_domain": by_split_domain},
        "index_sha256": _sha256_text(json.dumps(index, indent=2) + "\n"),
    }


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()
