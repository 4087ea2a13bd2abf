"""Data cards: card.json and README.md of a dataset folder, computed from its Parquet files."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import polars as pl

import corpus
from corpus.document import CARD_JSON, CARD_README, DATA_DIR, REJECTED_DIR, data_files, file_sha256, rejected_files

LIMITATIONS_HEADING = "## Known limitations"
LIMITATIONS_PLACEHOLDER = "_Write here what a user of this dataset should know. Regenerating the card keeps this section._"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(corpus.__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _scan(files: list[Path]) -> pl.LazyFrame | None:
    return pl.scan_parquet([str(f) for f in files]) if files else None


def dataset_stats(folder: Path) -> dict:
    """Counts and distributions of the kept documents, recomputed from data/*.parquet."""
    lf = _scan(data_files(folder))
    if lf is None:
        return {"docs": 0, "chars": 0, "by_domain": {}, "by_source": {}, "by_lang": {}, "length_chars": {}}
    # one pass over the texts: the small per-document columns, then every statistic from those
    lf = lf.select("domain", "source", "lang", pl.col("text").str.len_chars().alias("_chars")).collect(engine="streaming").lazy()
    totals = lf.select(pl.len().alias("docs"), pl.col("_chars").sum().alias("chars")).collect().row(0, named=True)

    def grouped(column: str) -> dict:
        df = (
            lf.group_by(pl.col(column).fill_null("unknown"))
            .agg(pl.len().alias("docs"), pl.col("_chars").sum().alias("chars"))
            .sort(column)
            .collect()
        )
        return {row[column]: {"docs": row["docs"], "chars": row["chars"]} for row in df.iter_rows(named=True)}

    quantiles = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
    qrow = lf.select([pl.col("_chars").quantile(q, "nearest").alias(f"p{int(q * 100)}") for q in quantiles]).collect()
    return {
        "docs": totals["docs"],
        "chars": totals["chars"] or 0,
        "by_domain": grouped("domain"),
        "by_source": grouped("source"),
        "by_lang": grouped("lang"),
        "length_chars": qrow.row(0, named=True),
    }


def examples(folder: Path, per_domain: int = 2, width: int = 200) -> dict:
    lf = _scan(data_files(folder))
    if lf is None:
        return {}
    # choose the ids from the small columns first, then read only their texts: a large dataset's
    # texts need not fit in memory
    chosen = (
        lf.select("domain", "id")
        .sort("id")
        .group_by(pl.col("domain").fill_null("unknown"), maintain_order=True)
        .head(per_domain)
        .collect()
    )
    openings = (
        lf.filter(pl.col("id").is_in(chosen["id"].implode()))
        .select("id", pl.col("text").str.slice(0, width).alias("opening"))
        .unique("id", keep="first")
        .collect()
    )
    df = chosen.join(openings, on="id", how="left", maintain_order="left")
    out: dict[str, list] = {}
    for row in df.iter_rows(named=True):
        out.setdefault(row["domain"], []).append({"id": row["id"], "opening": " ".join(row["opening"].split())})
    return out


def file_entries(folder: Path) -> list[dict]:
    entries = []
    for kind, files in (("data", data_files(folder)), ("rejected", rejected_files(folder))):
        for f in files:
            rows = pl.scan_parquet(str(f)).select(pl.len()).collect().item()
            entries.append({"path": f"{kind}/{f.name}", "rows": rows, "sha256": file_sha256(f)})
    return entries


def card_hash(card: dict) -> str:
    import hashlib

    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def write_card(
    folder: Path,
    *,
    name: str,
    stage: str,
    config: dict,
    inputs: list[dict],
    accounting: dict,
    stage_facts: dict,
    executor: dict,
    fingerprint: str,
    command: list[str] | None,
    pipeline_file: str | None,
) -> dict:
    folder = Path(folder)
    upstream: list[dict] = []
    for item in inputs:  # accounting of the stages that made the inputs, then this one
        if item.get("kind") == "dataset":
            try:
                upstream.extend(json.loads((Path(item["path"]) / CARD_JSON).read_text())["accounting"])
            except (OSError, KeyError, json.JSONDecodeError):
                pass
    card = {
        "card_version": 1,
        "name": name,
        "stage": stage,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "corpus", "version": corpus.__version__, "git_commit": git_commit()},
        "command": command if command is not None else sys.argv,
        "pipeline_file": pipeline_file,
        "fingerprint": fingerprint,
        "executor": executor,
        "config": config,
        "inputs": inputs,
        "accounting": _dedupe_accounting(upstream) + [accounting],
        "stage_facts": stage_facts,
        "stats": dataset_stats(folder),
        "rejected_stats": _rejected_stats(folder),
        "examples": examples(folder),
        "files": file_entries(folder),
    }
    card["card_sha256"] = card_hash(card)
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    from corpus.cards.readme import render_readme

    readme = folder / CARD_README
    previous = readme.read_text(encoding="utf-8") if readme.exists() else ""
    readme.write_text(render_readme(card, previous), encoding="utf-8")
    return card


def _dedupe_accounting(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for row in rows:
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _rejected_stats(folder: Path) -> dict:
    lf = _scan(rejected_files(folder))
    if lf is None:
        return {"docs": 0, "by_reason": {}}
    df = lf.group_by("reason").agg(pl.len().alias("docs")).sort("reason").collect()
    return {"docs": int(df["docs"].sum()), "by_reason": dict(zip(df["reason"].to_list(), df["docs"].to_list()))}
