"""The dedup index a dataset folder keeps so later data can be deduplicated against it.

    OUT/dedup_index/
      meta.json                 settings the hashes depend on (a mismatch is refused)
      ids.parquet               id, source, exact_hash of every kept document; row i is node i
      bands/band-NNN.parquet    band_hash, node (ascending): the LSH buckets of the kept documents

Only hashes and ids: a later `corpus dedup NEW --against OUT` never re-reads the old texts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from corpus.dedup import minhash
from corpus.dedup.steps import band_dir
from corpus.errors import CorpusError

INDEX_DIR = "dedup_index"
META_FILE = "meta.json"
# settings that must be equal for hashes to be comparable
MATCHING_KEYS = ("hash_version", "ngram", "bands", "rows", "seed", "exact_normalisation")


def index_meta(config) -> dict:
    return {
        "hash_version": minhash.HASH_VERSION,
        "mode": config.mode,
        "ngram": config.ngram,
        "bands": config.bands,
        "rows": config.rows,
        "seed": config.seed,
        "exact_normalisation": config.exact_normalisation,
    }


class SavedIndex:
    """A saved index given to `--against`; its nodes are numbered from `node_offset` in a run."""

    def __init__(self, path: str | Path, config):
        given = Path(path)
        folder = given / INDEX_DIR if (given / INDEX_DIR).is_dir() else given
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise CorpusError(f"{given}: no dedup index here (expected {INDEX_DIR}/{META_FILE}, written by corpus dedup)")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CorpusError(f"{meta_path}: unreadable dedup index metadata: {e}") from None
        wanted = index_meta(config)
        for key in MATCHING_KEYS:
            if self.meta.get(key) != wanted[key]:
                raise CorpusError(
                    f"{given}: its dedup index was built with {key}={self.meta.get(key)!r}, this run uses {wanted[key]!r}; "
                    "rerun with the same setting"
                )
        if config.mode in ("minhash", "both") and self.meta.get("mode") == "exact":
            raise CorpusError(f"{given}: its dedup index has exact hashes only (mode exact); use --mode exact")
        self.folder = folder
        self.path = str(given.resolve())
        self.node_offset = 0

    def lineage(self) -> dict:
        meta_text = (self.folder / META_FILE).read_text(encoding="utf-8")
        return {"kind": "dedup_index", "path": self.path, "docs": self.meta.get("docs"), "meta": json.loads(meta_text)}

    def ids(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / "ids.parquet").select("id", "source", "exact_hash")

    def band(self, band: int) -> pl.DataFrame:
        path = band_dir(self.folder, band).with_suffix(".parquet")
        if not path.is_file():
            return pl.DataFrame(schema={"band_hash": pl.UInt64, "node": pl.Int64})
        return pl.read_parquet(path).select("band_hash", (pl.col("node") + self.node_offset).alias("node"))


def write_index(out_dir: Path, work_dedup: Path, config, nodes: pl.DataFrame, removed_keys: np.ndarray) -> dict:
    """Write OUT/dedup_index for the kept documents (written whole, then renamed into place)."""
    final = Path(out_dir) / INDEX_DIR
    tmp = Path(out_dir) / (INDEX_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "bands").mkdir(parents=True)
    kept = nodes.filter(~pl.col("row_key").is_in(pl.Series(removed_keys, dtype=pl.Int64).implode()))
    kept.select("id", "source", "exact_hash").write_parquet(tmp / "ids.parquet")
    kept_keys = kept["row_key"].to_numpy()
    if config.mode in ("minhash", "both"):
        for band in range(config.bands):
            files = sorted(band_dir(work_dedup, band).glob("*.parquet"))
            frames = [pl.read_parquet(f) for f in files]
            buckets = pl.concat(frames) if frames else pl.DataFrame(schema={"band_hash": pl.UInt64, "row_key": pl.Int64})
            keys = buckets["row_key"].to_numpy()
            # a kept document is at most once in a band: place each hash at its node, in node order
            # (so the file is the same whatever the task count), without a sort
            pos = np.searchsorted(kept_keys, keys)
            is_kept = (pos < len(kept_keys)) & (kept_keys[np.minimum(pos, max(len(kept_keys) - 1, 0))] == keys) if len(kept_keys) else np.zeros(len(keys), bool)
            hashes = np.zeros(len(kept_keys), dtype=np.uint64)
            present = np.zeros(len(kept_keys), dtype=bool)
            hashes[pos[is_kept]] = buckets["band_hash"].to_numpy()[is_kept]
            present[pos[is_kept]] = True
            node = np.flatnonzero(present).astype(np.int64)
            pl.DataFrame({"band_hash": hashes[node], "node": node}).write_parquet(
                band_dir(tmp, band).with_suffix(".parquet"), compression="uncompressed"  # hashes do not compress
            )
    meta = index_meta(config) | {"docs": kept.height}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return {"path": INDEX_DIR, "docs": kept.height}
