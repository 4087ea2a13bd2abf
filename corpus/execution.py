"""Running a stage on datatrove's executors and turning its output into a finished dataset folder.

A stage is a list of datatrove pipeline steps (a reader, transforms) that pass Arrow tables; this
module appends the writer, runs the steps with datatrove's local, Ray or Slurm executor (built by
corpus.executors) into `OUT.partial/`, and when every task has completed, merges the tasks'
accounting, writes the card and renames `OUT.partial` to `OUT`. A rerun skips the tasks datatrove
marked complete, so an interrupted job redoes only what is missing, and a finished output is left
as it is.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.pipeline.base import PipelineStep

from corpus import lifetime
from corpus.document import (
    CARD_JSON,
    DATA_DIR,
    REJECTED_DIR,
    PartWriter,
    data_files,
    file_sha256,
    is_dataset,
    read_card,
    split_kept_rejected,
    to_working,
)
from corpus.errors import CorpusError, StageFailed
from corpus.executors import ExecutorConfig, build_executor, configure_main_logging
from corpus.outputs import (
    OutputFolder,
    OutputLock,
    check_output,
    fingerprint_of,
)
from corpus.progress import say, task_progress
from corpus.stage_stats import merge_counts, read_task_stats, write_task_stats

lifetime.install()  # in a worker process of the command: die with it, even after kill -9

WORK_DIR = "_work"
TALLY_DIR = "text_tally"  # in the work folder: the writers' TextTally parts
READ_BATCH_ROWS = 8192  # at most; fewer where documents are long (batch_rows)
READ_BATCH_BYTES = 32 << 20  # about this much uncompressed data per batch


def batch_rows(parquet: pq.ParquetFile) -> int:
    """Rows per batch for this file: READ_BATCH_ROWS, fewer when its rows average more than
    READ_BATCH_BYTES / READ_BATCH_ROWS bytes, so a file of 10 MB documents is read a few at a time."""
    meta = parquet.metadata
    if meta.num_rows == 0:
        return READ_BATCH_ROWS
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return int(max(16, min(READ_BATCH_ROWS, READ_BATCH_BYTES * meta.num_rows // max(size, 1))))


# ---------------------------------------------------------------- steps shared by every stage


class DatasetReader(PipelineStep):
    """Reads the kept documents of input dataset folders; files are dealt out round-robin by rank."""

    name = "read dataset"
    type = "reader"

    def __init__(self, files: list[str], work_dir: str, stage: str, progress: bool = True):
        super().__init__()
        self.files = files
        self.work_dir = work_dir
        self.stage = stage
        self.progress = progress

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        mine = self.files[rank::world_size]
        schema = unified_schema(self.files)
        docs_in = 0
        for path in task_progress(mine, self.stage, rank, enabled=self.progress):
            for batch in read_batches(path):
                table = conform(pa.Table.from_batches([batch]), schema)
                docs_in += table.num_rows
                yield to_working(table)
        write_task_stats(self.work_dir, "reader", rank, {"files": len(mine), "docs_in": docs_in})


def damaged_parquet(path, error: Exception) -> CorpusError:
    """The one-line error for a Parquet file that cannot be read."""
    return CorpusError(f"{path}: not a readable Parquet file ({' '.join(str(error).split())[:160]})")


def read_batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """A data file's record batches; a damaged file is a CorpusError that names it."""
    try:
        parquet = pq.ParquetFile(path)
        yield from parquet.iter_batches(batch_size=batch_rows(parquet), columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise damaged_parquet(path, e) from None


def unreadable(files: list[str], error: Exception) -> Exception:
    """After a read across `files` failed: the CorpusError naming the damaged file (each is read
    through to find it), or the error itself when every file reads."""
    for path in files:
        try:
            for _ in read_batches(path):
                pass
        except CorpusError as e:
            return e
    return error


def unified_schema(files: list[str]) -> pa.Schema:
    return pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive") if files else pa.schema([])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Give a table every column of `schema` (missing ones null), in schema order."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.table(columns, schema=schema)


class DatasetWriter(PipelineStep):
    """Sorts working tables into data/ and rejected/ and records the task's accounting."""

    name = "write dataset"
    type = "writer"

    def __init__(self, out_dir: str, work_dir: str, max_rows_per_file: int = 200_000, stamp: dict[str, str] | None = None):
        super().__init__()
        self.out_dir = out_dir
        self.work_dir = work_dir
        self.max_rows_per_file = max_rows_per_file
        self.stamp = stamp  # written into each part file: the run's fingerprint and work-file digests

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator:
        kept_writer = PartWriter(Path(self.out_dir) / DATA_DIR, rank, self.max_rows_per_file, stamp=self.stamp)
        rejected_writer = PartWriter(Path(self.out_dir) / REJECTED_DIR, rank, self.max_rows_per_file, stamp=self.stamp)
        kept_writer.clear()
        rejected_writer.clear()
        from corpus.cards import TextTally

        tally = TextTally()  # the card's text counts, taken on the way out (no second read)
        kept, reasons = 0, Counter()
        for table in data or []:
            kept_rows, rejected_rows = split_kept_rejected(table)
            kept_writer.write(kept_rows)
            tally.add(kept_rows)
            rejected_writer.write(rejected_rows)
            kept += kept_rows.num_rows
            if rejected_rows.num_rows:
                reasons.update(rejected_rows.column("reason").to_pylist())
        kept_writer.close()
        rejected_writer.close()
        tally.save(Path(self.work_dir) / TALLY_DIR, rank)
        self.stat_update("kept", value=kept)
        self.stat_update("rejected", value=sum(reasons.values()))
        write_task_stats(self.work_dir, "writer", rank, {"kept": kept, "rejected": dict(reasons)})
        return iter(())


# ---------------------------------------------------------------- running a stage


@dataclass
class StageJob:
    """What a stage needs to run: its steps (built for a work folder), config and lineage."""

    stage: str  # the stage kind: ingest, length_filter, ...
    name: str  # the dataset's name
    config: dict
    inputs: list[dict]  # lineage: {"path", "kind": "dataset"|"files", ...}
    make_steps: Callable[[str, str], list[PipelineStep]]  # (out_dir, work_dir) -> steps before the writer
    extra_card: dict = field(default_factory=dict)  # stage facts known before running (skipped files ...)
    finalize_hook: Callable[[Path, dict], dict] | None = None  # adds stage facts to the card after running
    # runs before the main pass, e.g. a parallel pre-pass and a global step whose results the main
    # pass reads from the work folder: (partial_dir, work_dir, executor) -> None; must resume itself
    prepare: Callable[[Path, Path, ExecutorConfig], None] | None = None
    # local runs put the tasks in threads of this process (steps that release the GIL), not processes
    threads: bool = False
    # files in the work folder that the tasks read (relative paths): their digests are written into
    # every part file and the card, so `card validate` finds parts made with other ones
    work_files: list[str] = field(default_factory=list)


def fingerprint(job: StageJob, executor: ExecutorConfig) -> str:
    """A dataset stage's fingerprint: its stage, config and number of tasks, and its inputs' lineage
    entries. An input dataset counts by its own fingerprint, not its card's hash (which covers the
    time the card was written), so the same pipeline run again makes the same fingerprints, and the
    same part files, which keep them."""
    inputs = [{k: v for k, v in i.items() if k != "card_sha256"} if i.get("kind") == "dataset" and i.get("fingerprint") else i
              for i in job.inputs]  # fmt: skip
    return fingerprint_of({"stage": job.stage, "config": job.config, "inputs": inputs, "tasks": executor.tasks})


def run_stage(
    job: StageJob,
    output: str | Path,
    executor: ExecutorConfig | None = None,
    overwrite: bool = False,
    command: list[str] | None = None,
    pipeline_file: str | None = None,
    replace_stale: bool = False,
) -> dict | None:
    """Run a stage into `output`. Returns the card, or None when the tasks were only submitted (Slurm).
    One writer at a time: a second run on the same output stops with the first one's PID."""
    executor = executor or ExecutorConfig()
    configure_main_logging()
    out = check_output(output, [i["path"] for i in job.inputs if i.get("path")])
    with OutputLock(out):
        card, ran = _run_locked(job, output, out, executor, overwrite, command, pipeline_file, replace_stale)
    if card is None or not ran:
        return card
    acc = card["accounting"][-1]
    rejected = ", ".join(f"{k} {v:,}" for k, v in acc["rejected"].items()) or "none"
    say(f"{job.stage}: {acc['docs_in']:,} documents in, {acc['kept']:,} kept, rejected: {rejected} -> {output}")
    return card


def _run_locked(job, output, out: Path, executor, overwrite, command, pipeline_file, replace_stale) -> tuple[dict | None, bool]:
    """run_stage's work while it holds the output's lock: (the card, whether the stage ran)."""
    from corpus.cards import write_card

    fp = fingerprint(job, executor)
    # replace_stale: a pipeline replaces its own earlier output of another config
    target = OutputFolder(out, overwrite, is_dataset, fingerprint=fp, replace_stale=replace_stale, shown=output, noun="dataset")
    if not overwrite and target.is_up_to_date():
        say(f"{job.stage}: {output} is up to date (same inputs and config); nothing to do")
        return read_card(out), False
    target.check()
    partial = target.open(resume=fp)  # a half-finished run of another configuration is not resumed
    work = partial / WORK_DIR

    if job.prepare is not None:
        try:
            job.prepare(partial, work, executor)
        except CorpusError:
            raise
        except Exception as e:
            raise StageFailed(
                f"{job.stage}: the preparing pass failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                f"logs in {work}; rerun the same command to resume"
            ) from e
    steps = job.make_steps(str(partial), str(work))
    work_digests = {name: file_sha256(work / name) for name in job.work_files if (work / name).is_file()}
    stamp = {"corpus.fingerprint": fp, "corpus.work_files": json.dumps(work_digests, sort_keys=True)}
    steps.append(DatasetWriter(str(partial), str(work), stamp=stamp))
    runner = build_executor(executor, steps, str(work / "logs"), threads=job.threads)
    started = time.time()
    try:
        with lifetime.interrupts_stop_workers():
            runner.run()
    except CorpusError:  # bad input a task found (a damaged data file ...): its one line, exit 2
        raise
    except Exception as e:
        raise StageFailed(
            f"{job.stage}: a task failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
            f"logs in {work / 'logs'}; rerun the same command to resume"
        ) from e
    incomplete = runner.get_incomplete_ranks(range(executor.tasks))
    if incomplete:
        if executor.type == "slurm":
            say(f"{job.stage}: submitted {executor.tasks} tasks to Slurm; rerun this command when they finish")
            return None, False
        raise StageFailed(f"{job.stage}: tasks {incomplete} did not complete; logs in {work / 'logs'}; rerun to resume")

    previous_readme = (out / "README.md").read_text(encoding="utf-8") if (out / "README.md").is_file() else ""
    card = _finalize(job, partial, work, executor, fp, started, command, pipeline_file, write_card, previous_readme, out,
                     work_digests)  # fmt: skip
    target.publish()
    return card, True


def _finalize(job, partial: Path, work: Path, executor, fp, started, command, pipeline_file, write_card,
              previous_readme: str, out: Path, work_digests: dict[str, str]) -> dict:
    readers = read_task_stats(work, "reader", executor.tasks)
    writers = read_task_stats(work, "writer", executor.tasks)
    docs_in = sum(r.get("docs_in", 0) for r in readers)
    kept = sum(w.get("kept", 0) for w in writers)
    rejected = merge_counts(writers, "rejected")
    if docs_in != kept + sum(rejected.values()):
        raise StageFailed(
            f"{job.stage}: accounting does not add up: {docs_in} in, {kept} kept, {sum(rejected.values())} rejected"
        )
    accounting = {
        "stage": job.stage,
        "docs_in": docs_in,
        "kept": kept,
        "rejected": rejected,
        "skipped_records": merge_counts(readers, "skipped_records"),
        "seconds": round(time.time() - started, 2),
    }
    stage_facts = dict(job.extra_card)
    warnings = [w for r in readers for w in r.get("warnings", [])]
    if warnings:
        stage_facts["warnings"] = warnings
    if job.finalize_hook:
        stage_facts.update(job.finalize_hook(partial, stage_facts))
    if work_digests:
        stage_facts["work_files"] = work_digests
    from corpus.cards import load_tallies

    texts = load_tallies(work / TALLY_DIR, executor.tasks)
    shutil.rmtree(work)
    return write_card(
        partial,
        name=job.name,
        stage=job.stage,
        config=job.config,
        inputs=job.inputs,
        accounting=accounting,
        stage_facts=stage_facts,
        executor=executor.model_dump(exclude_none=True),
        fingerprint=fp,
        command=command,
        pipeline_file=pipeline_file,
        previous_readme=previous_readme,
        final_folder=out,
        texts=texts,
    )


def dataset_inputs(paths: list[str | Path]) -> tuple[list[str], list[dict]]:
    """Data files and lineage entries of input dataset folders; a CorpusError names a bad one."""
    files, lineage = [], []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CorpusError(f"{path}: no such dataset folder")
        if not is_dataset(path):
            hint = " (it is half-written: rerun the stage that makes it)" if path.name.endswith(".partial") else ""
            raise CorpusError(f"{path}: not a dataset folder (no {CARD_JSON} and {DATA_DIR}/){hint}")
        card = read_card(path)
        for f in data_files(path):
            try:  # the footer: a truncated or foreign file fails here, before any task starts
                pq.read_metadata(f)
            except Exception as e:
                raise damaged_parquet(f, e) from None
            files.append(str(f))
        lineage.append(
            {
                "kind": "dataset",
                "path": str(path.resolve()),
                "name": card.get("name"),
                "stage": card.get("stage"),
                "card_sha256": card.get("card_sha256"),
                "fingerprint": card.get("fingerprint"),
                "docs": card.get("stats", {}).get("docs"),
            }
        )
    return files, lineage
