"""`corpus ingest`: read raw files of any supported format into a dataset folder."""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from datatrove.pipeline.base import PipelineStep

from corpus.document import records_to_table
from corpus.ingest.documents import extract_document
from corpus.ingest.formats import FORMATS, FileTask, IngestLimits, IngestPlan, detect_format, plan_ingest
from corpus.ingest.readers import DOCUMENT_FORMATS, READERS, ReadStats
from corpus.progress import task_progress
from corpus.stage_stats import write_task_stats

__all__ = ["FORMATS", "FileTask", "IngestLimits", "IngestPlan", "IngestReader", "detect_format", "plan_ingest"]

BATCH_ROWS = 1000


def extract_main_text(html: str) -> tuple[str, dict]:
    """Main text of an HTML page with trafilatura, plus the page's title, url and date.

    Repeated-segment deduplication is off: it caches across documents, which would make the
    output depend on the order documents happen to arrive in a task.
    """
    import trafilatura

    if not html.strip():  # also the sandbox's warm-up call
        return "", {}
    doc = trafilatura.bare_extraction(
        html,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        deduplicate=False,
        with_metadata=True,
    )
    if not doc:
        return "", {}
    extra = {k: doc.get(k) for k in ("title", "url", "date") if doc.get(k)}
    if doc.get("language"):
        extra["lang"] = doc["language"]
    return doc.get("text") or "", extra


class IngestReader(PipelineStep):
    """Reads this task's share of the planned files and yields working tables.

    Files are dealt out round-robin by rank over the sorted plan, so a task's output depends only
    on the plan, the rank and the task count.
    """

    name = "ingest"
    type = "reader"

    def __init__(self, files: list[FileTask], work_dir: str, html_timeout: float = 30.0, progress: bool = True,
                 document_timeout: float = 300.0):  # fmt: skip
        super().__init__()
        self.files = files
        self.work_dir = work_dir
        self.html_timeout = html_timeout
        self.document_timeout = document_timeout
        self.progress = progress

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:
        from datatrove.pipeline.extractors.base import ExtractorSandbox

        mine = self.files[rank::world_size]
        docs_in = 0
        stats = ReadStats()
        # a PDF or DOCX is read in a child process of its own too: a per-file timeout, and a crash
        # or an out-of-memory kill in PDFium ends that file only (started at the first such file)
        with ExtractorSandbox(timeout=self.html_timeout) as sandbox, ExtractorSandbox(timeout=self.document_timeout) as documents:

            def extract_html(html: str) -> tuple[str, dict]:
                return sandbox.process_document(html, extract_main_text)

            def extract_file(args: tuple) -> dict:
                return documents.process_document(args, extract_document)

            for task in task_progress(mine, "ingest", rank, enabled=self.progress):
                batch: list[dict] = []
                extractor = extract_file if task.format in DOCUMENT_FORMATS else extract_html
                for rec in READERS[task.format](task, stats, extractor):
                    batch.append(rec)
                    if len(batch) >= BATCH_ROWS:
                        docs_in += len(batch)
                        yield records_to_table(batch, task.source, task.domain)
                        batch = []
                if batch:
                    docs_in += len(batch)
                    yield records_to_table(batch, task.source, task.domain)
                self.stat_update("files")
        write_task_stats(
            self.work_dir,
            "reader",
            rank,
            {
                "files": len(mine),
                "docs_in": docs_in,
                "skipped_records": dict(stats.skipped_records),
                "warnings": stats.warnings,
            },
        )


def ingest_job(
    sources: list[dict], name: str, html_timeout: float = 30.0, progress: bool = True, limits: IngestLimits | None = None,
    document_timeout: float = 300.0,
):  # fmt: skip
    """A StageJob that ingests `sources`: dicts with paths, source, domain, format, text_key and
    optionally follow_symlinks and split (PDF/DOCX: document, page or section)."""
    from dataclasses import asdict
    from pathlib import Path

    from corpus.errors import CorpusError
    from corpus.execution import StageJob

    files: list[FileTask] = []
    skipped: list[dict] = []
    lineage: list[dict] = []
    for spec in sources:
        plan = plan_ingest(spec["paths"], spec["source"], spec["domain"], spec.get("format", "auto"), spec.get("text_key", "text"),
                           limits=limits, follow_symlinks=spec.get("follow_symlinks", False),
                           split=spec.get("split", "document"))  # fmt: skip
        files.extend(plan.files)
        skipped.extend(plan.skipped)
        lineage.append(
            {
                "kind": "files",
                "path": ", ".join(str(Path(p).resolve()) for p in spec["paths"]),
                "format": spec.get("format", "auto"),
                "source": spec["source"],
                "domain": spec["domain"],
                "files": len(plan.files),
                "bytes": sum(Path(f.path).stat().st_size for f in plan.files),
                "formats": dict(sorted(Counter(f.format for f in plan.files).items())),
            }
        )
    if not files:
        where = ", ".join(str(p) for spec in sources for p in spec["paths"])
        raise CorpusError(f"{where}: no readable files of a known format ({', '.join(FORMATS)})")
    config = {"sources": [{k: (list(map(str, v)) if k == "paths" else v) for k, v in s.items()} for s in sources],
              "html_extractor": "trafilatura (favor_precision, no comments, tables kept)",
              **({"document_extractor": "pypdfium2 text layer, unwrapped (corpus.ingest.layout); python-docx",
                  "document_timeout": document_timeout} if any(f.format in DOCUMENT_FORMATS for f in files) else {}),
              "limits": asdict(limits or IngestLimits())}  # fmt: skip

    def make_steps(out_dir: str, work_dir: str):
        return [IngestReader(files, work_dir, html_timeout=html_timeout, progress=progress, document_timeout=document_timeout)]

    return StageJob(
        stage="ingest",
        name=name,
        config=config,
        inputs=lineage,
        make_steps=make_steps,
        extra_card={"skipped_files": skipped} if skipped else {},
    )
