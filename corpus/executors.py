"""datatrove's executors as a stage uses them: their configuration, a threaded local executor, quiet task logs.

`build_executor` returns datatrove's local, Ray or Slurm executor for an `ExecutorConfig`, or
`ThreadedLocalExecutor` for a local stage whose steps release the GIL. Each task's INFO log goes to
its log file only; the terminal shows our progress lines and warnings.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections import deque
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from copy import deepcopy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corpus import lifetime
from corpus.errors import CorpusError
from corpus.progress import quiet


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RayOptions(_Strict):
    address: str | None = Field(None, description="Ray cluster address; none starts a local one")
    num_cpus: int | None = Field(None, description="CPUs for a local Ray instance")
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2


class SlurmOptions(_Strict):
    partition: str
    time: str = "04:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    qos: str = "normal"
    job_name: str = "corpus"
    venv_path: str | None = None
    env_command: str | None = None
    sbatch_args: dict[str, Any] = Field(default_factory=dict)


class ExecutorConfig(_Strict):
    """Where a stage's tasks run. The stage itself does not change with the executor."""

    type: Literal["local", "ray", "slurm"] = "local"
    tasks: int = Field(1, ge=1)
    workers: int = Field(-1, description="tasks run at once; -1: min(tasks, CPUs)")
    ray: RayOptions = Field(default_factory=RayOptions)
    slurm: SlurmOptions | None = None


def _quiet_task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's per-task logger, but INFO goes only to the task's log file, not the terminal."""
    from datatrove.utils.logging import logger

    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
    # a task's failure (datatrove logs it with its traceback) goes to its log file only: the command
    # prints one line naming the error and the log folder
    logger.add(sys.stderr, level="CRITICAL" if quiet() or local_rank else "WARNING", format=fmt, colorize=False,
               filter=lambda record: record["level"].no < 40)
    logger.add(logfile, level="DEBUG", format=fmt, colorize=False)
    return logfile


def _install_quiet_logging() -> None:
    # datatrove sends every task's INFO log to the terminal; our progress lines replace that.
    # build_executor installs it in this process; a worker process unpickles the executor (so
    # imports datatrove's executor module) before the steps, whose import of corpus.execution (which
    # imports this module) installs it.
    import datatrove.executor.base as executor_base

    executor_base.add_task_logger = _quiet_task_logger
    executor_base.close_task_logger = _close_quiet_task_logger


def _close_quiet_task_logger(logfile) -> None:
    from datatrove.utils.logging import logger

    logger.complete()
    logger.remove()
    logger.add(sys.stderr, level="ERROR" if quiet() else "WARNING", colorize=False)
    logfile.close()


if "datatrove.executor.base" in sys.modules:  # importing it costs 0.3 s: threaded stages never do
    _install_quiet_logging()


def configure_main_logging() -> None:
    """datatrove's executor logs each completed task at INFO; keep the terminal to warnings."""
    from datatrove.utils.logging import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR" if quiet() else "WARNING", colorize=False,
               format="{time:HH:mm:ss} | {level} | {message}")


def build_executor(cfg: ExecutorConfig, pipeline: list, logging_dir: str, threads: bool = False):
    """The datatrove executor of `cfg`; `threads`: a local run's tasks are threads of this process."""
    workers = cfg.workers if cfg.workers > 0 else min(cfg.tasks, os.cpu_count() or 1)
    if cfg.type == "local" and threads:
        return ThreadedLocalExecutor(pipeline, tasks=cfg.tasks, workers=workers, logging_dir=logging_dir)
    _install_quiet_logging()
    if cfg.type == "local":
        from datatrove.executor import LocalPipelineExecutor

        if workers > 1 and threading.current_thread() is threading.main_thread():
            lifetime.start_fork_server()

        return LocalPipelineExecutor(pipeline, tasks=cfg.tasks, workers=workers, logging_dir=logging_dir)
    if cfg.type == "ray":
        import ray
        from datatrove.executor.ray import RayPipelineExecutor

        if not ray.is_initialized():
            ray.init(address=cfg.ray.address, num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False)
        return RayPipelineExecutor(
            pipeline,
            tasks=cfg.tasks,
            workers=workers,
            logging_dir=logging_dir,
            cpus_per_task=cfg.ray.cpus_per_task,
            mem_per_cpu_gb=cfg.ray.mem_per_cpu_gb,
        )
    from datatrove.executor.slurm import SlurmPipelineExecutor

    if cfg.slurm is None:
        raise CorpusError("executor type 'slurm' needs a 'slurm:' section with at least 'partition'")
    s = cfg.slurm
    return SlurmPipelineExecutor(
        pipeline,
        tasks=cfg.tasks,
        workers=cfg.workers,
        time=s.time,
        partition=s.partition,
        cpus_per_task=s.cpus_per_task,
        mem_per_cpu_gb=s.mem_per_cpu_gb,
        qos=s.qos,
        job_name=s.job_name,
        venv_path=s.venv_path,
        env_command=s.env_command,
        sbatch_args=s.sbatch_args or None,
        logging_dir=logging_dir,
    )


class ThreadedLocalExecutor:
    """A local executor whose tasks are threads of this process, `workers` at a time.

    For stages whose steps spend their time where Python releases the GIL (Arrow compute, Parquet
    reading and writing, numba kernels compiled `nogil`): it saves what a process pool costs on
    every pass (a manager process, a forkserver, each worker importing the libraries again and
    loading the compiled kernels, the steps pickled over). Each task runs its own copy of the steps.
    The logging folder has datatrove's layout (completions/NNNNN, stats/NNNNN.json, stats.json,
    logs/task_NNNNN.log), so a rerun skips completed tasks as LocalPipelineExecutor's would. A
    failed task's traceback goes to its log file; the other tasks stop at their next batch and the
    failure is raised. Ctrl-C stops them the same way.
    """

    def __init__(self, pipeline: list, tasks: int = 1, workers: int = 1, logging_dir: str | Path = "logs"):
        self.pipeline = pipeline
        self.tasks = self.world_size = tasks
        self.workers = max(1, workers)
        self.logging_dir = Path(logging_dir)

    def get_incomplete_ranks(self, ranks=None) -> list[int]:
        ranks = range(self.tasks) if ranks is None else ranks
        return [rank for rank in ranks if not (self.logging_dir / "completions" / f"{rank:05d}").exists()]

    def run(self):
        from datatrove.utils.stats import PipelineStats

        ranks = self.get_incomplete_ranks()
        if not ranks:
            return PipelineStats()
        for sub in ("completions", "stats", "logs"):
            (self.logging_dir / sub).mkdir(parents=True, exist_ok=True)
        self._cancel = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="task")
        try:  # from the first submit on: Ctrl-C while tasks are still being started stops those already running
            futures = [pool.submit(self._run_task, deepcopy(self.pipeline), rank) for rank in ranks]
            # a failure, or Ctrl-C here, stops the other tasks at their next batch (as a process
            # pool's would be terminated); their completed work stays for a rerun
            while True:  # in short waits, so that Ctrl-C is seen at once
                done, not_done = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
                failed = next((f for f in done if f.exception() is not None), None)
                if failed is not None or not not_done:
                    break
            if failed is not None:
                self._cancel.set()
                raise failed.exception()
            stats = [f.result() for f in futures]
        except BaseException:
            self._cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        merged = sum(stats, start=PipelineStats())
        with open(self.logging_dir / "stats.json", "w") as f:
            merged.save_to_disk(f)
        return merged

    def _watched(self, items):
        for item in items:
            if self._cancel.is_set():
                raise _TaskCancelled("stopped: another task failed or the run was interrupted")
            yield item

    def _run_task(self, pipeline: list, rank: int):
        from datatrove.utils.stats import PipelineStats

        try:
            data = None
            for step in pipeline:
                data = step(data, rank, self.world_size)
                if data is not None:
                    data = self._watched(data)
            if data is not None:
                deque(data, maxlen=0)
            stats = PipelineStats(pipeline)
            with open(self.logging_dir / "stats" / f"{rank:05d}.json", "w") as f:
                stats.save_to_disk(f)
            (self.logging_dir / "completions" / f"{rank:05d}").touch()
            return stats
        except _TaskCancelled as e:
            (self.logging_dir / "logs" / f"task_{rank:05d}.log").write_text(f"{e}\n", encoding="utf-8")
            raise
        except Exception:
            (self.logging_dir / "logs" / f"task_{rank:05d}.log").write_text(traceback.format_exc(), encoding="utf-8")
            raise


class _TaskCancelled(Exception):
    pass
