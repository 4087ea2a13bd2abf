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


def _verify(near: pl.DataFrame, sets, config) -> tuple[pl.DataFrame, dict]:
    """The candidate pairs that pass verification, and the counts for the card."""
    facts = {"candidate_pairs": near.height, "verification": "jaccard" if config.verify else "off"}
    if not config.verify:
        return near, facts
    jaccard = sets.jaccard(near["src"].to_numpy(), near["dst"].to_numpy()) if sets is not None else np.zeros(0)
    unverified = np.isnan(jaccard)  # a saved index's document: its text is not here
    keep = unverified | (jaccard >= config.threshold)
    facts |= {
        "threshold": config.threshold,
        "verified_pairs": int((keep & ~unverified).sum()),
        "rejected_pairs": int((~keep).sum()),
        "unverified_pairs": int(unverified.sum()),
    }
    return near.filter(pl.Series(keep)), facts


def _components(edges: pl.DataFrame) -> pl.DataFrame:
    """(node, component) of every node with an edge: union-find over densely renumbered nodes."""
    linked = np.unique(np.concatenate([edges["src"].to_numpy(), edges["dst"].to_numpy()]))
    src = np.searchsorted(linked, edges["src"].to_numpy())
    dst = np.searchsorted(linked, edges["dst"].to_numpy())
    labels = connected_components(len(linked), src.astype(np.int64), dst.astype(np.int64))
    return pl.DataFrame({"node": linked.astype(np.int64), "component": linked[labels].astype(np.int64)})


def _rank(members: pl.DataFrame, attributes: pl.DataFrame) -> pl.DataFrame:
    """Members in keep order per component, each with its component's keeper and size.
    Keep rule: saved index first, then source priority, then quality, then length, then id."""
    return (
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


def _read_nodes(work_dedup: Path, total_rows: int) -> pl.DataFrame:
    """Pass 1's per-row signature facts, in row-key order; every row must have one."""
    nodes = pl.read_parquet(work_dedup / NODES_DIR / "*.parquet").sort("row_key")
    if nodes.height != total_rows or (nodes.height and nodes["row_key"][-1] != total_rows - 1):
        raise StageFailed(f"dedup: signatures cover {nodes.height} of {total_rows} rows; rerun to resume")
    return nodes


def _number_index_nodes(against: list[SavedIndex], total_rows: int) -> tuple[list[pl.DataFrame], int]:
    """The nodes of saved indexes, numbered after ours (each index remembers its first node), and the
    number of nodes in all."""
    offset = total_rows
    index_nodes = []
    for saved in against:
        ids = saved.ids().with_row_index("node", offset=offset).with_columns(pl.col("node").cast(pl.Int64))
        index_nodes.append(ids)
        saved.node_offset = offset
        offset += ids.height
    return index_nodes, offset


def _exact_edges(nodes: pl.DataFrame, index_nodes: list[pl.DataFrame]) -> pl.DataFrame:
    """Star edges within each exact-hash bucket, this run's nodes and the saved indexes'."""
    exact = [nodes.select("exact_hash", pl.col("row_key").alias("node"))]
    exact += [ids.select("exact_hash", "node") for ids in index_nodes]
    return star_edges(pl.concat(exact), "exact_hash")


def _candidate_edges(work_dedup: Path, bands: int, against: list[SavedIndex]) -> pl.DataFrame:
    """MinHash candidate pairs: star edges within the buckets of every band, ours and the saved indexes'."""
    near_parts: list[pl.DataFrame] = []
    for band in range(bands):
        files = sorted(band_dir(work_dedup, band).glob("*.parquet"))
        parts = [pl.read_parquet(f).select("band_hash", pl.col("row_key").alias("node")) for f in files]
        parts += [saved.band(band) for saved in against]
        parts = [p for p in parts if p.height]
        if not parts:
            continue
        near_parts.append(star_edges(pl.concat(parts), "band_hash"))
        if len(near_parts) > 4:  # keep the running edge list small
            near_parts = [pl.concat(near_parts).unique()]
    return pl.concat(near_parts).unique() if near_parts else _no_edges()


def _read_linked_shingle_sets(near: pl.DataFrame, exact: list[pl.DataFrame], config, total_rows: int,
                              data_files: list[str] | None, row_starts: list[int] | None, workers: int):  # fmt: skip
    """The shingle sets of every node with an edge, read again from the texts for verification."""
    from corpus.dedup.verify import read_shingle_sets

    linked = [near["src"], near["dst"]] + [e[c] for e in exact for c in ("src", "dst")]
    return read_shingle_sets(pl.concat(linked).to_numpy(), data_files or [], row_starts or [], total_rows,
                             config.ngram, config.exact_normalisation, workers)  # fmt: skip


def _edges(work_dedup: Path, config, nodes: pl.DataFrame, index_nodes: list[pl.DataFrame], against: list[SavedIndex],
           total_rows: int, data_files: list[str] | None, row_starts: list[int] | None, workers: int):  # fmt: skip
    """Exact edges and verified MinHash edges, de-duplicated; the shingle sets read to verify (None when
    nothing was verified) and the pair counts for the card."""
    edge_parts: list[pl.DataFrame] = []
    if config.mode in ("exact", "both"):
        edge_parts.append(_exact_edges(nodes, index_nodes))
    pair_facts = {}
    sets = None
    if config.mode in ("minhash", "both"):
        near = _candidate_edges(work_dedup, config.bands, against)
        if config.verify and near.height:
            sets = _read_linked_shingle_sets(near, edge_parts, config, total_rows, data_files, row_starts, workers)
        near, pair_facts = _verify(near, sets, config)
        edge_parts.append(near)
    edges = pl.concat(edge_parts).unique() if edge_parts else _no_edges()
    return edges, sets, pair_facts


def _node_attributes(nodes: pl.DataFrame, index_nodes: list[pl.DataFrame], source_priority: list[str]) -> pl.DataFrame:
    """What the keep rule reads of every node: ours from pass 1, a saved index's with AGAINST_PRIORITY."""
    priority = {name: i for i, name in enumerate(source_priority)}
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
    return attributes


def _release_chains(ranked: pl.DataFrame, members: pl.DataFrame, edges: pl.DataFrame, attributes: pl.DataFrame,
                    sets, threshold: float, n_nodes: int) -> tuple[pl.DataFrame, int]:  # fmt: skip
    """The ranking once every removed document is verified against its keeper, and how many left."""
    released_total, rounds = 0, 0
    while True:
        # a removed document must itself be a near duplicate of the one kept in its place: members of a
        # chain A~B~C that fail against their keeper leave, and form clusters of their own
        check = ranked.filter(
            (pl.col("node") != pl.col("keeper_node")) & (pl.col("exact_hash") != pl.col("keeper_hash"))
        )
        jaccard = sets.jaccard(check["node"].to_numpy(), check["keeper_node"].to_numpy())
        failed = check["node"].to_numpy()[jaccard < threshold]  # NaN (an index document) passes
        if len(failed) == 0:
            return ranked, released_total
        released_total += len(failed)
        rounds += 1
        inside = edges.filter(pl.col("src").is_in(failed) & pl.col("dst").is_in(failed))
        regrouped = _components(inside)
        alone = pl.DataFrame({"node": failed}).join(regrouped, on="node", how="anti")
        regrouped = pl.concat([regrouped, alone.with_columns(pl.col("node").alias("component"))])
        # new component names: node numbers shifted past every name used so far
        regrouped = regrouped.with_columns(pl.col("component") + n_nodes * rounds)
        members = pl.concat([members.filter(~pl.col("node").is_in(failed)), regrouped.select("node", "component")])
        ranked = _rank(members, attributes)


def _decisions(ranked: pl.DataFrame, mode: str, total_rows: int) -> pl.DataFrame:
    """One row per document of this run in a cluster of 2+: its cluster, keeper and removal reason."""
    ranked = ranked.filter(pl.col("cluster_size") > 1)
    removed_reason = (
        pl.when(pl.col("node") == pl.col("keeper_node"))
        .then(None)
        .when((pl.col("exact_hash") == pl.col("keeper_hash")) | pl.lit(mode == "exact"))
        .then(pl.lit("exact_duplicate"))
        .otherwise(pl.lit("near_duplicate"))
    )
    return (
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


def _write_decisions(work_dedup: Path, out_dir: Path, config, nodes: pl.DataFrame, decisions: pl.DataFrame) -> dict:
    """The output index, then decisions.parquet (atomically); returns the index's facts."""
    removed_keys = decisions.filter(pl.col("reason").is_not_null())["row_key"].to_numpy()
    index_facts = write_index(out_dir, work_dedup, config, nodes, removed_keys)

    decisions_path = work_dedup / DECISIONS_FILE
    tmp = decisions_path.with_suffix(".parquet.tmp")
    decisions.select("row_key", "cluster_id", "cluster_size", "duplicate_of", "reason").write_parquet(tmp)
    os.replace(tmp, decisions_path)
    return index_facts


def _card_facts(edges: pl.DataFrame, pair_facts: dict, index_facts: dict, decisions: pl.DataFrame) -> dict:
    return {
        "candidate_edges": edges.height,
        **pair_facts,
        "index": index_facts,
        "removed_against_index": int(decisions.filter(pl.col("against_index") & pl.col("reason").is_not_null()).height),
    }


def near_duplicate_clusters(work_dedup: Path, out_dir: Path, config, total_rows: int, against: list[SavedIndex],
                            data_files: list[str] | None = None, row_starts: list[int] | None = None, workers: int = 1) -> dict:  # fmt: skip
    """Cluster, decide, write decisions.parquet (and the output index); returns facts for the card.

    With `config.verify`, MinHash candidate pairs are checked against the texts in `data_files` (whose
    first row keys are `row_starts`) before they link documents.
    """
    work_dedup = Path(work_dedup)
    nodes = _read_nodes(work_dedup, total_rows)
    index_nodes, n_nodes = _number_index_nodes(against, total_rows)
    edges, sets, pair_facts = _edges(work_dedup, config, nodes, index_nodes, against, total_rows,
                                     data_files, row_starts, workers)  # fmt: skip
    members = _components(edges)
    attributes = _node_attributes(nodes, index_nodes, config.source_priority)
    ranked = _rank(members, attributes)
    if sets is not None:
        ranked, pair_facts["released_from_chains"] = _release_chains(
            ranked, members, edges, attributes, sets, config.threshold, n_nodes
        )
    decisions = _decisions(ranked, config.mode, total_rows)
    index_facts = _write_decisions(work_dedup, out_dir, config, nodes, decisions)
    return _card_facts(edges, pair_facts, index_facts, decisions)


def read_decisions(work_dedup: Path) -> pa.Table:
    return pq.read_table(Path(work_dedup) / DECISIONS_FILE)
