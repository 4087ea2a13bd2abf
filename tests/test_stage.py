"""Running stages: the dataset-folder contract, accounting, atomic output, resume after a crash."""

from __future__ import annotations

import json
import shutil
import threading

import polars as pl
import pytest
from datatrove.pipeline.base import PipelineStep

from corpus.document import DOCUMENT_COLUMNS, document_id, is_dataset
from corpus.errors import CorpusError, StageFailed
from corpus.execution import dataset_inputs, run_stage
from corpus.executors import ExecutorConfig
from corpus.filter.length import LengthFilterConfig, length_filter_job
from corpus.ingest import ingest_job
from tests.conftest import FIXTURES, read_folder


def _ingest(small_corpus, out, tasks=2, workers=1, extra_paths=()):
    sources = [
        {"paths": [small_corpus / "insurance", *extra_paths], "source": "hc", "domain": "insurance"},
        {"paths": [small_corpus / "general"], "source": "py", "domain": "general"},
    ]
    return run_stage(ingest_job(sources, "t"), out, ExecutorConfig(tasks=tasks, workers=workers))


def _check_accounting(card, folder):
    """The card's numbers against the Parquet files, recomputed independently."""
    acc = card["accounting"][-1]
    kept = read_folder(folder, "data")
    rejected = read_folder(folder, "rejected")
    assert acc["kept"] == kept.height == card["stats"]["docs"]
    assert sum(acc["rejected"].values()) == rejected.height
    assert acc["docs_in"] == acc["kept"] + sum(acc["rejected"].values())
    if rejected.height:
        by_reason = dict(rejected.group_by("reason").len().iter_rows())
        assert by_reason == acc["rejected"]
        assert rejected["detail"].null_count() == 0 or "too_short" in by_reason
    for f in card["files"]:
        assert (folder / f["path"]).exists()
    return kept, rejected


def test_ingest_writes_the_contract(small_corpus, tmp_path):
    out = tmp_path / "ingested"
    card = _ingest(small_corpus, out, extra_paths=[FIXTURES / "warc" / "clipped.warc.gz"])
    assert is_dataset(out)
    assert (out / "README.md").read_text().startswith("---\npretty_name: t")
    kept, rejected = _check_accounting(card, out)
    assert kept.columns[: len(DOCUMENT_COLUMNS)] == DOCUMENT_COLUMNS
    assert set(kept["domain"]) == {"insurance", "general"}
    assert set(kept["lang"].drop_nulls()) == {"en", "es"}
    # ids are content hashes of the normalised text
    row = kept.row(0, named=True)
    assert row["id"] == document_id(row["text"])
    assert rejected["reason"].to_list() == ["truncated_record"]
    assert card["accounting"][-1]["docs_in"] == 6
    assert not out.with_name(out.name + ".partial").exists()


def test_length_filter_accounting_and_lineage(small_corpus, tmp_path):
    ingested = tmp_path / "ingested"
    _ingest(small_corpus, ingested)
    out = tmp_path / "filtered"
    files, _ = dataset_inputs([ingested])
    card = run_stage(length_filter_job([ingested], "f", LengthFilterConfig(min_chars=300)), out, ExecutorConfig(tasks=2, workers=1))
    kept, rejected = _check_accounting(card, out)
    assert (kept["text"].str.len_chars() >= 300).all()
    assert (rejected["text"].str.len_chars() < 300).all() and set(rejected["reason"]) == {"too_short"}
    assert [a["stage"] for a in card["accounting"]] == ["ingest", "length_filter"]
    assert card["inputs"][0]["card_sha256"] == json.loads((ingested / "card.json").read_text())["card_sha256"]


def test_same_output_whatever_the_task_count(small_corpus, tmp_path):
    one = _ingest(small_corpus, tmp_path / "one", tasks=1)
    three = _ingest(small_corpus, tmp_path / "three", tasks=3)
    a = read_folder(tmp_path / "one").sort("id")
    b = read_folder(tmp_path / "three").sort("id")
    assert a.equals(b)
    assert one["stats"] == three["stats"]


class CrashOnRank(PipelineStep):
    """Passes tables through, but fails in one rank while a flag file exists."""

    name = "crash"

    def __init__(self, rank: int, flag: str):
        super().__init__()
        self.rank, self.flag = rank, flag

    def run(self, data, rank=0, world_size=1):
        import os

        for table in data:
            if rank == self.rank and os.path.exists(self.flag):
                raise RuntimeError("simulated crash")
            yield table


def test_interrupted_run_resumes_and_matches_a_clean_run(small_corpus, tmp_path):
    clean = tmp_path / "clean"
    _ingest(small_corpus, clean, tasks=3)

    flag = tmp_path / "crash-flag"
    flag.touch()
    sources = [
        {"paths": [small_corpus / "insurance"], "source": "hc", "domain": "insurance"},
        {"paths": [small_corpus / "general"], "source": "py", "domain": "general"},
    ]
    job = ingest_job(sources, "t")
    plain_steps = job.make_steps
    job.make_steps = lambda out_dir, work_dir: plain_steps(out_dir, work_dir) + [CrashOnRank(2, str(flag))]
    out = tmp_path / "resumed"
    with pytest.raises(StageFailed, match="rerun the same command to resume"):
        run_stage(job, out, ExecutorConfig(tasks=3, workers=1))
    partial = out.with_name("resumed.partial")
    assert not out.exists() and partial.exists()  # a crashed run never looks finished
    with pytest.raises(CorpusError, match="not a dataset folder"):
        dataset_inputs([partial])
    done_before = sorted(p.name for p in (partial / "_work" / "logs" / "completions").iterdir())
    assert done_before == ["00000", "00001"]

    flag.unlink()
    run_stage(job, out, ExecutorConfig(tasks=3, workers=1))
    for kind in ("data", "rejected"):
        names = sorted(p.name for p in (clean / kind).glob("*.parquet"))
        assert names == sorted(p.name for p in (out / kind).glob("*.parquet"))
        for name in names:
            assert pl.read_parquet(clean / kind / name).equals(pl.read_parquet(out / kind / name))


def test_finished_output_is_left_alone_and_another_config_needs_overwrite(small_corpus, tmp_path):
    ingested = tmp_path / "ingested"
    _ingest(small_corpus, ingested)
    out = tmp_path / "filtered"
    job = length_filter_job([ingested], "f", LengthFilterConfig(min_chars=300))
    first = run_stage(job, out, ExecutorConfig(tasks=1))
    again = run_stage(job, out, ExecutorConfig(tasks=1))
    assert again["created"] == first["created"]  # not redone
    other = length_filter_job([ingested], "f", LengthFilterConfig(min_chars=10))
    with pytest.raises(CorpusError, match="another configuration; pass --overwrite"):
        run_stage(other, out, ExecutorConfig(tasks=1))
    card = run_stage(other, out, ExecutorConfig(tasks=1), overwrite=True)
    assert card["config"]["min_chars"] == 10


def test_not_a_dataset_folder_is_a_clear_error(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(CorpusError, match="plain: not a dataset folder"):
        dataset_inputs([tmp_path / "plain"])
    with pytest.raises(CorpusError, match="missing: no such dataset folder"):
        dataset_inputs([tmp_path / "missing"])


def test_multiprocess_workers_give_the_same_output(small_corpus, tmp_path):
    """workers=2 runs tasks in datatrove's forkserver pool: the steps must pickle and import there."""
    _ingest(small_corpus, tmp_path / "pool", tasks=2, workers=2)
    _ingest(small_corpus, tmp_path / "inline", tasks=2, workers=1)
    assert read_folder(tmp_path / "pool").sort("id").equals(read_folder(tmp_path / "inline").sort("id"))


def test_slurm_section_builds_datatrove_slurm_executor(tmp_path):
    from datatrove.executor.slurm import SlurmPipelineExecutor

    from corpus.executors import build_executor

    cfg = ExecutorConfig.model_validate(
        {"type": "slurm", "tasks": 8, "slurm": {"partition": "cpu", "time": "02:00:00", "cpus_per_task": 4,
                                                "sbatch_args": {"account": "data"}}}  # fmt: skip
    )
    executor = build_executor(cfg, [], str(tmp_path / "logs"))
    assert isinstance(executor, SlurmPipelineExecutor)
    assert (executor.tasks, executor.partition, executor.cpus_per_task) == (8, "cpu", 4)
    with pytest.raises(CorpusError, match="needs a 'slurm:' section"):
        build_executor(ExecutorConfig(type="slurm"), [], str(tmp_path / "logs2"))
    shutil.rmtree(tmp_path / "logs", ignore_errors=True)


class _Numbers(PipelineStep):
    name = "numbers"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        yield from range(rank * 10, rank * 10 + 10)


class _FailOnce(PipelineStep):
    """Appends what it sees to `out/rank.txt` (one line a run); rank 1 fails while `flag` exists."""

    name = "fail once"

    def __init__(self, out, flag):
        super().__init__()
        self.out, self.flag = out, flag

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        values = list(data)
        if rank == 1 and self.flag.exists():
            raise RuntimeError("simulated failure of task 1")
        with open(self.out / f"{rank}.txt", "a") as f:
            f.write(" ".join(map(str, values)) + "\n")
        self.stat_update("seen", value=len(values))
        return iter(())


def test_threaded_tasks_fail_and_a_rerun_resumes(tmp_path):
    from corpus.executors import ThreadedLocalExecutor

    flag = tmp_path / "flag"
    flag.write_text("fail")
    steps = [_Numbers(), _FailOnce(tmp_path, flag)]
    logs = tmp_path / "logs"
    with pytest.raises(RuntimeError, match="simulated failure"):
        ThreadedLocalExecutor(steps, tasks=3, workers=2, logging_dir=str(logs)).run()
    done_first = sorted(p.name for p in (logs / "completions").iterdir())
    assert "00001" not in done_first
    assert "simulated failure of task 1" in (logs / "logs" / "task_00001.log").read_text()

    flag.unlink()
    runner = ThreadedLocalExecutor(steps, tasks=3, workers=2, logging_dir=str(logs))
    runner.run()
    assert runner.get_incomplete_ranks(range(3)) == []
    for rank in range(3):  # each task's work done exactly once over the two runs
        assert (tmp_path / f"{rank}.txt").read_text() == " ".join(str(i) for i in range(rank * 10, rank * 10 + 10)) + "\n"
    assert json.loads((logs / "stats" / "00001.json").read_text())


_RUNS: list = []  # the executor under test and a barrier of its two tasks: the tasks are deep copies, so they find them here


class _Slow(PipelineStep):
    """Yields up to 200 items, counting them in `out/yielded-RANK`. Once both tasks are at their third
    item, task 0 sends Ctrl-C to the main thread; every task then waits until the run is cancelled
    before going on, so what is checked does not depend on how fast the machine is."""

    name = "slow"

    def __init__(self, out):
        super().__init__()
        self.out = out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import _thread

        for i in range(200):
            if i == 2:
                runner, both_started = _RUNS[-1]
                both_started.wait(600)
                if rank == 0:
                    _thread.interrupt_main()
                assert runner._cancel.wait(600), "the interrupt never cancelled the run"
            (self.out / f"yielded-{rank}").write_text(str(i + 1))
            yield i


@pytest.fixture
def default_sigint():
    """Ctrl-C raises KeyboardInterrupt, whatever an earlier test in this process left: interrupt_main()
    does nothing while SIGINT is ignored (as a command ignores it once it has printed its last line)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_threaded_tasks_at_their_next_batch(tmp_path, default_sigint):
    from corpus.executors import ThreadedLocalExecutor

    logs = tmp_path / "logs"
    runner = ThreadedLocalExecutor([_Slow(tmp_path), _FailOnce(tmp_path, tmp_path / "no-flag")], tasks=2, workers=2, logging_dir=str(logs))
    _RUNS.append((runner, threading.Barrier(2)))
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    assert not any((logs / "completions").iterdir())
    assert "interrupted" in (logs / "logs" / "task_00001.log").read_text()
    for rank in (0, 1):  # both stopped at the first item after the cancel: their third at the latest
        assert int((tmp_path / f"yielded-{rank}").read_text()) <= 3


class _WaitForCancel(PipelineStep):
    """Yields one item once the run is cancelled (or after 60 s, which fails the test below)."""

    name = "wait for cancel"

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        _RUNS[-1][0]._cancel.wait(60)
        yield rank


def test_ctrl_c_while_tasks_are_being_started_stops_those_already_running(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import corpus.executors
    from corpus.executors import ThreadedLocalExecutor

    class InterruptedPool(ThreadPoolExecutor):  # Ctrl-C arrives right after the last task was submitted
        def submit(self, *args, **kwargs):
            future = super().submit(*args, **kwargs)
            if len(self._threads) == 2:
                raise KeyboardInterrupt
            return future

    monkeypatch.setattr(corpus.executors, "ThreadPoolExecutor", InterruptedPool)
    logs = tmp_path / "logs"
    runner = ThreadedLocalExecutor([_WaitForCancel()], tasks=2, workers=2, logging_dir=str(logs))
    _RUNS.append((runner, None))
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    # run() returned only after both tasks stopped, each cancelled rather than left waiting
    for rank in (0, 1):
        assert "interrupted" in (logs / "logs" / f"task_{rank:05d}.log").read_text()
    assert not any((logs / "completions").iterdir())


def test_batches_hold_fewer_rows_when_documents_are_long(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.execution import READ_BATCH_ROWS, batch_rows

    short, long = tmp_path / "short.parquet", tmp_path / "long.parquet"
    pq.write_table(pa.table({"text": ["a few words"] * 20_000}), short)
    pq.write_table(pa.table({"text": ["x" * 2_000_000 + str(i) for i in range(40)]}), long, compression="zstd")
    assert batch_rows(pq.ParquetFile(short)) == READ_BATCH_ROWS
    assert batch_rows(pq.ParquetFile(long)) == 16  # 2 MB documents: 32 MB would be 16 of them


def test_part_files_gather_small_tables_into_row_groups_without_text_statistics(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import corpus.document as document

    monkeypatch.setattr(document, "ROW_GROUP_ROWS", 100)
    writer = document.PartWriter(tmp_path, rank=0, max_rows_per_file=250)
    for i in range(600):  # one-document tables, as a reader yields them
        writer.write(pa.table({"id": [f"{i:04d}"], "text": [f"document {i} " * 20]}))
    writer.close()
    files = sorted(tmp_path.glob("*.parquet"))
    metas = [pq.ParquetFile(f).metadata for f in files]
    assert [m.num_rows for m in metas] == [250, 250, 100]  # files still rotate by row count
    assert [[m.row_group(g).num_rows for g in range(m.num_row_groups)] for m in metas] == [[100, 100, 50], [50, 100, 100], [100]]
    assert pq.read_table(files).column("id").to_pylist() == [f"{i:04d}" for i in range(600)]  # order kept
    group = metas[0].row_group(0)
    assert group.column(0).statistics.has_min_max  # the id column keeps its statistics
    assert not group.column(1).is_stats_set  # the text's would copy documents into the footer
