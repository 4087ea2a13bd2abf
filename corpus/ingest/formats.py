"""Which reader a path needs, and the list of files an ingest job will read."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

from corpus.errors import CorpusError

FORMATS = ("jsonl", "parquet", "warc", "txt", "md", "html")

_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl",
    ".jsonl.zst": "jsonl", ".jsonl.zstd": "jsonl", ".ndjson.zst": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".warc": "warc", ".warc.gz": "warc", ".wet": "warc", ".wet.gz": "warc", ".arc": "warc", ".arc.gz": "warc",
    ".txt": "txt", ".text": "txt", ".rst": "txt",
    ".md": "md", ".markdown": "md",
    ".html": "html", ".htm": "html", ".xhtml": "html",
}  # fmt: skip

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class FileTask:
    """One input file and how to read it."""

    path: str
    format: str
    source: str
    domain: str
    text_key: str = "text"


@dataclass
class IngestPlan:
    files: list[FileTask] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # files inside folders that hold no documents


def _suffix_format(path: Path) -> str | None:
    name = path.name.lower()
    # longest matching suffix wins (".jsonl.gz" before ".gz")
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    return None


def _sniff_format(path: Path) -> str | None:
    """Look at the first bytes (decompressed if gzip or zstd) when the name says nothing."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        if head[:2] == b"\x1f\x8b":
            try:
                with gzip.open(path, "rb") as f:
                    head = f.read(4096)
            except (OSError, EOFError):
                return None
        elif head[:4] == _ZSTD_MAGIC:
            import zstandard

            try:
                with open(path, "rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
                    head = r.read(4096)
            except zstandard.ZstdError:
                return None
    except OSError:
        return None
    if head.startswith(b"WARC/") or head.startswith(b"filedesc://"):
        return "warc"
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return "jsonl"
    lowered = stripped[:512].lower()
    if lowered.startswith(b"<!doctype html") or lowered.startswith(b"<html"):
        return "html"
    return None


def detect_format(path: Path) -> str | None:
    return _suffix_format(path) or _sniff_format(path)


def plan_ingest(
    paths: list[str | Path], source: str, domain: str, fmt: str = "auto", text_key: str = "text"
) -> IngestPlan:
    """Resolve paths (files or folders) to the files to read.

    A path that does not exist or cannot be read, or a named file of unknown format, is a
    CorpusError. Inside a folder, files of no known format are listed in `skipped` (they reach
    the card), hidden files and folders are ignored.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise CorpusError(f"unknown format {fmt!r}: choose one of auto, {', '.join(FORMATS)}")
    plan = IngestPlan()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CorpusError(f"{path}: no such file or folder")
        if not os.access(path, os.R_OK):
            raise CorpusError(f"{path}: permission denied")
        if path.is_dir():
            path = _documents_folder(path)
            for file in sorted(_walk(path)):
                file_fmt = fmt if fmt != "auto" else detect_format(file)
                if file_fmt is None:
                    plan.skipped.append({"path": str(file), "reason": "unknown_format"})
                elif not os.access(file, os.R_OK):
                    plan.skipped.append({"path": str(file), "reason": "unreadable"})
                else:
                    plan.files.append(FileTask(str(file), file_fmt, source, domain, text_key))
        else:
            file_fmt = fmt if fmt != "auto" else detect_format(path)
            if file_fmt is None:
                raise CorpusError(
                    f"{path}: unknown format (expected one of {', '.join(FORMATS)}; pass --format to choose)"
                )
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
            plan.files.append(FileTask(str(path), file_fmt, source, domain, text_key))
    return plan


def _documents_folder(folder: Path) -> Path:
    """A crawl output holds its pages in warc/; a dataset folder is read by stages, not ingested."""
    if (folder / "crawl_state.sqlite").exists() and (folder / "warc").is_dir():
        return folder / "warc"
    if (folder / "card.json").is_file() and (folder / "data").is_dir():
        raise CorpusError(f"{folder}: is a dataset folder already; give it to a stage (filter, dedup, ...) instead of ingest")
    return folder


def _walk(folder: Path):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith("."):
                yield Path(root) / name
