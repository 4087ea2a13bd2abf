"""The two parallel passes of dedup, as datatrove steps.

Every document gets a `row key`: its position in the inputs' data files taken in sorted order
(the file's first row number plus the row within the file). It depends only on the inputs, never on
the task count, so the global clustering between the passes, and so the output, is the same however
the work is split.

Pass 1 (`SignatureWriter`, per task) writes each document's facts (id, source, exact hash, shingle
count ...) and its LSH band hashes as Parquet under the work folder, one file per band and task, so
the clustering reads one band at a time instead of holding every bucket in memory.
Pass 2 (`DuplicateMarker`, per task) reads the decisions of the clustering and marks the rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from corpus.document import reject_where, to_working
from corpus.execution import DatasetReader, conform, read_batches, unified_schema
from corpus.progress import task_progress
from corpus.stage_stats import write_task_stats

ROW_KEY = "_row_key"
ADDED_COLUMNS = ("cluster_id", "cluster_size", "duplicate_of")

# inside the work folder
NODES_DIR = "nodes"
BANDS_DIR = "bands"
DECISIONS_FILE = "decisions.parquet"

NODE_SCHEMA = pa.schema(
    [
        pa.field("row_key", pa.int64()),
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("n_chars", pa.int64()),
        pa.field("quality", pa.float64()),
        pa.field("exact_hash", pa.uint64()),
        pa.field("shingles", pa.int64()),
    ]
)
BAND_SCHEMA = pa.schema([pa.field("band_hash", pa.uint64()), pa.field("row_key", pa.int64())])


def band_dir(root: Path, band: int) -> Path:
    return Path(root) / BANDS_DIR / f"band-{band:03d}"


class RowKeyedReader(DatasetReader):
    """DatasetReader that adds each row's key; `columns` limits what is read (pass 1 needs no url)."""

    def __init__(self, files, row_starts, work_dir, stage, progress=True, columns=None, stats_step="reader"):
        super().__init__(files, work_dir, stage, progress)
        self.row_starts = row_starts
        self.columns = columns
        self.stats_step = stats_step

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        schema = unified_schema(self.files)
        if self.columns is not None:
            schema = pa.schema([schema.field(c) for c in self.columns if c in schema.names])
        docs_in = 0
        mine = list(range(len(self.files)))[rank::world_size]
        for index in task_progress(mine, self.stage, rank, enabled=self.progress):
            row = self.row_starts[index]
            columns = [c for c in schema.names if c in pq.read_schema(self.files[index]).names]
            for batch in read_batches(self.files[index], columns):
                table = conform(pa.Table.from_batches([batch]), schema)
                keys = pa.array(np.arange(row, row + table.num_rows, dtype=np.int64))
                row += table.num_rows
                docs_in += table.num_rows
                table = to_working(table) if self.columns is None else table
                yield table.append_column(ROW_KEY, keys)
        write_task_stats(self.work_dir, self.stats_step, rank, {"files": len(mine), "docs_in": docs_in})


class SignatureWriter(PipelineStep):
    """Pass 1: per document its facts and band hashes."""

    name = "dedup signatures"
    type = "dedup"

    def __init__(self, dedup_dir: str, config, quality_column: str | None):
        super().__init__()
        self.dedup_dir = dedup_dir
        self.config = config
        self.quality_column = quality_column

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator:
        from corpus.dedup import minhash  # numba: only the signature pass pays for loading it

        cfg = self.config
        root = Path(self.dedup_dir)
        use_minhash = cfg.mode in ("minhash", "both")
        perm_a, perm_b = minhash.permutations(cfg.seed, cfg.bands * cfg.rows)
        node_writer = _AtomicParquet(root / NODES_DIR / f"part-{rank:05d}.parquet", NODE_SCHEMA)
        band_writers = (
            # hashes neither compress nor repeat: written plain, without a dictionary, they cost a quarter
            [_AtomicParquet(band_dir(root, b) / f"part-{rank:05d}.parquet", BAND_SCHEMA, "none", dictionary=False)
             for b in range(cfg.bands)]
            if use_minhash
            else []
        )
        for table in data:
            texts = table.column("text")
            keys = table.column(ROW_KEY)
            if use_minhash:
                sig, shingles, exact, n_chars = minhash.minhash_signatures(texts, cfg.ngram, perm_a, perm_b, cfg.exact_normalisation)
                has_shingles = shingles > 0  # an empty text has no shingle and joins no bucket
                bands = minhash.band_hashes(sig, cfg.bands, cfg.rows)
                key_values = keys.to_numpy()[has_shingles]
                for b, writer in enumerate(band_writers):
                    writer.write(pa.table({"band_hash": bands[has_shingles, b], "row_key": key_values}, schema=BAND_SCHEMA))
            else:
                exact = minhash.exact_hashes(texts, cfg.exact_normalisation)
                shingles = np.zeros(table.num_rows, dtype=np.int64)
                n_chars = pc.utf8_length(pc.fill_null(texts, "")).cast(pa.int64())
            quality = (
                table.column(self.quality_column).cast(pa.float64())
                if self.quality_column
                else pa.nulls(table.num_rows, pa.float64())
            )
            node_writer.write(
                pa.table(
                    {
                        "row_key": keys,
                        "id": table.column("id"),
                        "source": table.column("source"),
                        "domain": table.column("domain"),
                        "n_chars": n_chars,
                        "quality": quality,
                        "exact_hash": exact,
                        "shingles": shingles,
                    },
                    schema=NODE_SCHEMA,
                )
            )
        node_writer.close()
        for writer in band_writers:
            writer.close()
        return iter(())


class _AtomicParquet:
    """One Parquet file written under a temporary name and renamed when complete (empty is fine)."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str = "zstd", dictionary: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_suffix(".parquet.tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema, compression=compression, use_dictionary=dictionary)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()
        os.replace(self.tmp, self.path)


class DuplicateMarker(PipelineStep):
    """Pass 2: sets cluster_id, cluster_size, duplicate_of and the reason of removed duplicates."""

    name = "dedup marker"
    type = "dedup"

    def __init__(self, decisions_file: str):
        super().__init__()
        self.decisions_file = decisions_file

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        decisions = pq.read_table(self.decisions_file)  # sorted by row_key; only rows in clusters of 2+
        decided_keys = decisions.column("row_key").to_numpy()
        for table in data:
            for name in ADDED_COLUMNS:  # a second dedup replaces the first one's columns
                if name in table.column_names:
                    table = table.drop_columns([name])
            keys = table.column(ROW_KEY).to_numpy()
            pos = np.minimum(np.searchsorted(decided_keys, keys), max(len(decided_keys) - 1, 0))
            hit = (decided_keys[pos] == keys) if len(decided_keys) else np.zeros(len(keys), dtype=bool)
            if hit.any():
                found = decisions.take(pa.array(pos))
                in_cluster = pa.array(hit)
                cluster_id = pc.if_else(in_cluster, found.column("cluster_id"), table.column("id"))
                cluster_size = pc.if_else(in_cluster, found.column("cluster_size"), pa.scalar(1, pa.int64()))
                duplicate_of = pc.if_else(in_cluster, found.column("duplicate_of"), pa.scalar(None, pa.string()))
                reason = pc.if_else(in_cluster, found.column("reason"), pa.scalar(None, pa.string()))
            else:
                cluster_id = table.column("id")
                cluster_size = pa.array(np.ones(len(keys), dtype=np.int64))
                duplicate_of = pa.nulls(len(keys), pa.string())
                reason = pa.nulls(len(keys), pa.string())
            table = table.drop_columns([ROW_KEY])
            table = table.append_column("cluster_id", cluster_id.cast(pa.string()))
            table = table.append_column("cluster_size", cluster_size.cast(pa.int64()))
            table = table.append_column("duplicate_of", duplicate_of.cast(pa.string()))
            for why in ("exact_duplicate", "near_duplicate"):
                table = reject_where(table, pc.equal(reason, why), why)
            yield table
