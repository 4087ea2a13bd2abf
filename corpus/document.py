"""The document schema and the dataset-folder contract, in one place.

A dataset folder::

    OUT/
      data/*.parquet       kept documents (DOCUMENT_SCHEMA plus the columns stages add)
      rejected/*.parquet   dropped documents: the same columns plus `reason` and `detail`
      card.json            machine-readable card
      README.md            human card

Inside a running stage, documents travel as Arrow tables with the document columns plus `reason`
and `detail`; a null `reason` means the document is kept. Stages never drop rows: they set a
reason, and the writer sorts rows into data/ and rejected/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.shard_format import file_sha256  # noqa: F401  (a card's files are hashed as shards are)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("url", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("lang_score", pa.float32()),
        pa.field("metadata", pa.string()),  # JSON object
    ]
)
DOCUMENT_COLUMNS = DOCUMENT_SCHEMA.names
REJECT_FIELDS = [pa.field("reason", pa.string()), pa.field("detail", pa.string())]
REJECT_COLUMNS = [f.name for f in REJECT_FIELDS]
WORKING_SCHEMA = pa.schema(list(DOCUMENT_SCHEMA) + REJECT_FIELDS)

DATA_DIR = "data"
REJECTED_DIR = "rejected"
CARD_JSON = "card.json"
CARD_README = "README.md"

_WHITESPACE = re.compile(r"\s+")


def normalise_for_id(text: str) -> str:
    """The text an id is computed from: NFC, whitespace runs collapsed, stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def document_id(text: str) -> str:
    """Stable content hash: 128-bit BLAKE2b of the normalised text, as 32 hex digits."""
    return hashlib.blake2b(normalise_for_id(text).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def bytes_id(raw: bytes) -> str:
    """Id of an undecodable record: the hash of its raw bytes."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def metadata_json(metadata: dict[str, Any] | None) -> str:
    return json.dumps(metadata or {}, ensure_ascii=False, sort_keys=True, default=str)


def records_to_table(records: Iterable[dict[str, Any]], source: str | None, domain: str | None) -> pa.Table:
    """Build a working table from record dicts.

    A record has `text` and optionally `id`, `url`, `lang`, `lang_score`, `metadata` (dict),
    `reason` and `detail`. Missing ids are computed from the text.
    """
    cols: dict[str, list] = {name: [] for name in WORKING_SCHEMA.names}
    for rec in records:
        text = rec.get("text") or ""
        cols["id"].append(rec.get("id") or document_id(text))
        cols["text"].append(text)
        cols["source"].append(rec.get("source", source))
        cols["domain"].append(rec.get("domain", domain))
        cols["url"].append(rec.get("url"))
        cols["lang"].append(rec.get("lang"))
        cols["lang_score"].append(rec.get("lang_score"))
        cols["metadata"].append(metadata_json(rec.get("metadata")))
        cols["reason"].append(rec.get("reason"))
        cols["detail"].append(rec.get("detail"))
    return pa.table(cols, schema=WORKING_SCHEMA)


def to_working(table: pa.Table) -> pa.Table:
    """A kept-document table read from data/ as a working table (reason and detail null)."""
    for f in REJECT_FIELDS:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


def reject_where(table: pa.Table, mask: pa.ChunkedArray | pa.Array, reason: str, detail=None) -> pa.Table:
    """Set `reason` (and `detail`) on rows where mask is true and no earlier rule rejected them."""
    current = table.column("reason")
    newly = pc.and_(pc.fill_null(mask, False), pc.is_null(current))
    reasons = pc.if_else(newly, pa.scalar(reason, pa.string()), current)
    detail_values = detail if detail is not None else pa.nulls(table.num_rows, pa.string())
    details = pc.if_else(newly, detail_values, table.column("detail"))
    table = table.set_column(table.schema.get_field_index("reason"), "reason", reasons)
    return table.set_column(table.schema.get_field_index("detail"), "detail", details)


def split_kept_rejected(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    rejected_mask = pc.is_valid(table.column("reason"))
    kept = table.filter(pc.invert(rejected_mask)).drop_columns(REJECT_COLUMNS)
    return kept, table.filter(rejected_mask)


# ---------------------------------------------------------------- dataset folders


def is_dataset(path: Path) -> bool:
    return (Path(path) / CARD_JSON).is_file() and (Path(path) / DATA_DIR).is_dir()


def data_files(dataset: Path) -> list[Path]:
    return sorted((Path(dataset) / DATA_DIR).glob("*.parquet"))


def rejected_files(dataset: Path) -> list[Path]:
    return sorted((Path(dataset) / REJECTED_DIR).glob("*.parquet"))


def read_card(dataset: Path) -> dict:
    with open(Path(dataset) / CARD_JSON, encoding="utf-8") as f:
        return json.load(f)


ROW_GROUP_ROWS = 8_192  # rows gathered into one Parquet row group before it is written
ROW_GROUP_BYTES = 32 << 20  # ... or this many bytes of Arrow data, whichever comes first
UNSTATED_COLUMNS = ("text", "metadata", "detail")  # long strings: no min/max statistics in the footer


class PartWriter:
    """Writes one task's rows into `folder/part-RANK-NNNN.parquet`, rotating by row count.

    Each file is written under a temporary name and renamed when closed, so a crashed task leaves
    no file that looks complete. `clear()` removes a previous attempt's files of the same task.
    """

    def __init__(self, folder: Path, rank: int, max_rows_per_file: int = 200_000, prefix: str = "part",
                 stamp: dict[str, str] | None = None):  # fmt: skip
        self.folder = Path(folder)
        self.stamp = {k.encode(): v.encode() for k, v in (stamp or {}).items()}  # key-value metadata of each file
        self.rank = rank
        self.prefix = prefix  # another prefix lets a second writer of the same task share the folder
        self.max_rows = max_rows_per_file
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._rows_in_file = 0
        self._index = 0
        self._tmp_path: Path | None = None
        self._pending: list[pa.Table] = []  # tables not yet written, gathered into one row group
        self._pending_rows = self._pending_bytes = 0
        self.files: list[Path] = []

    def clear(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob(f"{self.prefix}-{self.rank:05d}-*"):
            old.unlink()

    def write(self, table: pa.Table) -> None:
        """Small tables (a reader's one-document tables) are gathered into row groups of
        ROW_GROUP_ROWS rows or ROW_GROUP_BYTES bytes: one row group per document would make every
        later read and footer slow."""
        if table.num_rows == 0:
            return
        if self._schema is None:
            self._schema = table.schema
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = self._pending[0] if len(self._pending) == 1 else pa.concat_tables(self._pending)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open(table.schema)
            room = self.max_rows - self._rows_in_file
            chunk = table.slice(offset, room)
            self._writer.write_table(chunk, row_group_size=50_000)
            self._rows_in_file += chunk.num_rows
            offset += chunk.num_rows
            if self._rows_in_file >= self.max_rows:
                self._close_file()

    def _open(self, schema: pa.Schema) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._schema = schema
        final = self.folder / f"{self.prefix}-{self.rank:05d}-{self._index:04d}.parquet"
        self._tmp_path = final.with_suffix(".parquet.tmp")
        if self.stamp:
            schema = schema.with_metadata({**(schema.metadata or {}), **self.stamp})
        # min/max statistics of a text column would copy whole documents into the footer
        stats = [f.name for f in schema if f.name not in UNSTATED_COLUMNS]
        self._writer = pq.ParquetWriter(self._tmp_path, schema, compression="zstd", write_statistics=stats)
        self._rows_in_file = 0

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        final = self._tmp_path.with_suffix("")  # drop .tmp
        os.replace(self._tmp_path, final)
        self.files.append(final)
        self._writer = None
        self._index += 1

    def close(self) -> None:
        self._flush()
        self._close_file()
