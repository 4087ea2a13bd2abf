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

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from corpus.dedup import DedupConfig
from corpus.errors import CorpusError
from corpus.execution import ExecutorConfig, run_stage
from corpus.filter.length import LengthFilterConfig
from corpus.ingest import FORMATS, ingest_job
from corpus.progress import say


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    path: str | list[str]
    source: str
    domain: str
    format: Literal["auto", *FORMATS] = "auto"
    text_key: str = "text"

    def paths(self, base: Path) -> list[str]:
        raw = [self.path] if isinstance(self.path, str) else self.path
        return [str((base / p).resolve()) for p in raw]


class IngestConfig(_Strict):
    html_timeout: float = Field(30.0, gt=0, description="seconds allowed per HTML page")


# Each stage entry is a one-key mapping {stage_name: options}; later stages add their models here.
STAGE_MODELS: dict[str, type[BaseModel]] = {"ingest": IngestConfig, "length_filter": LengthFilterConfig}
STAGE_MODELS["dedup"] = DedupConfig


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
            if kind not in STAGE_MODELS:
                raise ValueError(f"stage {i}: unknown stage {kind!r} (known: {', '.join(STAGE_MODELS)})")
        if next(iter(stages[0])) != "ingest":
            raise ValueError("the first stage must be 'ingest'")
        return stages


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{path}: {loc}: {msg}" + (f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else "")


def load_pipeline(path: str | Path) -> tuple[PipelineConfig, list[tuple[str, BaseModel]]]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such pipeline file") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CorpusError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(raw, dict):
        raise CorpusError(f"{path}: a pipeline is a YAML mapping with name, output, sources and stages")
    try:
        config = PipelineConfig.model_validate(raw)
        stages = []
        for i, entry in enumerate(config.stages):
            (kind, options) = next(iter(entry.items()))
            try:
                stages.append((kind, STAGE_MODELS[kind].model_validate(options or {})))
            except ValidationError as e:
                first = e.errors()[0]
                first_loc = ".".join(["stages", str(i), kind, *map(str, first["loc"])])
                msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
                raise CorpusError(f"{path}: {first_loc}: {msg}") from None
    except ValidationError as e:
        raise CorpusError(_format_error(path, e)) from None
    return config, stages


def run_pipeline(path: str | Path, overwrite: bool = False, progress: bool = True, command: list[str] | None = None) -> list[Path]:
    """Run every stage in order; returns the dataset folders written."""
    from corpus.filter.length import length_filter_job

    path = Path(path)
    config, stages = load_pipeline(path)
    base = path.resolve().parent
    output = (base / config.output).resolve()
    written: list[Path] = []
    for i, (kind, options) in enumerate(stages):
        out = output / f"{i:02d}-{kind}"
        name = f"{config.name}/{out.name}"
        if kind == "ingest":
            sources = [
                {"paths": s.paths(base), "source": s.source, "domain": s.domain, "format": s.format, "text_key": s.text_key}
                for s in config.sources
            ]
            job = ingest_job(sources, name, html_timeout=options.html_timeout, progress=progress)
        elif kind == "length_filter":
            job = length_filter_job([str(written[-1])], name, options, progress=progress)
        elif kind == "dedup":
            from corpus.dedup import dedup_job

            options = options.model_copy(update={"against": [str((base / p).resolve()) for p in options.against]})
            job = dedup_job([str(written[-1])], name, options, progress=progress)
        else:  # pragma: no cover - STAGE_MODELS and this dispatch grow together
            raise CorpusError(f"{path}: stage {kind!r} cannot run yet")
        card = run_stage(
            job, out, config.executor, overwrite=overwrite, command=command, pipeline_file=str(path), replace_stale=True
        )
        if card is None:  # submitted to Slurm; later stages wait for a rerun
            say(f"{config.name}: stopping after {kind}; rerun when the submitted tasks finish")
            return written
        written.append(out)
    return written
