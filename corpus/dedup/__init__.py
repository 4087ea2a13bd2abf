"""Deduplication: exact (hash of normalised text) and near (MinHash LSH), one stage.

    pass 1, parallel   SignatureWriter: facts, exact hash and LSH band hashes per document
    global, one task   near_duplicate_clusters: buckets -> edges -> connected components -> keep rule
    pass 2, parallel   DuplicateMarker: kept rows get cluster_id/cluster_size, the others a reason

Pass 1 and the global step run in the stage's `prepare` hook; pass 2 is the stage's main pass, so
the dataset is written by the shared DatasetWriter with the usual accounting.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.errors import CorpusError
from corpus.stages import Stage, declare

DEDUP_WORK = "dedup"
FACTS_FILE = "cluster_facts.json"


class DedupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["exact", "minhash", "both"] = Field("both", description="exact hashes, MinHash LSH, or both")
    ngram: int = Field(5, ge=1, le=64, description="words per shingle")
    bands: int = Field(14, ge=1, le=512, description="LSH bands")
    rows: int = Field(8, ge=1, le=64, description="signature rows (permutations) per band")
    verify: bool = Field(True, description="check each MinHash candidate pair's real shingle Jaccard before linking it")
    threshold: float = Field(
        0.7, gt=0, le=1, description="verification: a candidate pair links its documents only if their Jaccard is at least this"
    )
    seed: int = Field(1, ge=0, description="seed of the MinHash permutations")
    exact_normalisation: Literal["whitespace", "lowercase", "letters", "none"] = Field(
        "whitespace", description="what is ignored when comparing texts exactly"
    )
    source_priority: list[str] = Field(default_factory=list, description="sources kept first, most preferred first")
    quality_column: str | None = Field(None, description="numeric column preferred (higher first) before length")
    against: list[str] = Field(default_factory=list, description="dataset folders whose saved dedup index wins")

    @model_validator(mode="after")
    def _threshold_needs_minhash(self):
        if "threshold" in self.model_fields_set:
            if self.mode == "exact":
                raise ValueError("threshold applies to MinHash candidates; it has no effect with mode exact")
            if not self.verify:
                raise ValueError("threshold is the verification's; it has no effect with verify off (--no-verify)")
        return self

    def s_curve_threshold(self) -> float:
        """The Jaccard at which a pair becomes a candidate with probability about 1/2: (1/b)^(1/r)."""
        return (1 / self.bands) ** (1 / self.rows)


def dedup_job(inputs: list[str], name: str, config: DedupConfig, progress: bool = True):
    from corpus.dedup.card import dedup_card_facts
    from corpus.dedup.clusters import near_duplicate_clusters
    from corpus.dedup.index import SavedIndex
    from corpus.dedup.steps import DuplicateMarker, RowKeyedReader, SignatureWriter
    from corpus.execution import WORK_DIR, StageJob, dataset_inputs, unified_schema
    from corpus.executors import build_executor

    files, lineage = dataset_inputs(inputs)
    against = [SavedIndex(path, config) for path in config.against]
    lineage = lineage + [saved.lineage() for saved in against]
    row_counts = []
    for f in files:
        try:
            row_counts.append(pq.ParquetFile(f).metadata.num_rows)
        except Exception as e:  # a damaged data file: name it
            raise CorpusError(f"{f}: not a readable Parquet file ({e})") from None
    schema = unified_schema(files)
    if config.quality_column and config.quality_column not in schema.names:
        raise CorpusError(f"{', '.join(inputs)}: no column {config.quality_column!r} for quality_column (columns: {', '.join(schema.names)})")
    row_starts = [sum(row_counts[:i]) for i in range(len(row_counts))]
    total_rows = sum(row_counts)
    read_columns = ["id", "text", "source", "domain"] + ([config.quality_column] if config.quality_column else [])

    def prepare(partial: Path, work: Path, executor) -> None:
        from corpus.errors import StageFailed

        dedup_dir = work / DEDUP_WORK
        if (dedup_dir / FACTS_FILE).exists():
            return  # written last (after decisions.parquet and the index): an interrupted run resumes at pass 2
        dedup_dir.mkdir(parents=True, exist_ok=True)
        steps = [
            RowKeyedReader(files, row_starts, str(work), "dedup signatures", progress, read_columns, "signature_reader"),
            SignatureWriter(str(dedup_dir), config, config.quality_column),
        ]
        runner = build_executor(executor, steps, str(dedup_dir / "logs"), threads=True)
        runner.run()
        incomplete = runner.get_incomplete_ranks(range(executor.tasks))
        if incomplete:
            raise StageFailed(f"dedup: signature tasks {incomplete} did not complete; logs in {dedup_dir / 'logs'}; rerun to resume")
        facts = near_duplicate_clusters(dedup_dir, partial, config, total_rows, against, files, row_starts,
                                        max(1, int(getattr(runner, "workers", 1) or 1)))
        tmp = dedup_dir / (FACTS_FILE + ".tmp")
        tmp.write_text(json.dumps(facts), encoding="utf-8")
        os.replace(tmp, dedup_dir / FACTS_FILE)

    def make_steps(out_dir: str, work_dir: str):
        return [
            RowKeyedReader(files, row_starts, work_dir, "dedup", progress),
            DuplicateMarker(str(Path(work_dir) / DEDUP_WORK / "decisions.parquet")),
        ]

    def finalize(partial: Path, facts: dict) -> dict:
        return dedup_card_facts(partial, Path(partial) / WORK_DIR / DEDUP_WORK, config)

    extra = {"s_curve_threshold": round(config.s_curve_threshold(), 4), "permutations": config.bands * config.rows}
    return StageJob(
        stage="dedup",
        name=name,
        config=config.model_dump(),
        inputs=lineage,
        make_steps=make_steps,
        work_files=[f"{DEDUP_WORK}/decisions.parquet"],
        extra_card=extra,
        finalize_hook=finalize,
        prepare=prepare,
        threads=True,  # Parquet, Arrow and nogil numba kernels: threads run in parallel
    )


def _run(run):
    options = run.options.model_copy(update={"against": [str((run.base / p).resolve()) for p in run.options.against]})
    return run.publish(dedup_job([run.latest_dataset()], run.name, options, progress=run.progress))


declare(Stage("dedup", DedupConfig, _run, "remove exact and near-duplicate documents (MinHash LSH)"))
