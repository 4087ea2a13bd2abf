"""The stages a pipeline can run: each declared once, beside its code, and found here by name.

A stage module declares what `corpus run` needs to know of it, in one place:

    declare(Stage(
        "length_filter",                       # its key in a pipeline's `stages:`
        LengthFilterConfig,                    # its options: a pydantic model, validated from the YAML
        lambda run: run.publish(length_filter_job([run.latest_dataset()], run.name, run.options, progress=run.progress)),
        "reject documents outside length bounds",
    ))

and `STAGE_MODULES` below names the module, so a pipeline imports only the stages it uses (the
engine never imports the trainer unless a pipeline has a training stage). A run function gets a
`StageRun` (its options, its output folder, the folders of the stages before it) and returns the
folder it wrote, or None when its tasks were only submitted (Slurm): later stages then wait for a
rerun. A dataset stage hands its job to `run.publish`, which runs it under the one output contract
(partial folder then rename, fingerprint, "up to date" on a rerun, the card). docs/add-a-stage.md
walks through adding one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from corpus.errors import CorpusError

# stage name -> the module that declares it (imported when a pipeline uses the stage)
STAGE_MODULES: dict[str, str] = {
    "ingest": "corpus.ingest.stage",
    "length_filter": "corpus.filter.length",
    "filter": "corpus.filter.stage",
    "dedup": "corpus.dedup",
    "decontaminate": "corpus.decontaminate",
    "instruct": "corpus.instruct",
    "classifier": "corpus.classify.stages",
    "classify": "corpus.classify.stages",
    "tokenizer": "corpus.tokenize.stages",
    "mix": "corpus.mix.stage",
    "tokenize": "corpus.tokenize.stages",
    "base_model": "train.stages",
    "pretrain": "train.stages",
    "sft": "train.stages",
    "eval": "train.stages",
    "ablate": "train.stages",
}


@dataclass(frozen=True)
class Stage:
    name: str
    config: type
    run: Callable[[StageRun], Path | None]
    help: str


_DECLARED: dict[str, Stage] = {}


def declare(stage: Stage) -> Stage:
    """Called by a stage module at import: the stage becomes runnable under its name."""
    if STAGE_MODULES.get(stage.name) is None:
        raise CorpusError(f"stage {stage.name!r} is declared but not listed in corpus.stages.STAGE_MODULES")
    _DECLARED[stage.name] = stage
    return stage


def stage(name: str) -> Stage:
    """The declared stage of this name (importing its module on first use)."""
    if name not in _DECLARED:
        if name not in STAGE_MODULES:
            raise CorpusError(f"unknown stage {name!r} (known: {', '.join(STAGE_MODULES)})")
        importlib.import_module(STAGE_MODULES[name])
        if name not in _DECLARED:  # pragma: no cover - a module listed above that forgot its declare()
            raise CorpusError(f"stage {name!r}: {STAGE_MODULES[name]} does not declare it")
    return _DECLARED[name]


def earlier_or_path(ref: str, written: list[Path], base: Path) -> str:
    """An earlier stage's folder, by its folder name (`04-instruct`) or kind (`instruct`: the latest
    such), or else a path relative to the pipeline file."""
    found = [p for p in written if ref in (p.name, p.name.split("-", 1)[-1])]
    return str(found[-1]) if found else str((base / ref).resolve())


@dataclass
class StageRun:
    """What a stage's run function is given."""

    kind: str  # the stage's name
    index: int  # its place in the pipeline's `stages:`, from 0
    options: Any  # its validated config
    out: Path  # its output folder
    name: str  # PIPELINE/FOLDER: the name its card gives the dataset
    written: list[Path]  # the folders of the stages before it, in order
    pipeline: Any  # the PipelineConfig: sources, executor
    pipeline_file: Path
    output: Path  # the pipeline's output folder
    overwrite: bool = False
    progress: bool = True
    command: list[str] | None = None

    @property
    def base(self) -> Path:
        """The folder of the pipeline file: relative paths in options are relative to it."""
        return self.pipeline_file.resolve().parent

    @property
    def executor(self):
        return self.pipeline.executor

    def fail(self, message: str) -> CorpusError:
        return CorpusError(f"{self.pipeline_file}: stage {self.kind!r} {message}")

    def latest(self, test) -> Path | None:
        """The latest earlier folder that passes `test` (e.g. corpus.document.is_dataset)."""
        return next((p for p in reversed(self.written) if test(p)), None)

    def latest_dataset(self) -> str:
        from corpus.document import is_dataset

        found = self.latest(is_dataset)
        if found is None:
            raise self.fail("needs a dataset stage before it")
        return str(found)

    def earlier_or_path(self, ref: str) -> str:
        return earlier_or_path(ref, self.written, self.base)

    def publish(self, job) -> Path | None:
        """Run a dataset stage's job into `out` under the output contract; a pipeline replaces its
        own earlier output of another configuration."""
        from corpus.execution import run_stage

        card = run_stage(job, self.out, self.executor, overwrite=self.overwrite, command=self.command,
                         pipeline_file=str(self.pipeline_file), replace_stale=True)  # fmt: skip
        return None if card is None else self.out
