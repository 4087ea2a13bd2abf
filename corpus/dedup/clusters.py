"""The global step of dedup: candidate pairs from band buckets, connected components, keep rule.

Buckets are read one band at a time from the Parquet files pass 1 wrote; within a bucket every
member is linked to the bucket's smallest node (a star, not all pairs: the same components with
`size - 1` edges). Edges of all bands are de-duplicated and joined into components by union-find,
so no Python object exists per document. Memory is one band's (hash, node) columns plus the edges,
which grow with the number of duplicates, not with the corpus.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import numba

from corpus.dedup.index import SavedIndex, write_index
from corpus.dedup.steps import DECISIONS_FILE, NODES_DIR, band_dir
from corpus.errors import StageFailed

# Nodes of a saved index (`--against`) are numbered after this run's rows and rank before them.
AGAINST_PRIORITY = -1


def star_edges(buckets: pl.DataFrame, key: str) -> pl.DataFrame:
    """(src, dst) linking each member of a bucket of 2+ to the bucket's smallest node."""
    return (
        buckets.lazy()
        .with_columns(pl.col("node").min().over(key).alias("src"))
        .filter(pl.col("node") != pl.col("src"))
        .select("src", pl.col("node").alias("dst"))
        .collect()
    )


@numba.njit(cache=True, nogil=True)
def _root(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@numba.njit(cache=True, nogil=True)
def connected_components(n, src, dst):
    """Component of each of `n` nodes given undirected edges: union-find; a component is named by
    its smallest node, so labels do not depend on the order of the edges."""
    parent = np.arange(n)
    for e in range(src.shape[0]):
        a = _root(parent, src[e])
        b = _root(parent, dst[e])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    labels = np.empty(n, dtype=np.int64)
    for x in range(n):
        labels[x] = _root(parent, x)
    return labels


def _no_edges() -> pl.DataFrame:
    return pl.DataFrame({"src": [], "dst": []}, schema={"src": pl.Int64, "dst": pl.Int64})


def _verify(near: pl.DataFrame, config, total_rows: int, files: list[str], row_starts: list[int], workers: int):
    """The candidate pairs that pass verification, and the counts for the card."""
    facts = {"candidate_pairs": near.height, "verification": "jaccard" if config.verify else "off"}
    if not config.verify:
        return near, facts
    from corpus.dedup.verify import verify_pairs

    jaccard = verify_pairs(near["src"].to_numpy(), near["dst"].to_numpy(), files, row_starts, total_rows,
                           config.ngram, config.exact_normalisation, workers)  # fmt: skip
    unverified = np.isnan(jaccard)  # a saved index's document: its text is not here
    keep = unverified | (jaccard >= config.threshold)
    facts |= {
        "threshold": config.threshold,
        "verified_pairs": int((keep & ~unverified).sum()),
        "rejected_pairs": int((~keep).sum()),
        "unverified_pairs": int(unverified.sum()),
    }
    return near.filter(pl.Series(keep)), facts


def near_duplicate_clusters(work_dedup: Path, out_dir: Path, config, total_rows: int, against: list[SavedIndex],
                            data_files: list[str] | None = None, row_starts: list[int] | None = None, workers: int = 1) -> dict:  # fmt: skip
    """Cluster, decide, write decisions.parquet (and the output index); returns facts for the card.

    With `config.verify`, MinHash candidate pairs are checked against the texts in `data_files` (whose
    first row keys are `row_starts`) before they link documents.
    """
    work_dedup = Path(work_dedup)
    decisions_path = work_dedup / DECISIONS_FILE
    nodes = pl.read_parquet(work_dedup / NODES_DIR / "*.parquet").sort("row_key")
    if nodes.height != total_rows or (nodes.height and nodes["row_key"][-1] != total_rows - 1):
        raise StageFailed(f"dedup: signatures cover {nodes.height} of {total_rows} rows; rerun to resume")

    # the nodes of saved indexes, numbered after ours
    offset = total_rows
    index_nodes = []
    for saved in against:
        ids = saved.ids().with_row_index("node", offset=offset).with_columns(pl.col("node").cast(pl.Int64))
        index_nodes.append(ids)
        saved.node_offset = offset
        offset += ids.height

    edge_parts: list[pl.DataFrame] = []
    if config.mode in ("exact", "both"):
        exact = [nodes.select("exact_hash", pl.col("row_key").alias("node"))]
        exact += [ids.select("exact_hash", "node") for ids in index_nodes]
        edge_parts.append(star_edges(pl.concat(exact), "exact_hash"))
    pair_facts = {}
    if config.mode in ("minhash", "both"):
        near_parts: list[pl.DataFrame] = []
        for band in range(config.bands):
            files = sorted(band_dir(work_dedup, band).glob("*.parquet"))
            parts = [pl.read_parquet(f).select("band_hash", pl.col("row_key").alias("node")) for f in files]
            parts += [saved.band(band) for saved in against]
            parts = [p for p in parts if p.height]
            if not parts:
                continue
            near_parts.append(star_edges(pl.concat(parts), "band_hash"))
            if len(near_parts) > 4:  # keep the running edge list small
                near_parts = [pl.concat(near_parts).unique()]
        near = pl.concat(near_parts).unique() if near_parts else _no_edges()
        near, pair_facts = _verify(near, config, total_rows, data_files or [], row_starts or [], workers)
        edge_parts.append(near)
    edges = pl.concat(edge_parts).unique() if edge_parts else _no_edges()

    # connected components over the nodes that have an edge, renumbered densely
    linked = np.unique(np.concatenate([edges["src"].to_numpy(), edges["dst"].to_numpy()]))
    src = np.searchsorted(linked, edges["src"].to_numpy())
    dst = np.searchsorted(linked, edges["dst"].to_numpy())
    labels = connected_components(len(linked), src.astype(np.int64), dst.astype(np.int64))
    members = pl.DataFrame({"node": linked.astype(np.int64), "component": labels.astype(np.int64)})

    priority = {name: i for i, name in enumerate(config.source_priority)}
    attributes = nodes.select(
        pl.col("row_key").alias("node"),
        "id",
        "source",
        "domain",
        "exact_hash",
        "quality",
        "n_chars",
        pl.col("source").replace_strict(priority, default=len(priority), return_dtype=pl.Int64).alias("priority"),
    )
    if index_nodes:
        attributes = pl.concat(
            [
                attributes,
                *[
                    ids.select(
                        "node", "id", "source", pl.lit(None, pl.String).alias("domain"), "exact_hash",
                        pl.lit(None, pl.Float64).alias("quality"), pl.lit(None, pl.Int64).alias("n_chars"),
                        pl.lit(AGAINST_PRIORITY, pl.Int64).alias("priority"),
                    )
                    for ids in index_nodes
                ],
            ]
        )
    # keep rule: saved index first, then source priority, then quality, then length, then id
    ranked = (
        members.join(attributes, on="node", how="left")
        .sort(
            ["component", "priority", "quality", "n_chars", "id", "node"],
            descending=[False, False, True, True, False, False],
            nulls_last=True,
        )
        .with_columns(
            pl.col("id").first().over("component").alias("keeper_id"),
            pl.col("exact_hash").first().over("component").alias("keeper_hash"),
            pl.col("node").first().over("component").alias("keeper_node"),
            pl.len().over("component").alias("cluster_size"),
        )
    )
    removed_reason = (
        pl.when(pl.col("node") == pl.col("keeper_node"))
        .then(None)
        .when((pl.col("exact_hash") == pl.col("keeper_hash")) | pl.lit(config.mode == "exact"))
        .then(pl.lit("exact_duplicate"))
        .otherwise(pl.lit("near_duplicate"))
    )
    decisions = (
        ranked.filter(pl.col("node") < total_rows)
        .select(
            pl.col("node").alias("row_key"),
            pl.col("keeper_id").alias("cluster_id"),
            pl.col("cluster_size").cast(pl.Int64),
            pl.when(pl.col("node") == pl.col("keeper_node")).then(None).otherwise(pl.col("keeper_id")).alias("duplicate_of"),
            removed_reason.alias("reason"),
            (pl.col("keeper_node") >= total_rows).alias("against_index"),
            "source",
            "domain",
        )
        .sort("row_key")
    )

    removed_keys = decisions.filter(pl.col("reason").is_not_null())["row_key"].to_numpy()
    index_facts = write_index(out_dir, work_dedup, config, nodes, removed_keys)

    tmp = decisions_path.with_suffix(".parquet.tmp")
    decisions.select("row_key", "cluster_id", "cluster_size", "duplicate_of", "reason").write_parquet(tmp)
    os.replace(tmp, decisions_path)
    return {
        "candidate_edges": edges.height,
        **pair_facts,
        "index": index_facts,
        "removed_against_index": int(decisions.filter(pl.col("against_index") & pl.col("reason").is_not_null()).height),
    }


def read_decisions(work_dedup: Path) -> pa.Table:
    return pq.read_table(Path(work_dedup) / DECISIONS_FILE)
