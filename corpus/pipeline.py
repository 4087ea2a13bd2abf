"""`corpus run PIPELINE.yaml`: sources and stages, validated, each stage writing a dataset folder.

    name: quickstart
    output: ../out/quickstart          # relative paths are relative to this file
    executor: {type: local, tasks: 2}
    sources:
      - {path: ../sample/insurance, source: healthcare_gov, domain: insurance}
    stages:
      - ingest: {}
      - length_filter: {min_chars: 200}

Stage `i` reads the dataset folder of stage `i-1` and writes `OUTPUT/NN-STAGE/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corpus.crawl.config import CrawlConfig
from corpus.errors import CorpusError, validation_message
from corpus.executors import ExecutorConfig
from corpus.ingest.formats import FORMATS
from corpus.outputs import OutputLock, check_output
from corpus.progress import say
from corpus.stages import STAGE_MODULES, StageRun, earlier_or_path, stage
from corpus.yaml_file import read_yaml

__all__ = ["PipelineConfig", "SourceConfig", "earlier_or_path", "load_pipeline", "run_pipeline", "stage_folders"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    path: str | list[str] | None = None
    crawl: CrawlConfig | None = None  # instead of path: crawl into OUTPUT/crawl-SOURCE/, then ingest its WARC
    source: str
    domain: str
    format: Literal["auto", *FORMATS] = "auto"
    text_key: str = "text"
    follow_symlinks: bool = Field(False, description="read symlinks in the folder that lead outside it")
    split: Literal["document", "page", "section"] = Field("document", description="PDF/DOCX: one document per file, page or section")

    @model_validator(mode="after")
    def _path_or_crawl(self) -> SourceConfig:
        if (self.path is None) == (self.crawl is None):
            raise ValueError("a source needs either 'path' or 'crawl', not both")
        return self

    def paths(self, base: Path) -> list[str]:
        raw = [self.path] if isinstance(self.path, str) else self.path
        return [str((base / p).resolve()) for p in raw]


class PipelineConfig(_Strict):
    name: str
    output: str
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    sources: list[SourceConfig] = Field(min_length=1)
    stages: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, entry in enumerate(stages):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(f"stage {i} must be a mapping with one key, the stage name")
            (kind,) = entry
            if kind not in STAGE_MODULES:
                raise ValueError(f"stage {i}: unknown stage {kind!r} (known: {', '.join(STAGE_MODULES)})")
        if next(iter(stages[0])) != "ingest":
            raise ValueError("the first stage must be 'ingest'")
        return stages


FOLDER_KEY = "folder"  # a stage's own output folder name under `output`, instead of NN-kind


def stage_folders(config: PipelineConfig) -> list[str]:
    """Each stage's output folder name: `folder:` in its options (e.g. `final-model`), else NN-kind."""
    return [options[FOLDER_KEY] if isinstance(options, dict) and FOLDER_KEY in options else f"{i:02d}-{kind}"
            for i, entry in enumerate(config.stages) for kind, options in entry.items()]  # fmt: skip


def _check_folders(path: Path, config: PipelineConfig) -> None:
    seen: set[str] = set()
    for i, (entry, name) in enumerate(zip(config.stages, stage_folders(config))):
        where = f"{path}: stages.{i}.{next(iter(entry))}.{FOLDER_KEY}"
        if not isinstance(name, str) or not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise CorpusError(f"{where}: {name!r} is not a folder name (one name, no path)")
        if name.endswith((".partial", ".tmp")) or name.startswith("crawl-"):
            raise CorpusError(f"{where}: {name!r} is a name the pipeline uses for its own work folders")
        if name in seen:
            raise CorpusError(f"{where}: {name!r} is already another stage's folder")
        seen.add(name)


def load_pipeline(path: str | Path) -> tuple[PipelineConfig, list[tuple[str, BaseModel]]]:
    path = Path(path)
    raw = read_yaml(path, "pipeline file")
    if not isinstance(raw, dict):
        raise CorpusError(f"{path}: a pipeline is a YAML mapping with name, output, sources and stages")
    try:
        config = PipelineConfig.model_validate(raw)
        stages = []
        for i, entry in enumerate(config.stages):
            (kind, options) = next(iter(entry.items()))
            options = {k: v for k, v in (options or {}).items() if k != FOLDER_KEY} if isinstance(options, dict) else options
            try:
                stages.append((kind, stage(kind).config.model_validate(options or {})))
            except ValidationError as e:
                raise CorpusError(f"{path}: {validation_message(e, ('stages', i, kind))}") from None
    except ValidationError as e:
        raise CorpusError(f"{path}: {validation_message(e)}") from None
    _check_folders(path, config)
    return config, stages


def run_pipeline(path: str | Path, overwrite: bool = False, progress: bool = True, command: list[str] | None = None) -> list[Path]:
    """Run every stage in order; returns the dataset folders written."""
    path = Path(path)
    config, stages = load_pipeline(path)
    base = path.resolve().parent
    if not str(config.output).strip():
        raise CorpusError(f"{path}: output: empty; name a new folder")
    # before anything runs: an output inside a source (or holding one) would be read back by a rerun
    sources = [p for s in config.sources if s.crawl is None for p in s.paths(base)]
    try:
        output = check_output(base / config.output, sources)
    except CorpusError as e:
        raise CorpusError(f"{path}: output: {e}") from None
    with OutputLock(output):  # one pipeline run at a time on this output
        return _run_stages(path, config, stages, base, output, overwrite, progress, command)


def _run_stages(path: Path, config: PipelineConfig, stages: list, base: Path, output: Path, overwrite: bool,
                progress: bool, command: list[str] | None) -> list[Path]:  # fmt: skip
    written: list[Path] = []
    for i, ((kind, options), folder) in enumerate(zip(stages, stage_folders(config))):
        out = output / folder
        run = StageRun(kind=kind, index=i, options=options, out=out, name=f"{config.name}/{out.name}", written=list(written),
                       pipeline=config, pipeline_file=path, output=output, overwrite=overwrite, progress=progress,
                       command=command)  # fmt: skip
        done = stage(kind).run(run)
        if done is None:  # submitted to Slurm; later stages wait for a rerun
            say(f"{config.name}: stopping after {kind}; rerun when the submitted tasks finish")
            return written
        written.append(done)
    return written
