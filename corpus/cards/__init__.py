"""Data cards: card.json, README.md and plots/ of a dataset folder, computed from its Parquet files.

Every number in a card is recomputed from the data when the card is written; `corpus card validate`
recomputes them again and compares. Field reference: data_cards/FIELDS.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.document import CARD_JSON, CARD_README, DOCUMENT_COLUMNS, data_files, file_sha256, rejected_files
from corpus.outputs import card_hash, card_header, git_commit, seal_card  # noqa: F401 (card_hash, git_commit: used from here)

LIMITATIONS_HEADING = "## Known limitations"
LIMITATIONS_PLACEHOLDER = "_Write here what a user of this dataset should know. Regenerating the card keeps this section._"
EXAMPLES_PER_DOMAIN, EXAMPLE_WIDTH = 3, 200  # documents per domain, characters of each
LENGTH_BINS = [0, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000]  # characters; the last bin is open
_NOT_SCORES = {"lang_score_bins"}


def _scan(files: list[Path]) -> pl.LazyFrame | None:
    return pl.scan_parquet([str(f) for f in files], missing_columns="insert", extra_columns="ignore") if files else None


def _length_histogram(lf: pl.LazyFrame) -> list[dict]:
    bins = LENGTH_BINS
    labels = [f"{lo}-{hi}" for lo, hi in zip(bins, bins[1:])] + [f"{bins[-1]}+"]
    index = pl.sum_horizontal([(pl.col("_chars") >= edge).cast(pl.Int32) for edge in bins[1:]]).alias("bin")
    found = dict(lf.select(index).group_by("bin").len().collect(engine="streaming").iter_rows())
    return [{"chars": label, "docs": found.get(i, 0)} for i, label in enumerate(labels)]


@dataclass
class TextPass:
    """What one pass over the kept documents' texts yields: per document its domain, source, lang and
    counts (small columns only), and the candidates for the card's examples."""

    docs: pl.DataFrame  # domain, source, lang, _chars, _words, _tokens
    has_tokens: bool
    examples: pl.DataFrame  # domain, id, opening: the first distinct ids by (domain, id) of each file


class TextTally:
    """Accumulates a TextPass from tables of documents as they go by (a data file being read, or a
    stage's writer as it writes), so the card needs no second pass over the texts."""

    def __init__(self, per_domain: int = EXAMPLES_PER_DOMAIN, width: int = EXAMPLE_WIDTH):
        self.per_domain, self.width = per_domain, width
        self.docs: list[pl.DataFrame] = []
        self.candidates: list[pl.DataFrame] = []
        self.has_tokens = False

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        from corpus.text_kernels import chars_and_words

        n = table.num_rows
        if n == 0:
            return
        names = table.schema.names
        self.has_tokens = self.has_tokens or "n_tokens" in names

        def column(name: str, dtype) -> pl.Series:
            if name in names:
                return pl.Series(name, table.column(name)).cast(dtype)
            return pl.Series(name, [None] * n, dtype=dtype)

        chars, words = chars_and_words(table.column("text"))
        domain = column("domain", pl.String)
        self.docs.append(pl.DataFrame([domain, column("source", pl.String), column("lang", pl.String),
                                       pl.Series("_chars", chars), pl.Series("_words", words),
                                       column("n_tokens", pl.Int64).alias("_tokens")]))  # fmt: skip
        # the first ids of each domain in this table, with the opening of their text
        keys = pl.DataFrame([domain.fill_null("unknown"), column("id", pl.String), pl.Series("row", range(n))])
        chosen = _first_per_domain(keys, self.per_domain)
        texts = table.column("text").take(pa.array(chosen["row"].to_numpy())).to_pylist()
        self.candidates.append(chosen.drop("row").with_columns(pl.Series("opening", [(t or "")[: self.width] for t in texts])))
        if len(self.candidates) > 8:
            self.candidates = [_first_per_domain(pl.concat(self.candidates), self.per_domain)]

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        docs = pl.concat(self.docs) if self.docs else pl.DataFrame(schema=_DOCS_SCHEMA)
        candidates = pl.concat(self.candidates) if self.candidates else pl.DataFrame(schema=_EXAMPLES_SCHEMA)
        return docs, _first_per_domain(candidates, self.per_domain)

    def save(self, folder: Path, rank: int, part: str = "") -> None:
        """Write this task's part (small columns only) for `load_tallies`. A step that writes rows to
        data/ beside the task's DatasetWriter (the mix's repeats) saves its own tally under a `part` name."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{rank:05d}-{part}" if part else f"{rank:05d}"
        docs, candidates = self.frames()
        from corpus.outputs import atomic_write

        with atomic_write(folder / f"docs-{name}.parquet") as tmp:
            docs.with_columns(pl.lit(self.has_tokens).alias("_has_tokens")).write_parquet(tmp)
        with atomic_write(folder / f"examples-{name}.parquet") as tmp:
            candidates.write_parquet(tmp)


def load_tallies(folder: Path, ranks: int, per_domain: int = EXAMPLES_PER_DOMAIN) -> TextPass | None:
    """The TextPass of a stage's writers and of any other step that saved a part (None if a task's
    writer part is missing, or a part lacks its examples: read the data instead)."""
    writers = [folder / f"docs-{rank:05d}.parquet" for rank in range(ranks)]
    docs_files = sorted(folder.glob("docs-*.parquet")) if folder.is_dir() else []
    example_files = [f.with_name("examples-" + f.name.removeprefix("docs-")) for f in docs_files]
    if not all(f in docs_files for f in writers) or not all(f.exists() for f in example_files):
        return None
    docs = [pl.read_parquet(f) for f in docs_files]
    has_tokens = any(bool(d["_has_tokens"].any()) for d in docs)
    return _merged([d.drop("_has_tokens") for d in docs], [pl.read_parquet(f) for f in example_files], has_tokens, per_domain)


def _merged(docs: list[pl.DataFrame], candidates: list[pl.DataFrame], has_tokens: bool, per_domain: int) -> TextPass:
    """One TextPass from the parts of several tallies."""
    all_docs = pl.concat(docs) if docs else pl.DataFrame(schema=_DOCS_SCHEMA)
    if not has_tokens:
        all_docs = all_docs.with_columns(pl.lit(None, pl.Int64).alias("_tokens"))
    all_candidates = pl.concat(candidates) if candidates else pl.DataFrame(schema=_EXAMPLES_SCHEMA)
    return TextPass(all_docs, has_tokens, _first_per_domain(all_candidates, per_domain))


def read_texts(folder: Path, per_domain: int = EXAMPLES_PER_DOMAIN, width: int = EXAMPLE_WIDTH) -> TextPass:
    """Read data/*.parquet once, the files in parallel threads (Parquet decoding and the counting
    kernel release the GIL); a file is read in batches, so memory holds one batch of text per thread."""
    from concurrent.futures import ThreadPoolExecutor

    def tally(path: Path) -> TextTally:
        tally = TextTally(per_domain, width)
        parquet = pq.ParquetFile(path)
        columns = [c for c in ("id", "text", "domain", "source", "lang", "n_tokens") if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=8192, columns=columns):
            tally.add(batch)
        return tally

    files = data_files(folder)
    with ThreadPoolExecutor(max_workers=max(1, min(len(files), os.cpu_count() or 1))) as pool:
        tallies = list(pool.map(tally, files))
    parts = [t.frames() for t in tallies]
    return _merged([d for d, _ in parts], [c for _, c in parts], any(t.has_tokens for t in tallies), per_domain)


_DOCS_SCHEMA = {"domain": pl.String, "source": pl.String, "lang": pl.String, "_chars": pl.Int64, "_words": pl.Int64,
                "_tokens": pl.Int64}  # fmt: skip
_EXAMPLES_SCHEMA = {"domain": pl.String, "id": pl.String, "opening": pl.String}


def _first_per_domain(candidates: pl.DataFrame, per_domain: int) -> pl.DataFrame:
    """The first `per_domain` distinct ids of each domain by (domain, id); of rows that share an id
    (a mix's repeats), the first by the other columns."""
    first = candidates.sort(candidates.columns).unique(["domain", "id"], keep="first", maintain_order=True)
    return first.group_by("domain", maintain_order=True).head(per_domain)


def dataset_stats(folder: Path, texts: TextPass | None = None) -> dict:
    """Counts and distributions of the kept documents, recomputed from data/*.parquet."""
    files = data_files(folder)
    empty = {"docs": 0, "chars": 0, "words": 0, "by_domain": {}, "by_source": {}, "by_lang": {},
             "length_chars": {}, "length_histogram": []}  # fmt: skip
    if not files:
        return empty
    texts = texts or read_texts(folder)
    token_col = texts.has_tokens
    lf = texts.docs.lazy()
    sums = [pl.len().alias("docs"), pl.col("_chars").sum().alias("chars"), pl.col("_words").sum().alias("words")]
    if token_col:
        sums.append(pl.col("_tokens").sum().alias("tokens"))
    totals = lf.select(sums).collect().row(0, named=True)

    def grouped(column: str) -> dict:
        df = lf.group_by(pl.col(column).fill_null("unknown")).agg(sums).sort(column).collect(engine="streaming")
        out = {}
        for row in df.iter_rows(named=True):
            key = row.pop(column)
            row["share_docs"] = round(row["docs"] / totals["docs"], 6)
            row["share_chars"] = round(row["chars"] / totals["chars"], 6) if totals["chars"] else 0.0
            out[key] = row
        return out

    quantiles = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
    qrow = lf.select([pl.col("_chars").quantile(q, "nearest").alias(f"p{int(q * 100)}") for q in quantiles]).collect(engine="streaming")
    stats = {k: (v or 0) for k, v in totals.items()}
    stats.update(
        by_domain=grouped("domain"),
        by_source=grouped("source"),
        by_lang=grouped("lang"),
        length_chars={k: int(v) for k, v in qrow.row(0, named=True).items()},
        length_histogram=_length_histogram(lf),
    )
    return stats


def score_summary(folder: Path) -> dict:
    """Quantiles of every numeric column a stage added (quality scores, cluster sizes, token counts)."""
    files = data_files(folder)
    if not files:
        return {}
    lf = _scan(files)
    schema = lf.collect_schema()
    numeric = [n for n, t in schema.items() if t.is_numeric() and n not in _NOT_SCORES and n not in ("id",)]
    if not numeric:
        return {}
    exprs = []
    for n in numeric:
        col = pl.col(n).cast(pl.Float64)
        exprs += [col.min().alias(f"{n}|min"), col.quantile(0.1).alias(f"{n}|p10"), col.median().alias(f"{n}|p50"),
                  col.quantile(0.9).alias(f"{n}|p90"), col.max().alias(f"{n}|max"), col.mean().alias(f"{n}|mean"),
                  col.null_count().alias(f"{n}|nulls")]  # fmt: skip
    row = lf.select(exprs).collect(engine="streaming").row(0, named=True)
    out: dict[str, dict] = {}
    for key, value in row.items():
        name, stat = key.split("|")
        out.setdefault(name, {})[stat] = None if value is None else (round(float(value), 6) if stat != "nulls" else int(value))
    return {name: s for name, s in out.items() if s["max"] is not None}  # all-null columns say nothing


def examples(folder: Path, per_domain: int = EXAMPLES_PER_DOMAIN, width: int = EXAMPLE_WIDTH,
             texts: TextPass | None = None) -> dict:
    """The first documents by id of each domain (distinct ids), with the opening of their text."""
    if not data_files(folder):
        return {}
    texts = texts or read_texts(folder, per_domain, width)
    out: dict[str, list] = {}
    for domain, doc_id, opening in _first_per_domain(texts.examples, per_domain).iter_rows():
        out.setdefault(domain, []).append({"id": doc_id, "opening": " ".join(opening.split())})
    return out


def file_entries(folder: Path) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor

    listed = [(kind, f) for kind, files in (("data", data_files(folder)), ("rejected", rejected_files(folder))) for f in files]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # hashlib releases the GIL
        digests = list(pool.map(file_sha256, [f for _, f in listed]))
    return [
        {"path": f"{kind}/{f.name}", "rows": pq.ParquetFile(f).metadata.num_rows, "sha256": digest}
        for (kind, f), digest in zip(listed, digests)
    ]


def rejected_stats(folder: Path) -> dict:
    lf = _scan(rejected_files(folder))
    if lf is None:
        return {"docs": 0, "by_reason": {}}
    df = lf.group_by("reason").agg(pl.len().alias("docs")).sort("reason").collect()
    return {"docs": int(df["docs"].sum()), "by_reason": dict(zip(df["reason"].to_list(), df["docs"].to_list()))}


def relative_to(path: str | Path, folder: Path) -> str:
    """A lineage path as seen from the dataset folder, so a tree of datasets can move as a whole."""
    return os.path.relpath(Path(path).resolve(), folder.resolve())


def computed_facts(folder: Path, texts: TextPass | None = None) -> dict:
    """The part of a card that is recomputed from the data (what `corpus card validate` checks)."""
    return {
        "stats": dataset_stats(folder, texts),
        "rejected_stats": rejected_stats(folder),
        "scores": score_summary(folder),
        "files": file_entries(folder),
    }


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
    previous_readme: str = "",
    final_folder: Path | None = None,
    texts: TextPass | None = None,
) -> dict:
    """Write card.json, README.md and plots/ into `folder` (which will be renamed to `final_folder`)."""
    folder = Path(folder)
    home = Path(final_folder or folder)
    if texts is None and data_files(folder):
        texts = read_texts(folder)  # no writer tallied the texts on their way
    upstream: list[dict] = []
    lineage = []
    for item in inputs:  # accounting of the stages that made the inputs, then this one
        item = dict(item)
        if item.get("kind") == "dataset":
            try:
                upstream.extend(json.loads((Path(item["path"]) / CARD_JSON).read_text())["accounting"])
            except (OSError, KeyError, json.JSONDecodeError):
                pass
        if item.get("path"):
            item["path"] = ", ".join(relative_to(p.strip(), home) for p in str(item["path"]).split(", "))
        lineage.append(item)
    card = {
        **card_header(name, stage, command, python=True),
        "pipeline_file": relative_to(pipeline_file, home) if pipeline_file else None,
        "fingerprint": fingerprint,
        "executor": executor,
        "config": config,
        "inputs": lineage,
        "accounting": _dedupe_accounting(upstream) + [accounting],
        "stage_facts": stage_facts,
        **computed_facts(folder, texts),
        "examples": examples(folder, texts=texts),
        "columns": _columns(folder),
    }
    from corpus.cards.plots import write_plots

    card["plots"] = write_plots(folder, card)
    seal_card(folder, card)
    from corpus.cards.evidence import carried_evidence, keep_evidence
    from corpus.cards.readme import render_readme

    evidence = carried_evidence(home, card)  # the same data keeps its ablation verdicts
    keep_evidence(folder, evidence)
    (folder / CARD_README).write_text(render_readme(card, previous_readme, evidence), encoding="utf-8")
    return card


def _columns(folder: Path) -> dict:
    files = data_files(folder) or rejected_files(folder)
    if not files:
        return {}
    schema = _scan(files).collect_schema()
    return {"document": [c for c in DOCUMENT_COLUMNS if c in schema], "added": [c for c in schema if c not in DOCUMENT_COLUMNS]}


def _dedupe_accounting(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for row in rows:
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
