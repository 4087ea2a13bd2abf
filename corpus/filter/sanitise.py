"""The sanitiser: Unicode and punctuation normalisation, control characters, whitespace, boilerplate
lines repeated across a source's documents, and PII redaction, all as polars/Arrow column operations.

Boilerplate needs the whole input at once (a line is boilerplate because many documents of its
source share it), so `find_boilerplate` is a global pass run once before the tasks start; each task
then removes the lines it lists.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.filter.config import BoilerplateConfig, PiiConfig, SanitiseConfig

_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
           "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'}
_DASHES = {"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-"}
# Full-width ASCII forms U+FF01..U+FF5E sit at a fixed offset from ASCII; U+3000 is a full-width space.
_FULLWIDTH = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
# Runs of these collapse to one; dots collapse to an ellipsis. '::' '--' '==' are markup and code.
_REPEATABLE = {r"!{2,}": "!", r"\?{2,}": "?", r",{2,}": ",", r"\.{4,}": "..."}
# Control characters except tab and newline, and invisible format characters that carry no text.
_CONTROL = r"[\x00-\x08\x0B-\x1F\x7F-\x9F\u200B\u2060\uFEFF\u00AD]"
_UNICODE_SPACES = r"[\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]"

PII_PATTERNS = {
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
    "ssn": r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
    "ip_address": r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\b",
    "phone": r"(?:\+[0-9]{1,3}[ .\-]?)?(?:\([0-9]{3}\)|\b[0-9]{3})[ .\-]?[0-9]{3}[ .\-][0-9]{4}\b",
}


def pii_patterns(cfg: PiiConfig) -> dict[str, str]:
    """Kind -> regex, built-in kinds first (SSNs before phone numbers, which would also match some)."""
    kinds = {k: p for k, p in PII_PATTERNS.items() if getattr(cfg, k)}
    return kinds | dict(cfg.custom)


def sanitise_texts(texts: pl.Series, sources: pl.Series, cfg: SanitiseConfig, boilerplate: pl.DataFrame | None) -> tuple[pl.Series, dict]:
    """Sanitised texts and the batch's counts: PII per kind, boilerplate lines removed, characters before and after."""
    counts: Counter = Counter()
    before_chars = texts.str.len_chars().sum() or 0
    if boilerplate is not None and boilerplate.height and cfg.boilerplate.enabled:
        texts, removed, touched = remove_boilerplate(texts, sources, boilerplate)
        counts["boilerplate_lines_removed"] += removed
        counts["boilerplate_docs_touched"] += touched
    if cfg.unicode_form != "none":
        texts = pl.Series(texts.name, pc.utf8_normalize(texts.to_arrow(), form=cfg.unicode_form))
    expr = pl.col("t")
    if cfg.control_chars:
        expr = expr.str.replace_all(r"\r\n?", "\n").str.replace_all(_CONTROL, "")
    replacements: dict[str, str] = {}
    if cfg.quotes == "ascii":
        replacements |= _QUOTES
    if cfg.dashes == "ascii":
        replacements |= _DASHES
    if cfg.fullwidth and cfg.unicode_form != "NFKC":  # NFKC already maps them
        replacements |= _FULLWIDTH
    if cfg.ellipsis == "dots":
        replacements["\u2026"] = "..."
    if replacements:
        expr = expr.str.replace_many(list(replacements), list(replacements.values()))
    if cfg.ellipsis == "char":
        expr = expr.str.replace_all(r"\.{3,}", "\u2026")
    if cfg.collapse_repeated_punctuation:
        for pattern, single in _REPEATABLE.items():
            if not (pattern == r"\.{4,}" and cfg.ellipsis == "char"):
                expr = expr.str.replace_all(pattern, single)
    if cfg.whitespace:
        # Unicode spaces become plain spaces; trailing spaces go; at most one blank line in a row.
        # Runs of spaces inside a line stay: they are indentation in code and tables.
        expr = (
            expr.str.replace_all(_UNICODE_SPACES, " ")
            .str.replace_all(r"[ \t]+\n", "\n")
            .str.replace_all(r"\n{3,}", "\n\n")
            .str.strip_chars()
        )
    frame = pl.DataFrame({"t": texts}).select(expr)
    if cfg.pii.enabled:
        placeholder = cfg.pii.placeholder
        for kind, pattern in pii_patterns(cfg.pii).items():
            found = frame.select(pl.col("t").str.count_matches(pattern).sum()).item() or 0
            if found:
                counts[f"pii_{kind}"] += found
                token = placeholder.replace("{KIND}", kind.upper()).replace("{kind}", kind)
                frame = frame.select(pl.col("t").str.replace_all(pattern, token.replace("$", "$$")))
    out = frame["t"].alias(texts.name)
    counts["chars_before"] += before_chars
    counts["chars_after"] += out.str.len_chars().sum() or 0
    return out, dict(counts)


# ---------------------------------------------------------------- boilerplate


def find_boilerplate(files: list[str], cfg: BoilerplateConfig) -> pl.DataFrame:
    """Lines (stripped) that at least `min_docs` and `min_doc_fraction` of a source's documents contain."""
    empty = pl.DataFrame(schema={"source": pl.String, "line": pl.String, "docs": pl.UInt32})
    if not files or not cfg.enabled:
        return empty
    docs = pl.scan_parquet(files).select(pl.col("source").fill_null(""), "text").with_row_index("doc")
    per_source = docs.group_by("source").agg(pl.len().alias("source_docs"))
    lines = (
        docs.select("doc", "source", pl.col("text").str.split("\n").alias("line"))
        .explode("line")
        .with_columns(pl.col("line").str.strip_chars())
        # rule lines and bare markup (----, ====, ```) are structure, not boilerplate
        .filter((pl.col("line").str.len_chars() >= cfg.min_line_chars) & (pl.col("line").str.count_matches(r"\p{L}") >= 3))
        .unique(["doc", "line"])
        .group_by("source", "line")
        .agg(pl.len().alias("docs"))
        .join(per_source, on="source")
        .filter((pl.col("docs") >= cfg.min_docs) & (pl.col("docs") >= cfg.min_doc_fraction * pl.col("source_docs")))
        .select("source", "line", pl.col("docs").cast(pl.UInt32))
        .sort(["source", "docs", "line"], descending=[False, True, False])
    )
    return lines.collect()


def remove_boilerplate(texts: pl.Series, sources: pl.Series, boilerplate: pl.DataFrame) -> tuple[pl.Series, int, int]:
    """Drop the listed lines of each document's source; returns texts, lines removed, documents changed."""
    frame = pl.DataFrame({"text": texts, "source": sources.fill_null("")}).with_row_index("doc")
    lines = (
        frame.select("doc", "source", pl.col("text").str.split("\n").alias("raw"))
        .with_columns(pl.int_ranges(0, pl.col("raw").list.len()).alias("pos"))
        .explode("raw", "pos")
        .with_columns(pl.col("raw").str.strip_chars().alias("line"))
        .join(boilerplate.select("source", "line", pl.lit(True).alias("boiler")), on=["source", "line"], how="left")
    )
    removed = lines.filter(pl.col("boiler").is_not_null())
    if removed.height == 0:
        return texts, 0, 0
    rebuilt = (
        lines.filter(pl.col("boiler").is_null())
        .sort("doc", "pos")
        .group_by("doc", maintain_order=True)
        .agg(pl.col("raw").str.join("\n"))
    )
    out = frame.select("doc").join(rebuilt, on="doc", how="left").sort("doc")["raw"].fill_null("")
    return out.alias(texts.name), removed.height, removed["doc"].n_unique()


def write_boilerplate(boilerplate: pl.DataFrame, path: Path) -> None:
    from corpus.outputs import atomic_write

    with atomic_write(path) as tmp:  # a kill leaves no half-written list for the rerun to trust
        pq.write_table(boilerplate.to_arrow(), tmp)


def read_boilerplate(path: str | Path | None) -> pl.DataFrame | None:
    """The boilerplate list the run found; None when the run asked for none. A list that should be
    there and is not is an error: filtering without it would give another dataset, silently."""
    if path is None:
        return None
    if not Path(path).is_file():
        from corpus.errors import StageFailed

        raise StageFailed(f"{path}: the boilerplate list is missing (was the work folder removed by another run?); rerun to rebuild it")
    return pl.read_parquet(path)

