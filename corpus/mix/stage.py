"""The `mix` stage: dataset folders in, one dataset folder out, mixed by domain or source ratio.

The plan is a global step, made before any task runs: one scan of ids, groups and sizes (no
texts), token counts, then `corpus.mix.plan`. The plan is a `copies` array (one small integer per
input row) saved in the work folder; each datatrove task then streams its input files once and
marks each row: its first copy (epoch 0) is kept, or the row is rejected as `not_sampled`; the
further copies of repeated rows (epoch 1, 2, ...) are written beside the kept rows as
`data/repeat-*.parquet`, and tallied for the card as the DatasetWriter tallies the kept rows.
Accounting therefore holds by design: docs_in (input rows) == kept + rejected, and data/ holds
kept + repeated_copies rows (reported in stage_facts.mix).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep
from pydantic import Field, model_validator

from corpus.document import DATA_DIR, REJECT_COLUMNS, PartWriter, data_files, is_dataset, reject_where, to_working
from corpus.errors import CorpusError
from corpus.mix.counts import DocumentTable, read_document_table
from corpus.mix.plan import MixTargets, allocate, group_capacity, plan_copies, target_shares
from corpus.progress import task_progress
from corpus.shard_format import tokenizer_sha256
from corpus.stage_stats import write_task_stats
from corpus.stages import Stage, declare

PLAN_COPIES = "mix_copies.npy"
PLAN_TOKENS = "mix_n_tokens.npy"
ADDED_COLUMNS = ("n_tokens", "epoch")
READ_BATCH_ROWS = 8192
ACCOUNTING_RULE = ("docs_in counts input rows; each input row's first copy (epoch 0) is kept or rejected as "
                   "not_sampled; repeats (epoch 1, 2, ...) are extra rows in data/repeat-*.parquet, so data/ holds "
                   "kept + repeated_copies rows")  # fmt: skip


class MixConfig(MixTargets):
    by: Literal["domain", "source"] = "domain"
    estimate_sample: int | None = Field(None, ge=10, description="estimate tokens from this many documents per group")

    @model_validator(mode="after")
    def _tokenizer_for_estimate(self):
        if self.estimate_sample is not None and self.tokenizer is None:
            raise ValueError("estimate_sample needs a tokenizer to count the sample with")
        return self

    @property
    def budget(self) -> int:
        return self.budget_tokens if self.budget_tokens is not None else self.budget_docs

    @property
    def unit(self) -> str:
        return "tokens" if self.budget_tokens is not None else "documents"


class MixPlan:
    """The chosen copies of every input row, and the targets behind them (for the card)."""

    def __init__(self, table: DocumentTable, config: MixConfig):
        self.table = table
        self.config = config
        if config.budget_tokens is not None and table.n_tokens is None:
            raise CorpusError("--budget-tokens needs token counts: pass --tokenizer TOKDIR (the target tokenizer), "
                              "or mix datasets whose n_tokens column an exact count left")  # fmt: skip
        self.sizes = table.n_tokens if config.budget_tokens is not None else np.ones(table.docs, np.int64)
        group, names = table.codes["group"], table.names["group"]
        self.natural = np.bincount(group, weights=self.sizes, minlength=len(names))
        self.shares = target_shares(names, self.natural, config.weights, config.temperature, config.by)
        capacity = group_capacity(self.sizes, group, table.codes["source"], len(names), config.max_epochs)
        self.allocation = allocate(config.budget, self.shares, capacity, names, config.by, config.strict,
                                   config.max_epochs, whole_units=config.budget_docs is not None)  # fmt: skip
        self.copies = plan_copies(self.sizes, group, table.codes["source"], table.hashes, self.allocation,
                                  config.max_epochs, config.seed, whole_units=config.budget_docs is not None)  # fmt: skip

    def facts_before(self) -> dict:
        facts = {"token_counts": self.table.token_counts or {"method": "none (document budget without a tokenizer)"}}
        if self.allocation.warnings:
            facts["mix_warnings"] = self.allocation.warnings
        return facts

    def achieved_facts(self, folder: Path, _facts: dict) -> dict:
        """Target vs achieved, measured on the rows written to data/."""
        by, unit = self.config.by, self.config.unit
        lf = pl.scan_parquet([str(f) for f in data_files(folder)]) if data_files(folder) else None
        tables = {}
        for column in ("domain", "source"):
            codes, names = self.table.codes[column], self.table.names[column]
            natural_docs = np.bincount(codes, minlength=len(names))
            natural_tokens = np.bincount(codes, weights=self.table.n_tokens, minlength=len(names)) if self.table.n_tokens is not None else None
            out = _written_by(lf, column, self.table.n_tokens is not None)
            total_docs = sum(v["docs"] for v in out.values()) or 1
            total_tokens = sum(v.get("tokens", 0) for v in out.values()) or 1
            rows = {}
            for i, name in enumerate(names):
                got = out.get(name, {"docs": 0, "unique_docs": 0, "tokens": 0, "max_epoch": None})
                row = {"natural_docs": int(natural_docs[i]), "docs": got["docs"], "unique_docs": got["unique_docs"],
                       "share_docs": round(got["docs"] / total_docs, 6)}  # fmt: skip
                if natural_tokens is not None:
                    row.update({"natural_tokens": int(natural_tokens[i]), "tokens": got["tokens"],
                                "share_tokens": round(got["tokens"] / total_tokens, 6),
                                "repetition_factor": round(got["tokens"] / natural_tokens[i], 4) if natural_tokens[i] else None})  # fmt: skip
                else:
                    row["repetition_factor"] = round(got["docs"] / natural_docs[i], 4) if natural_docs[i] else None
                row["max_epoch"] = got["max_epoch"]
                if column == by:  # group codes are not the column's codes: match by name
                    g = self.table.names["group"].index(name)
                    row["target_share"] = round(float(self.shares[g]), 6)
                    row["planned_share"] = round(float(self.allocation.planned_shares[g]), 6)
                rows[name] = row
            tables[column] = rows
        achieved_key = "share_tokens" if unit == "tokens" else "share_docs"
        mix_shares = {
            name: {"target": row["target_share"], "planned": row["planned_share"], "achieved": row[achieved_key],
                   "achieved_docs": row["share_docs"], "repetition_factor": row["repetition_factor"]}  # fmt: skip
            for name, row in tables[by].items()
        }
        total_rows = sum(r["docs"] for r in tables[by].values())
        unique_rows = sum(r["unique_docs"] for r in tables[by].values())
        achieved_units = sum(r["tokens"] if unit == "tokens" else r["docs"] for r in tables[by].values())
        summary = {
            "by": by, "unit": unit, "budget": self.config.budget, "achieved": int(achieved_units),
            "seed": self.config.seed, "max_epochs": self.config.max_epochs,
            "share_rule": "weights" if self.config.weights is not None else f"temperature {self.config.temperature or 1.0:g}",
            "renormalised_groups": self.allocation.short_groups,
            "rows_in_data": total_rows, "kept_first_copies": unique_rows, "repeated_copies": total_rows - unique_rows,
            "max_abs_share_error_pp": round(100 * max(abs(v["achieved"] - v["planned"]) for v in mix_shares.values()), 4),
            "accounting_rule": ACCOUNTING_RULE,
        }  # fmt: skip
        return {"mix": summary, "mix_shares": mix_shares, "mix_by_domain": tables["domain"], "mix_by_source": tables["source"]}

    def make_steps(self, files: list[str], progress: bool):
        table = self.table

        def steps(out_dir: str, work_dir: str) -> list[PipelineStep]:
            np.save(Path(work_dir) / PLAN_COPIES, self.copies)
            if table.n_tokens is not None:
                np.save(Path(work_dir) / PLAN_TOKENS, table.n_tokens)
            return [MixReader(files, table.rows_per_file.tolist(), out_dir, work_dir, table.n_tokens is not None, progress)]

        return steps


def _written_by(lf: pl.LazyFrame | None, column: str, has_tokens: bool) -> dict:
    if lf is None:
        return {}
    aggs = [pl.len().alias("docs"), (pl.col("epoch") == 0).sum().alias("unique_docs"), pl.col("epoch").max().alias("max_epoch")]
    if has_tokens:
        aggs.append(pl.col("n_tokens").sum().alias("tokens"))
    df = lf.group_by(pl.col(column).fill_null("unknown")).agg(aggs).collect()
    return {row[column]: {k: (int(v) if v is not None else None) for k, v in row.items() if k != column} for row in df.iter_rows(named=True)}


class MixReader(PipelineStep):
    """Streams the task's input files and marks each row by the plan; writes extra epochs itself."""

    name = "mix"
    type = "reader"

    def __init__(self, files: list[str], rows_per_file: list[int], out_dir: str, work_dir: str, has_tokens: bool,
                 progress: bool = True):  # fmt: skip
        super().__init__()
        self.files = files
        self.rows_per_file = rows_per_file
        self.out_dir = out_dir
        self.work_dir = work_dir
        self.has_tokens = has_tokens
        self.progress = progress

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        from corpus.cards import TextTally
        from corpus.execution import TALLY_DIR, conform, unified_schema

        copies = np.load(Path(self.work_dir) / PLAN_COPIES, mmap_mode="r")
        tokens = np.load(Path(self.work_dir) / PLAN_TOKENS, mmap_mode="r") if self.has_tokens else None
        offsets = np.concatenate([[0], np.cumsum(self.rows_per_file)])
        full = unified_schema(self.files)
        schema = pa.schema([f for f in full if f.name not in ADDED_COLUMNS])
        repeats = PartWriter(Path(self.out_dir) / DATA_DIR, rank, prefix="repeat")
        repeats.clear()
        tally = TextTally()  # the card's text counts of the repeats (the DatasetWriter tallies the rest)
        docs_in = 0
        mine = list(range(rank, len(self.files), world_size))
        for i in task_progress(mine, "mix", rank, enabled=self.progress):
            start = int(offsets[i])
            for batch in pq.ParquetFile(self.files[i]).iter_batches(batch_size=READ_BATCH_ROWS):
                n = batch.num_rows
                table = conform(pa.Table.from_batches([batch]), schema)
                own = np.asarray(copies[start : start + n])
                if tokens is not None:
                    table = table.append_column(pa.field("n_tokens", pa.int64()), pa.array(np.asarray(tokens[start : start + n])))
                table = table.append_column(pa.field("epoch", pa.int32()), pa.array(np.zeros(n, np.int32), mask=own == 0))
                start += n
                docs_in += n
                table = reject_where(to_working(table), pa.array(own == 0), "not_sampled")
                for epoch in range(1, int(own.max(initial=0))):
                    again = table.filter(pa.array(own > epoch)).drop_columns(REJECT_COLUMNS)
                    epoch_column = pa.array(np.full(again.num_rows, epoch, np.int32))
                    again = again.set_column(again.schema.get_field_index("epoch"), "epoch", epoch_column)
                    repeats.write(again)
                    tally.add(again)
                yield table
        repeats.close()
        tally.save(Path(self.work_dir) / TALLY_DIR, rank, part="repeat")
        write_task_stats(self.work_dir, "reader", rank, {"files": len(mine), "docs_in": docs_in})


def mix_job(inputs: list[str], name: str, config: MixConfig, output: str | Path, executor, overwrite: bool = False,
            replace_stale: bool = False, progress: bool = True):  # fmt: skip
    """A StageJob for run_stage. The plan is made here, before anything is written, unless run_stage
    will not run the steps (a finished output with the same fingerprint, or one it must refuse)."""
    from corpus.execution import StageJob, dataset_inputs, fingerprint
    from corpus.outputs import up_to_date

    _, lineage = dataset_inputs(inputs)
    job_config = config.model_dump()
    if config.tokenizer:
        job_config["tokenizer"] = str(Path(config.tokenizer).resolve())
        if not (Path(config.tokenizer) / "tokenizer.json").is_file():
            raise CorpusError(f"{config.tokenizer}: not a tokenizer folder (no tokenizer.json)")
        job_config["tokenizer_sha256"] = tokenizer_sha256(Path(config.tokenizer))

    def not_planned(out_dir: str, work_dir: str):  # pragma: no cover - run_stage returns or raises first
        raise CorpusError("mix: the plan was not made")

    job = StageJob(stage="mix", name=name, config=job_config, inputs=lineage, make_steps=not_planned)
    out = Path(output).resolve()
    if out.exists() and not overwrite:
        same = up_to_date(out, fingerprint(job, executor), is_dataset)
        if same or not (replace_stale and is_dataset(out)):
            return job
    table = read_document_table(inputs, config.tokenizer, config.estimate_sample, config.by, config.seed, config.weights)
    plan = MixPlan(table, config)
    for warning in plan.allocation.warnings:
        print(f"corpus: warning: {warning}", file=sys.stderr)
    job.make_steps = plan.make_steps(table.files, progress)
    job.extra_card = plan.facts_before()
    job.finalize_hook = plan.achieved_facts
    return job


def _run(run):
    """Reads the latest dataset folder; its tokenizer is `tokenizer: PATH` (relative to the pipeline)
    or the output of the latest `tokenizer` (or `base_model`) stage before it."""
    from corpus.tokenize.train_tokenizer import is_tokenizer_folder

    options = run.options
    source = run.latest_dataset()
    if options.tokenizer is not None:
        options = options.model_copy(update={"tokenizer": str((run.base / options.tokenizer).resolve())})
    elif (tokenizer := run.latest(is_tokenizer_folder)) is not None:
        options = options.model_copy(update={"tokenizer": str(tokenizer)})
    return run.publish(mix_job([source], run.name, options, run.out, run.executor, overwrite=run.overwrite, replace_stale=True,
                               progress=run.progress))  # fmt: skip


declare(Stage("mix", MixConfig, _run, "sample dataset folders to a token budget by domain (or source) ratio"))
