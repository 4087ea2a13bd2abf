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

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from corpus.classify.train import ClassifierConfig
from corpus.crawl.config import CrawlConfig
from corpus.decontaminate import DecontaminateConfig
from corpus.dedup import DedupConfig
from corpus.errors import CorpusError
from corpus.execution import run_stage
from corpus.executors import ExecutorConfig
from corpus.filter.config import FilterConfig
from corpus.filter.length import LengthFilterConfig
from corpus.ingest import FORMATS, IngestLimits, ingest_job
from corpus.instruct import InstructConfig
from corpus.mix.stage import MixConfig
from corpus.outputs import OutputLock, check_output
from corpus.progress import say
from corpus.tokenize.stages import TokenizeStageConfig
from corpus.tokenize.train_tokenizer import TokenizerTrainConfig
from corpus.yaml_file import read_yaml
from train.base_model import BaseModelStageConfig
from train.stages import (
    AblateStageConfig,
    EvalStageConfig,
    PretrainStageConfig,
    SFTStageConfig,
)


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


class IngestConfig(_Strict):
    html_timeout: float = Field(30.0, gt=0, description="seconds allowed per HTML page")
    document_timeout: float = Field(300.0, gt=0, description="seconds allowed per PDF or DOCX file")
    max_pages: int = Field(IngestLimits.max_pages, gt=0, description="a PDF with more pages is rejected")
    sources: list[str] | None = Field(None, description="ingest only these sources (by name); default: all")
    max_record_bytes: ByteSize = Field(IngestLimits.max_record_bytes, gt=0, description="a longer line, file or WARC record is rejected")
    max_decompressed_bytes: ByteSize = Field(IngestLimits.max_decompressed_bytes, gt=0, description="out of one .gz/.zst file")
    max_decompressed_ratio: float = Field(IngestLimits.max_decompressed_ratio, gt=1, description="decompressed/compressed bytes of one file")

    def limits(self) -> IngestLimits:
        return IngestLimits(max_record_bytes=int(self.max_record_bytes), max_decompressed_bytes=int(self.max_decompressed_bytes),
                            max_decompressed_ratio=self.max_decompressed_ratio, max_pages=self.max_pages)  # fmt: skip


class ClassifierStageConfig(ClassifierConfig):
    """`corpus classifier train` in a pipeline: seeds are earlier stages (kind or folder name) or paths."""

    positive: list[str] = Field(min_length=1)
    negative: list[str] = Field(min_length=1)
    pool: list[str] = Field(default_factory=list)
    name: str | None = None


class ClassifyStageConfig(_Strict):
    """`corpus classify` in a pipeline. `model`: a classifier stage or folder (default: the latest
    classifier stage); `inputs`: earlier stages or dataset folders (default: the latest dataset)."""

    model: str | None = None
    inputs: list[str] = Field(default_factory=list)
    name: str | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    keep_top: float | None = Field(None, gt=0, le=1)
    score_only: bool = False


# Each stage entry is a one-key mapping {stage_name: options}; later stages add their models here.
STAGE_MODELS: dict[str, type[BaseModel]] = {"ingest": IngestConfig, "length_filter": LengthFilterConfig}
STAGE_MODELS["tokenizer"] = TokenizerTrainConfig
STAGE_MODELS["tokenize"] = TokenizeStageConfig
STAGE_MODELS["mix"] = MixConfig
STAGE_MODELS["filter"] = FilterConfig
STAGE_MODELS["instruct"] = InstructConfig
STAGE_MODELS["dedup"] = DedupConfig
STAGE_MODELS["decontaminate"] = DecontaminateConfig
STAGE_MODELS["base_model"] = BaseModelStageConfig
STAGE_MODELS["pretrain"] = PretrainStageConfig
STAGE_MODELS["sft"] = SFTStageConfig
STAGE_MODELS["eval"] = EvalStageConfig
STAGE_MODELS["ablate"] = AblateStageConfig
STAGE_MODELS["classifier"] = ClassifierStageConfig
STAGE_MODELS["classify"] = ClassifyStageConfig


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
                stages.append((kind, STAGE_MODELS[kind].model_validate(options or {})))
            except ValidationError as e:
                first = e.errors()[0]
                first_loc = ".".join(["stages", str(i), kind, *map(str, first["loc"])])
                msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
                raise CorpusError(f"{path}: {first_loc}: {msg}") from None
    except ValidationError as e:
        raise CorpusError(_format_error(path, e)) from None
    _check_folders(path, config)
    return config, stages


def _mix_stage_job(options, written, out, name, base, executor, overwrite, progress, path):
    """The mix stage reads the last dataset folder; its tokenizer is `tokenizer: PATH` or the
    output of a `tokenizer` stage before it."""
    from corpus.document import is_dataset
    from corpus.mix.stage import mix_job
    from corpus.tokenize.train_tokenizer import is_tokenizer_folder

    datasets = [p for p in written if is_dataset(p)]
    if not datasets:
        raise CorpusError(f"{path}: stage 'mix' needs a dataset stage before it")
    tokenizers = [p for p in written if is_tokenizer_folder(p)]
    if options.tokenizer is not None:
        options = options.model_copy(update={"tokenizer": str((base / options.tokenizer).resolve())})
    elif tokenizers:
        options = options.model_copy(update={"tokenizer": str(tokenizers[-1])})
    return mix_job([str(datasets[-1])], name, options, out, executor, overwrite=overwrite, replace_stale=True, progress=progress)


def earlier_or_path(ref: str, written: list[Path], base: Path) -> str:
    """An earlier stage's folder, by its folder name (`04-instruct`) or kind (`instruct`: the latest
    such), or else a path relative to the pipeline file."""
    found = [p for p in written if ref in (p.name, p.name.split("-", 1)[-1])]
    return str(found[-1]) if found else str((base / ref).resolve())


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
    from corpus.crawl import crawl_source
    from corpus.filter.length import length_filter_job

    written: list[Path] = []
    for i, ((kind, options), folder) in enumerate(zip(stages, stage_folders(config))):
        out = output / folder
        name = f"{config.name}/{out.name}"
        if kind == "ingest":
            unknown = sorted(set(options.sources or []) - {s.source for s in config.sources})
            if unknown:
                raise CorpusError(f"{path}: stage {i} ingest: unknown source {', '.join(unknown)}")
            sources = [
                {"paths": s.paths(base), "source": s.source, "domain": s.domain, "format": s.format, "text_key": s.text_key,
                 **({"follow_symlinks": True} if s.follow_symlinks else {}), **({"split": s.split} if s.split != "document" else {})}
                if s.crawl is None
                else crawl_source(s.crawl, output / f"crawl-{s.source}", s.source, s.domain, overwrite, command)
                for s in config.sources
                if options.sources is None or s.source in options.sources
            ]
            job = ingest_job(sources, name, html_timeout=options.html_timeout, progress=progress, limits=options.limits(),
                             document_timeout=options.document_timeout)  # fmt: skip
        elif kind == "length_filter":
            job = length_filter_job([str(written[-1])], name, options, progress=progress)
        elif kind == "mix":
            job = _mix_stage_job(options, written, out, name, base, config.executor, overwrite, progress, path)
        elif kind in ("tokenizer", "tokenize"):  # their outputs are not dataset folders: no run_stage
            from corpus.tokenize.stages import run_tokenize_stage

            done = run_tokenize_stage(kind, options, written, out, name, base, overwrite, command, str(path), config.executor)
            if done is None:  # submitted to Slurm; later stages wait for a rerun
                say(f"{config.name}: stopping after {kind}; rerun when the submitted tasks finish")
                return written
            written.append(done)
            continue
        elif kind in ("base_model", "pretrain", "sft", "eval", "ablate"):  # run folders, not dataset folders: no run_stage
            from train.stages import run_train_stage

            written.append(run_train_stage(kind, options, written, out, name, base, overwrite, command, str(path)))
            continue
        elif kind == "filter":
            from corpus.filter.stage import filter_job

            job = filter_job([str(written[-1])], name, options, progress=progress)
        elif kind == "instruct":  # reads the latest dataset folder (a tokenizer or shards folder is not one)
            from corpus.document import is_dataset
            from corpus.instruct import build_instructions

            source = next((p for p in reversed(written) if is_dataset(p)), None)
            if source is None:
                raise CorpusError(f"{path}: stage instruct needs a dataset folder before it")
            build_instructions([str(source)], out, options, overwrite=overwrite, command=command, name=name, replace_stale=True)
            written.append(out)
            continue
        elif kind == "dedup":
            from corpus.dedup import dedup_job

            options = options.model_copy(update={"against": [str((base / p).resolve()) for p in options.against]})
            job = dedup_job([str(written[-1])], name, options, progress=progress)
        elif kind == "decontaminate":  # the latest dataset folder, against eval files relative to the pipeline
            from corpus.decontaminate import decontaminate_job
            from corpus.document import is_dataset

            source = next((p for p in reversed(written) if is_dataset(p)), None)
            if source is None:
                raise CorpusError(f"{path}: stage decontaminate needs a dataset stage before it")
            options = options.model_copy(update={"against": [earlier_or_path(r, written, base) for r in options.against]})
            job = decontaminate_job([str(source)], name, options, progress=progress)
        elif kind == "classifier":  # a classifier folder, not a dataset folder: no run_stage
            from corpus.classify.stages import run_classifier_stage

            written.append(run_classifier_stage(options, written, out, name, base, overwrite, command, earlier_or_path))
            continue
        elif kind == "classify":
            from corpus.classify.stages import classify_stage_job

            job = classify_stage_job(options, written, name, base, path, earlier_or_path, progress)
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
