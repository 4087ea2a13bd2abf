"""Dedup's facts for the data card: rates per source and domain, cluster sizes, example clusters."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import polars as pl

from corpus.dedup.steps import DECISIONS_FILE, NODES_DIR
from corpus.document import data_files, rejected_files

SIZE_BUCKETS = [(2, 2), (3, 4), (5, 8), (9, 16), (17, 64), (65, None)]
SNIPPET_WORDS = 30


def _rates(nodes: pl.DataFrame, decisions: pl.DataFrame, column: str) -> dict:
    removed = decisions.filter(pl.col("reason").is_not_null()).select("row_key", pl.lit(1).alias("removed"))
    table = (
        nodes.join(removed, on="row_key", how="left")
        .group_by(pl.col(column).fill_null("unknown"))
        .agg(pl.len().alias("docs"), pl.col("removed").sum().alias("removed"))
        .sort(column)
    )
    return {
        row[column]: {"docs": row["docs"], "removed": row["removed"], "dedup_rate": round(row["removed"] / row["docs"], 4)}
        for row in table.iter_rows(named=True)
    }


def size_histogram(cluster_sizes: pl.Series) -> dict:
    out = {}
    for low, high in SIZE_BUCKETS:
        label = f"{low}" if low == high else (f"{low}+" if high is None else f"{low}-{high}")
        mask = (cluster_sizes >= low) if high is None else ((cluster_sizes >= low) & (cluster_sizes <= high))
        out[label] = int(mask.sum())
    return out


def differing_snippets(kept: str, removed: str, width: int = SNIPPET_WORDS) -> dict:
    """The first place two texts differ, as a few words of each around it."""
    a, b = kept.split()[:5000], removed.split()[:5000]
    for tag, i1, _, j1, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            start_a, start_b = max(0, i1 - 5), max(0, j1 - 5)
            return {"kept": " ".join(a[start_a : start_a + width]), "removed": " ".join(b[start_b : start_b + width])}
    return {"kept": " ".join(a[:width]), "removed": " ".join(b[:width]), "note": "same words; differ in spacing or case"}


def example_clusters(out_dir: Path, decisions: pl.DataFrame, count: int = 3) -> list[dict]:
    """The largest clusters (ties by id): the kept text beside one removed member's."""
    removed = decisions.filter(pl.col("reason").is_not_null() & pl.col("duplicate_of").is_not_null())
    if removed.height == 0:
        return []
    # near duplicates teach more than exact copies: clusters with one come first, then by size
    biggest = (
        removed.group_by("cluster_id")
        .agg(pl.col("cluster_size").first(), pl.col("reason").sort(descending=True).first())
        .sort(["reason", "cluster_size", "cluster_id"], descending=[True, True, False])
        .head(count)
    )
    wanted = biggest["cluster_id"].to_list()
    kept_files, rejected = data_files(out_dir), rejected_files(out_dir)
    kept_texts = {}
    if kept_files:
        df = pl.scan_parquet([str(f) for f in kept_files]).filter(pl.col("id").is_in(wanted)).select("id", "text").collect()
        kept_texts = dict(zip(df["id"], df["text"]))
    removed_texts = {}
    if rejected:
        df = (
            pl.scan_parquet([str(f) for f in rejected])
            .filter(pl.col("cluster_id").is_in(wanted))
            .select("cluster_id", "id", "text", "reason")
            .sort(["cluster_id", "reason", "id"], descending=[False, True, False])
            .unique("cluster_id", keep="first", maintain_order=True)
            .collect()
        )
        removed_texts = {row[0]: (row[1], row[2]) for row in df.iter_rows()}
    out = []
    for row in biggest.iter_rows(named=True):
        cid = row["cluster_id"]
        if cid not in removed_texts:
            continue
        removed_id, removed_text = removed_texts[cid]
        example = {"cluster_id": cid, "cluster_size": row["cluster_size"], "reason": row["reason"], "removed_id": removed_id}
        if cid in kept_texts:
            example |= differing_snippets(kept_texts[cid], removed_text)
        else:  # kept by a saved index: its text is not here
            example |= {"kept": "(in the --against dataset)", "removed": " ".join(removed_text.split()[:SNIPPET_WORDS])}
        out.append(example)
    return out


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def readme_section(facts: dict) -> str:
    """The card's Markdown section: rates, cluster sizes, examples side by side."""
    lines = ["## Duplicates", ""]
    lines.append(f"{facts['docs_in_clusters']:,} documents are in {facts['clusters']:,} clusters of two or more (mode `{facts['mode']}`).")
    if "candidate_pairs" in facts:
        if facts.get("verification") == "jaccard":
            line = (f"MinHash proposed {facts['candidate_pairs']:,} candidate pairs; verification (Jaccard of the word "
                    f"shingle sets at least {facts['threshold']}) kept {facts['verified_pairs']:,} and rejected "
                    f"{facts['rejected_pairs']:,}")  # fmt: skip
            if facts.get("released_from_chains"):
                line += (f"; {facts['released_from_chains']:,} documents linked only through others were not close enough "
                         "to their cluster's kept document and left it")  # fmt: skip
            if facts.get("unverified_pairs"):
                line += f"; {facts['unverified_pairs']:,} pairs with a `--against` document were kept unverified"
            lines.append(line + ".")
        else:
            lines.append(f"MinHash proposed {facts['candidate_pairs']:,} candidate pairs, all linked unverified (`--no-verify`).")
    if facts.get("removed_against_index"):
        lines.append(f"{facts['removed_against_index']:,} documents were removed as copies of a `--against` dataset.")
    lines += ["", "| source | documents | removed | dedup rate |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['docs']:,} | {v['removed']:,} | {v['dedup_rate']:.2%} |" for k, v in facts["by_source"].items()]
    lines += ["", "| domain | documents | removed | dedup rate |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['docs']:,} | {v['removed']:,} | {v['dedup_rate']:.2%} |" for k, v in facts["by_domain"].items()]
    hist = facts["cluster_size_histogram"]
    lines += ["", "| cluster size | " + " | ".join(hist) + " |", "|---|" + "---:|" * len(hist)]
    lines.append("| clusters | " + " | ".join(f"{v:,}" for v in hist.values()) + " |")
    if facts["example_clusters"]:
        lines += ["", "Example clusters, where the kept and a removed text first differ:", ""]
        lines += ["| cluster (size, reason) | kept | removed |", "|---|---|---|"]
        for ex in facts["example_clusters"]:
            head = f"`{ex['cluster_id'][:12]}` ({ex['cluster_size']}, {ex['reason']})"
            lines.append(f"| {head} | {_cell(ex['kept'])} | {_cell(ex['removed'])} |")
    return "\n".join(lines)


def dedup_card_facts(out_dir: Path, dedup_dir: Path, config) -> dict:
    dedup_dir = Path(dedup_dir)
    nodes = pl.read_parquet(dedup_dir / NODES_DIR / "*.parquet", columns=["row_key", "source", "domain"])
    decisions = pl.read_parquet(dedup_dir / DECISIONS_FILE)
    facts_path = dedup_dir / "cluster_facts.json"
    cluster_facts = json.loads(facts_path.read_text(encoding="utf-8")) if facts_path.exists() else {}
    clusters = decisions.group_by("cluster_id").agg(pl.col("cluster_size").first())
    facts = {
        "mode": config.mode,
        "clusters": clusters.height,
        "docs_in_clusters": decisions.height,
        "cluster_size_histogram": size_histogram(clusters["cluster_size"]),
        "by_source": _rates(nodes, decisions, "source"),
        "by_domain": _rates(nodes, decisions, "domain"),
        "example_clusters": example_clusters(Path(out_dir), decisions),
        **cluster_facts,
    }
    return {"dedup": facts, "readme_sections": [readme_section(facts)]}
