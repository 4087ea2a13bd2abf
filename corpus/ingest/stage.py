"""The `ingest` stage of a pipeline: the pipeline's sources (folders, files or crawls) into its first
dataset folder. `sources:` picks some of them by name; the limits are `corpus ingest`'s."""

from __future__ import annotations

from pydantic import BaseModel, ByteSize, ConfigDict, Field

from corpus.errors import CorpusError
from corpus.ingest.formats import IngestLimits
from corpus.stages import Stage, StageRun, declare


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


def _source_spec(source, run: StageRun) -> dict:
    """What ingest_job reads for one pipeline source; a `crawl:` source is crawled (or resumed) first."""
    if source.crawl is not None:
        from corpus.crawl import crawl_source

        return crawl_source(source.crawl, run.output / f"crawl-{source.source}", source.source, source.domain, run.overwrite, run.command)
    spec = {"paths": source.paths(run.base), "source": source.source, "domain": source.domain, "format": source.format,
            "text_key": source.text_key}  # fmt: skip
    if source.follow_symlinks:
        spec["follow_symlinks"] = True
    if source.split != "document":
        spec["split"] = source.split
    return spec


def run_ingest(run: StageRun):
    from corpus.ingest import ingest_job

    options = run.options
    unknown = sorted(set(options.sources or []) - {s.source for s in run.pipeline.sources})
    if unknown:
        raise CorpusError(f"{run.pipeline_file}: stage {run.index} ingest: unknown source {', '.join(unknown)}")
    sources = [_source_spec(s, run) for s in run.pipeline.sources if options.sources is None or s.source in options.sources]
    job = ingest_job(sources, run.name, html_timeout=options.html_timeout, progress=run.progress, limits=options.limits(),
                     document_timeout=options.document_timeout)  # fmt: skip
    return run.publish(job)


declare(Stage("ingest", IngestConfig, run_ingest, "read the pipeline's sources (files, folders, crawls) into a dataset folder"))
