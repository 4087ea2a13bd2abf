"""The `filter` stage: sanitise, identify the language, score the quality rules, decide.

Per batch of documents (an Arrow table), in this order:
1. sanitise the text (corpus.filter.sanitise), counting what changed;
2. reject documents left with no text (`empty`);
3. language ID: `lang`, `lang_score`; reject `langid_low_score`, then `langid_not_allowed`;
4. quality scores as columns for every document; the first failing check becomes `reason`.
Every document keeps its score columns, kept or rejected, so thresholds can be retuned from the
output without recomputing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from datatrove.pipeline.base import PipelineStep

from corpus.document import reject_where
from corpus.filter.config import FilterConfig
from corpus.filter.quality import C4_TEXT, failing_masks, quality_checks, quality_scores
from corpus.stage_stats import STATS_DIR, write_task_stats
from corpus.stages import Stage, declare

STAGE = "filter"
BOILERPLATE_FILE = "boilerplate.parquet"


def _set_column(table: pa.Table, name: str, values) -> pa.Table:
    values = values.to_arrow() if isinstance(values, pl.Series) else values
    if name in table.column_names:
        field = table.schema.field(name)
        return table.set_column(table.schema.get_field_index(name), field, pc.cast(values, field.type))
    return table.append_column(name, values)


def _reject_empty(table: pa.Table, texts: pl.Series) -> pa.Table:
    """Documents left with no text (or only whitespace) are rejected as `empty`."""
    no_text = texts.str.contains(r"^\s*$").to_arrow()
    return reject_where(table, no_text, "empty", pa.array(["no text left after sanitising"] * len(texts), pa.string()))


class QualityFilter(PipelineStep):
    name = "quality filter"
    type = "filter"

    def __init__(self, config: FilterConfig, work_dir: str, boilerplate_file: str | None = None):
        super().__init__()
        self.config = config
        self.work_dir = work_dir
        self.boilerplate_file = boilerplate_file

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        from corpus.filter.sanitise import read_boilerplate

        boilerplate = read_boilerplate(self.boilerplate_file)
        counts: Counter = Counter()
        for table in data:
            table = self.filter_table(table, boilerplate, counts)
            yield table
        write_task_stats(self.work_dir, STAGE, rank, {"counts": dict(counts)})

    def filter_table(self, table: pa.Table, boilerplate: pl.DataFrame | None, counts: Counter) -> pa.Table:
        texts = pl.Series("text", table.column("text")).cast(pl.String)
        sources = pl.Series("source", table.column("source")).cast(pl.String)
        table, texts = self._sanitise(table, texts, sources, boilerplate, counts)
        table = _reject_empty(table, texts)
        table = self._identify_language(table, texts, sources)
        return self._apply_quality_rules(table, texts)

    def _sanitise(self, table: pa.Table, texts: pl.Series, sources: pl.Series, boilerplate: pl.DataFrame | None,
                  counts: Counter) -> tuple[pa.Table, pl.Series]:  # fmt: skip
        """The table and its texts once sanitised (as they are with the sanitiser off), counting what changed."""
        cfg = self.config.sanitise
        if not cfg.enabled:
            return table, texts
        from corpus.filter.sanitise import sanitise_texts

        texts, batch_counts = sanitise_texts(texts, sources, cfg, boilerplate)
        counts.update(batch_counts)
        return _set_column(table, "text", texts), texts

    def _identify_language(self, table: pa.Table, texts: pl.Series, sources: pl.Series) -> pa.Table:
        """`lang` and `lang_score` columns, and the language rejections; the table as it is with language ID off."""
        cfg = self.config.langid
        if not cfg.enabled:
            return table
        from corpus.filter.langid import identify

        langs, scores = identify(texts, cfg.max_chars, cfg.read)
        table = _set_column(table, "lang", langs)
        table = _set_column(table, "lang_score", scores)
        return self._language_decisions(table, langs, scores, sources)

    def _apply_quality_rules(self, table: pa.Table, texts: pl.Series) -> pa.Table:
        """Every document's quality scores as columns; the first failing check becomes `reason`."""
        cfg = self.config.quality
        langs = pl.Series("lang", table.column("lang")).cast(pl.String)
        lang_scores = pl.Series("lang_score", table.column("lang_score")).cast(pl.Float64)

        scores = quality_scores(texts, cfg, langs, lang_scores)
        domains = pl.Series("domain", table.column("domain")).cast(pl.String)
        decided = langs.is_null() | langs.is_in(cfg.languages) if cfg.languages is not None else pl.Series([True] * len(langs))
        table = self._reject_failing_checks(table, scores, domains, decided)
        return self._set_score_columns(table, scores, domains, decided)

    def _reject_failing_checks(self, table: pa.Table, scores: pl.DataFrame, domains: pl.Series,
                               decided: pl.Series) -> pa.Table:  # fmt: skip
        for check, fails, thresholds in failing_masks(scores, domains, decided, self.config.quality):
            if fails.any():  # most checks fail no document of a batch
                detail = _details(scores[check.score], check, fails, thresholds)
                table = reject_where(table, pa.array(fails), check.reason, detail)
        return table

    def _set_score_columns(self, table: pa.Table, scores: pl.DataFrame, domains: pl.Series,
                           decided: pl.Series) -> pa.Table:  # fmt: skip
        """The score columns, and C4's rewritten text in place of the text where it applies."""
        for name in scores.columns:
            if name == C4_TEXT:
                if self.config.quality.c4.rewrite_text:
                    table = self._rewrite_with_c4_text(table, scores[name], domains, decided)
                continue
            column = scores[name]
            column = column.cast(pl.Int64) if column.dtype.is_integer() else column.cast(pl.Float64)
            table = _set_column(table, name, column)
        return table

    def _rewrite_with_c4_text(self, table: pa.Table, c4_text: pl.Series, domains: pl.Series,
                              decided: pl.Series) -> pa.Table:  # fmt: skip
        # only kept documents that C4 judged are rewritten: a rejected one shows the text
        # that was judged, and a language or domain C4 does not decide keeps its lines
        cfg = self.config.quality
        c4_on = np.full(len(domains), cfg.c4.enabled)
        for domain in cfg.by_domain:
            c4_on[(domains == domain).fill_null(False).to_numpy()] = cfg.rule_for("c4", domain).enabled
        judged = pa.array(decided.fill_null(False).to_numpy() & c4_on)
        kept = pc.and_(pc.is_null(table.column("reason")), judged)
        cleaned = pc.cast(c4_text.to_arrow(), table.schema.field("text").type)
        return _set_column(table, "text", pc.if_else(kept, cleaned, table.column("text")))

    def _language_decisions(self, table: pa.Table, langs: pl.Series, scores: pl.Series, sources: pl.Series) -> pa.Table:
        cfg = self.config.langid
        rows_allowed = np.ones(len(langs), dtype=bool)
        restricted = np.zeros(len(langs), dtype=bool)
        for source in sources.unique().to_list():
            languages = cfg.allowed_by_source[source] if source in cfg.allowed_by_source else cfg.allowed
            if languages is None:
                continue
            rows = (sources == source).fill_null(False).to_numpy() if source is not None else sources.is_null().to_numpy()
            restricted |= rows
            rows_allowed[rows] = langs.filter(pl.Series(rows)).is_in(languages).fill_null(False).to_numpy()
        low = restricted & (scores.fill_null(0).to_numpy() < cfg.min_score)
        detail = pl.select(pl.format("lang={} lang_score={}", langs, scores.round(3))).to_series().cast(pl.String).to_arrow()
        table = reject_where(table, pa.array(low), "langid_low_score", detail)
        return reject_where(table, pa.array(restricted & ~rows_allowed), "langid_not_allowed", detail)


def _details(score: pl.Series, check, fails: np.ndarray, thresholds: np.ndarray) -> pa.Array:
    """`score=value op threshold` for the failing rows (null elsewhere: those rows are never read)."""
    rows = np.flatnonzero(fails)
    if rows.size == 0:
        return pa.nulls(len(fails), pa.string())
    values = score.gather(rows).cast(pl.Float64).round(4).cast(pl.String)
    limits = pl.Series(thresholds[rows]).round(4).cast(pl.String)
    text = pl.select(pl.format(f"{check.score}={{}} {check.op} {{}}", values, limits)).to_series().cast(pl.String)
    return pl.Series([None] * len(fails), dtype=pl.String).scatter(rows, text).to_arrow()


def filter_job(inputs: list[str], name: str, config: FilterConfig, progress: bool = True):
    from corpus.execution import DatasetReader, StageJob, dataset_inputs, unreadable
    from corpus.filter.sanitise import find_boilerplate, write_boilerplate

    if config.langid.enabled:
        from corpus.filter.langid import model_path

        model_path()  # fail before any task starts when the model is not installed
    files, lineage = dataset_inputs(inputs)

    def make_steps(out_dir: str, work_dir: str):
        boilerplate_file = None
        if config.sanitise.enabled and config.sanitise.boilerplate.enabled:
            boilerplate_file = str(Path(work_dir) / BOILERPLATE_FILE)
            if not Path(boilerplate_file).exists():  # a resumed run reuses the list its first tasks used
                try:
                    found = find_boilerplate(files, config.sanitise.boilerplate)
                except Exception as e:  # a damaged data file: name it
                    raise unreadable(files, e) from None
                write_boilerplate(found, Path(boilerplate_file))
        return [DatasetReader(files, work_dir, STAGE, progress=progress), QualityFilter(config, work_dir, boilerplate_file)]

    return StageJob(
        stage=STAGE,
        name=name,
        config=config.model_dump(mode="json"),
        inputs=lineage,
        make_steps=make_steps,
        finalize_hook=lambda folder, facts: filter_card_facts(folder, config),
        work_files=[BOILERPLATE_FILE],
        # The quality rules are polars expressions and numba kernels that release the GIL, so without
        # the sanitiser and language ID (Python and fastText calls that hold it) the tasks run as
        # threads of this process: no worker processes importing the libraries again.
        threads=not config.sanitise.enabled and not config.langid.enabled,
    )


# ---------------------------------------------------------------- card facts


def filter_card_facts(folder: Path, config: FilterConfig, bins: int = 20, examples_per_rule: int = 3) -> dict:
    """Per-rule drops and rates, three examples per rule, score histograms, sanitiser and PII counts."""
    from corpus.document import data_files, rejected_files
    from corpus.execution import WORK_DIR

    folder = Path(folder)
    counts: Counter = Counter()
    for path in sorted((folder / WORK_DIR / STATS_DIR).glob(f"{STAGE}-*.json")):
        counts.update(json.loads(path.read_text(encoding="utf-8")).get("counts", {}))
    facts: dict = {
        "sanitiser": {k: v for k, v in sorted(counts.items()) if not k.startswith("pii_")},
        "pii_redactions": {k.removeprefix("pii_"): v for k, v in sorted(counts.items()) if k.startswith("pii_")},
    }
    boilerplate_file = folder / WORK_DIR / BOILERPLATE_FILE
    if boilerplate_file.exists():
        lines = pl.read_parquet(boilerplate_file)
        facts["boilerplate_lines"] = {"distinct": lines.height, "top": lines.head(20).to_dicts()}
    if not data_files(folder) and not rejected_files(folder):
        return facts
    checks = quality_checks(config.quality)
    score_names = list(dict.fromkeys(c.score for c in checks))
    guard_names = [c.guard[0] for c in checks if c.guard and c.guard[0] not in score_names]
    parts = []
    for group in (data_files(folder), rejected_files(folder)):
        if group:
            lf = pl.scan_parquet([str(f) for f in group])
            names = lf.collect_schema().names()
            wanted = [c for c in dict.fromkeys(["domain", "lang", "reason", "fineweb_lines", *score_names, *guard_names]) if c in names]
            parts.append(lf.select(wanted).collect())
    frame = pl.concat(parts, how="diagonal_relaxed")
    docs = frame.height
    reasons = frame["reason"] if "reason" in frame.columns else pl.Series("reason", [None] * docs, dtype=pl.String)
    rules: dict = {}
    masks = {}
    if all(c.score in frame.columns and (c.guard is None or c.guard[0] in frame.columns) for c in checks):
        q = config.quality
        langs = frame["lang"].cast(pl.String) if "lang" in frame.columns else pl.Series([None] * docs, dtype=pl.String)
        decided = langs.is_null() | langs.is_in(q.languages) if q.languages is not None else pl.Series([True] * docs)
        masks = {c.reason: m for c, m, _ in failing_masks(frame, frame["domain"].cast(pl.String), decided, q)}
    rejected = [str(f) for f in rejected_files(folder)]
    examples = (
        pl.scan_parquet(rejected)
        .select("reason", "id", pl.col("text").str.slice(0, 200).alias("opening"), "detail")
        .sort("id")
        .group_by("reason", maintain_order=True)
        .head(examples_per_rule)
        .collect()
        if rejected
        else pl.DataFrame(schema={"reason": pl.String, "id": pl.String, "opening": pl.String, "detail": pl.String})
    )
    reason_counts = reasons.value_counts().drop_nulls()
    dropped = dict(zip(reason_counts["reason"].to_list(), reason_counts["count"].to_list()))
    for reason in dict.fromkeys(["empty", "langid_low_score", "langid_not_allowed", *(c.reason for c in checks)]):
        n = int(dropped.get(reason, 0))
        entry = {"dropped": n, "rate": round(n / docs, 6) if docs else 0.0}
        if reason in masks:
            entry["fails_in_any_order"] = int(masks[reason].sum())
        entry["examples"] = [
            {"id": r["id"], "opening": " ".join(r["opening"].split()), "detail": r["detail"]}
            for r in examples.filter(pl.col("reason") == reason).iter_rows(named=True)
        ]
        rules[reason] = entry
    facts["rules"] = rules
    facts["histograms"] = {name: _histogram(frame[name], bins) for name in score_names if name in frame.columns}
    if "lang" in frame.columns:
        facts["languages"] = dict(sorted(Counter(frame["lang"].fill_null("unknown").to_list()).items()))
    return facts


def _histogram(column: pl.Series, bins: int) -> dict:
    values = column.cast(pl.Float64).to_numpy()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"edges": [], "counts": [], "missing": int(len(column))}
    counts, edges = np.histogram(values, bins=bins)
    return {
        "edges": [round(float(e), 6) for e in edges],
        "counts": counts.tolist(),
        "missing": int(len(column) - values.size),
    }


def _run(run):
    return run.publish(filter_job([run.latest_dataset()], run.name, run.options, progress=run.progress))


declare(Stage(STAGE, FilterConfig, _run, "sanitise, identify languages, score and decide quality rules"))
