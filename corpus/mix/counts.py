"""The document table a mix is planned on: one row per input document, no texts held.

For each document: its id hash (the seeded order), group, domain and source codes, UTF-8 size and
token count. Token counts are exact (every text encoded with the target tokenizer), estimated (a
seeded sample per group encoded, the rest scaled from their UTF-8 size, the estimate's error
measured on a second, held-out sample), or read from an `n_tokens` column that an earlier exact
count with the same tokenizer left in the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from corpus.document import read_card
from corpus.errors import CorpusError
from corpus.execution import dataset_inputs
from corpus.mix.plan import check_weight_names
from corpus.progress import say
from corpus.shard_format import id_hashes, load_tokenizer, mix_seed, tokenizer_sha256

TOKEN_BATCH_BYTES = 4e6
ESTIMATE_SALT = 0x5A17


@dataclass
class DocumentTable:
    files: list[str]
    rows_per_file: np.ndarray  # int64
    hashes: np.ndarray  # uint64, from the ids
    text_bytes: np.ndarray  # int64
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # column -> int32 codes
    names: dict[str, list[str]] = field(default_factory=dict)  # column -> code -> name
    n_tokens: np.ndarray | None = None  # int64
    token_counts: dict = field(default_factory=dict)  # how n_tokens was made, for the card
    lineage: list[dict] = field(default_factory=list)

    @property
    def docs(self) -> int:
        return len(self.hashes)


def _codes(values: pl.Series, names: list[str], index: dict[str, int]) -> np.ndarray:
    uniques = values.unique(maintain_order=True).to_list()
    for name in uniques:
        if name not in index:
            index[name] = len(names)
            names.append(name)
    mapping = pl.DataFrame({"name": uniques, "code": [index[n] for n in uniques]}, schema={"name": pl.String, "code": pl.Int32})
    return values.to_frame("name").join(mapping, on="name", how="left", maintain_order="left")["code"].to_numpy()


def read_document_table(inputs: list[str], tokenizer_dir: str | None, estimate_sample: int | None,
                        by: str, seed: int, weights: dict[str, float] | None = None) -> DocumentTable:  # fmt: skip
    """Scan the inputs once for ids, groups and sizes; count tokens as configured.

    The group names in `weights` are checked before any token is counted."""
    files: list[str] = []
    lineage: list[dict] = []
    reusable: list[bool] = []  # per file: its n_tokens column may be reused
    token_sha = tokenizer_sha256(Path(tokenizer_dir)) if tokenizer_dir else None
    cached_methods = set()
    for path in inputs:
        own_files, own_lineage = dataset_inputs([path])
        facts = read_card(Path(path)).get("stage_facts", {}).get("token_counts") or {}
        same = facts.get("method") == "exact" and (token_sha is None or facts.get("tokenizer_sha256") == token_sha)
        for f in own_files:
            has = "n_tokens" in pq.read_schema(f).names
            reusable.append(bool(has and (same or (token_sha is None and facts))))
            if reusable[-1]:
                cached_methods.add((facts.get("method"), facts.get("tokenizer_sha256")))
        files += own_files
        lineage += own_lineage
    if not files:
        raise CorpusError("the inputs hold no data files")

    names: dict[str, list[str]] = {c: [] for c in ("group", "domain", "source")}
    index: dict[str, dict[str, int]] = {c: {} for c in names}
    rows_per_file = np.array([pq.ParquetFile(f).metadata.num_rows for f in files], np.int64)
    total = int(rows_per_file.sum())
    table = DocumentTable(files=files, rows_per_file=rows_per_file, hashes=np.empty(total, np.uint64),
                          text_bytes=np.empty(total, np.int64), names=names, lineage=lineage,
                          codes={c: np.empty(total, np.int32) for c in names})  # fmt: skip
    cached = np.full(total, -1, np.int64)
    start = 0
    for path, reuse, rows in zip(files, reusable, rows_per_file):
        columns = [pl.col("id"), pl.col("domain").fill_null("unknown"), pl.col("source").fill_null("unknown"),
                   pl.col("text").str.len_bytes().cast(pl.Int64).alias("bytes")]  # fmt: skip
        if reuse:
            columns.append(pl.col("n_tokens").cast(pl.Int64))
        try:
            frame = pl.scan_parquet(path).select(columns).collect()
        except (pl.exceptions.PolarsError, OSError) as e:
            raise CorpusError(f"{path}: cannot read documents ({' '.join(str(e).split())[:160]})") from None
        at = slice(start, start + int(rows))
        start += int(rows)
        table.hashes[at] = id_hashes(frame["id"].to_list())
        table.text_bytes[at] = frame["bytes"].fill_null(0).to_numpy()
        for column in ("domain", "source"):
            table.codes[column][at] = _codes(frame[column], names[column], index[column])
        table.codes["group"][at] = _codes(frame[by], names["group"], index["group"])
        if reuse:
            cached[at] = frame["n_tokens"].fill_null(-1).to_numpy()
    check_weight_names(weights, names["group"], by)
    missing = cached < 0
    if not missing.any():
        (method, sha), *more = sorted(cached_methods, key=str)
        table.n_tokens = cached
        table.token_counts = {"method": method if not more else "mixed", "tokenizer_sha256": sha if not more else None,
                              "documents_cached": table.docs}  # fmt: skip
        return table
    if tokenizer_dir is None:
        return table  # no token counts: a document budget only
    tokenizer, _ = load_tokenizer(tokenizer_dir)
    if estimate_sample:
        table.n_tokens, table.token_counts = _estimate(table, tokenizer, estimate_sample, seed, missing, cached)
    else:
        say(f"mix: counting tokens of {int(missing.sum()):,} documents with {tokenizer_dir}")
        counted = count_tokens(files, table.rows_per_file, missing, tokenizer)
        table.n_tokens = np.where(missing, counted, cached)
        table.token_counts = {"method": "exact", "documents_counted": int(missing.sum()),
                              "documents_cached": int((~missing).sum())}  # fmt: skip
    table.token_counts.update({"tokenizer": str(Path(tokenizer_dir).resolve()), "tokenizer_sha256": token_sha,
                               "special_tokens": "not counted (tokenize adds EOS, and BOS with --bos, per document)"})  # fmt: skip
    return table


def count_tokens(files: list[str], rows_per_file: np.ndarray, wanted: np.ndarray, tokenizer) -> np.ndarray:
    """Exact token counts of the `wanted` documents (0 elsewhere), texts streamed in batches."""
    counts = np.zeros(len(wanted), np.int64)
    offsets = np.concatenate([[0], np.cumsum(rows_per_file)])
    pending: list[str] = []
    pending_at: list[np.ndarray] = []
    pending_bytes = 0

    def flush():
        nonlocal pending, pending_at, pending_bytes
        if pending:
            encodings = tokenizer.encode_batch_fast(pending, add_special_tokens=False)
            counts[np.concatenate(pending_at)] = np.fromiter(map(len, encodings), np.int64, len(encodings))
        pending, pending_at, pending_bytes = [], [], 0

    for i, path in enumerate(files):
        if not wanted[offsets[i] : offsets[i + 1]].any():
            continue
        start = offsets[i]
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=["text"]):
            positions = np.arange(start, start + batch.num_rows)
            start += batch.num_rows
            take = wanted[positions]
            if not take.any():
                continue
            texts = batch.column(0).filter(take) if not take.all() else batch.column(0)
            pending.extend(t if t is not None else "" for t in texts.to_pylist())
            pending_at.append(positions[take])
            pending_bytes += texts.nbytes
            if pending_bytes >= TOKEN_BATCH_BYTES:
                flush()
    flush()
    return counts


def _estimate(table: DocumentTable, tokenizer, per_group: int, seed: int, missing: np.ndarray, cached: np.ndarray):
    """Tokens per byte from `per_group` sampled documents of each group; error on as many held out."""
    keys = mix_seed(table.hashes, seed ^ ESTIMATE_SALT)
    group = table.codes["group"]
    fit = np.zeros(table.docs, bool)
    check = np.zeros(table.docs, bool)
    for g in range(len(table.names["group"])):
        members = np.flatnonzero((group == g) & missing)
        order = members[np.argsort(keys[members], kind="stable")]
        fit[order[:per_group]] = True
        check[order[per_group : 2 * per_group]] = True
    say(f"mix: estimating tokens from {int(fit.sum()):,} sampled documents (error measured on {int(check.sum()):,} more)")
    exact = count_tokens(table.files, table.rows_per_file, fit | check, tokenizer)
    estimate = np.zeros(table.docs, np.int64)
    ratios, errors = {}, {}
    for g, name in enumerate(table.names["group"]):
        mine = group == g
        fit_bytes = table.text_bytes[fit & mine].sum()
        ratio = exact[fit & mine].sum() / fit_bytes if fit_bytes else 0.0
        ratios[name] = round(float(ratio), 5)
        estimate[mine] = np.rint(table.text_bytes[mine] * ratio).astype(np.int64)
        held = check & mine
        true_total = exact[held].sum()
        if true_total:
            errors[name] = {
                "held_out_docs": int(held.sum()),
                "total_relative_error": round(float((estimate[held].sum() - true_total) / true_total), 5),
                "mean_abs_doc_relative_error": round(float(np.mean(np.abs(estimate[held] - exact[held]) / np.maximum(exact[held], 1))), 5),
            }
    sampled = fit | check
    estimate[sampled] = exact[sampled]  # counted documents keep their exact counts
    estimate[~missing] = cached[~missing]
    facts = {"method": "estimate", "sample_per_group": per_group, "documents_counted": int(sampled.sum()),
             "documents_cached": int((~missing).sum()),
             "tokens_per_byte": ratios, "error_on_held_out_sample": errors}  # fmt: skip
    return estimate, facts
