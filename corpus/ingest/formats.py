"""Which reader a path needs, and the list of files an ingest job will read."""

from __future__ import annotations

import gzip
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corpus.errors import CorpusError

FORMATS = ("jsonl", "parquet", "warc", "txt", "md", "html", "pdf", "docx")
SPLITS = ("document", "page", "section")  # how a PDF or DOCX file is cut into documents

_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl", ".ndjson.gz": "jsonl",
    ".jsonl.zst": "jsonl", ".jsonl.zstd": "jsonl", ".ndjson.zst": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".warc": "warc", ".warc.gz": "warc", ".wet": "warc", ".wet.gz": "warc", ".arc": "warc", ".arc.gz": "warc",
    ".txt": "txt", ".text": "txt", ".rst": "txt",
    ".md": "md", ".markdown": "md",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf", ".docx": "docx",
}  # fmt: skip

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


MiB = 1 << 20


@dataclass(frozen=True)
class IngestLimits:
    """How much one input may make a reader hold or read (docs/ingest.md, "Limits")."""

    max_record_bytes: int = 64 * MiB  # a JSONL line, a txt/md/html file, a WARC record's payload
    max_decompressed_bytes: int = 32 << 30  # out of one .gz/.zst file
    max_decompressed_ratio: float = 100.0  # decompressed / compressed bytes of one file ...
    ratio_checked_after: int = 64 * MiB  # ... once this much has come out of it
    max_pages: int = 5000  # pages of one PDF


@dataclass(frozen=True)
class FileTask:
    """One input file and how to read it."""

    path: str
    format: str
    source: str
    domain: str
    text_key: str = "text"
    limits: IngestLimits = IngestLimits()
    split: str = "document"  # PDF and DOCX: one document per file, page or section


@dataclass
class IngestPlan:
    files: list[FileTask] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # files inside folders that are not read, with the reason


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
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") and _is_docx(path):
        return "docx"
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


def _is_docx(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return "word/document.xml" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def detect_format(path: Path) -> str | None:
    return _suffix_format(path) or _sniff_format(path)


def plan_ingest(
    paths: list[str | Path],
    source: str,
    domain: str,
    fmt: str = "auto",
    text_key: str = "text",
    limits: IngestLimits | None = None,
    follow_symlinks: bool = False,
    split: str = "document",
) -> IngestPlan:
    """Resolve paths (files or folders) to the files to read.

    A path that does not exist or cannot be read, is not a regular file or folder (a device, a
    FIFO, a socket), or a named file of unknown format, is a CorpusError. Inside a folder, files
    of no known format, files that are not regular, and symlinks that lead outside the folder
    (unless `follow_symlinks`) are listed in `skipped` (they reach the card); hidden files and
    folders are ignored.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise CorpusError(f"unknown format {fmt!r}: choose one of auto, {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    limits = limits or IngestLimits()
    plan = IngestPlan()
    for raw in paths:
        path = Path(raw)
        try:
            info = os.stat(path)  # never open before this: opening a FIFO waits for a writer
        except FileNotFoundError:
            raise CorpusError(f"{path}: no such file or folder") from None
        except OSError as e:
            raise CorpusError(f"{path}: cannot read: {e.strerror}") from None
        if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
            raise CorpusError(f"{path}: not a regular file or folder ({_kind(info.st_mode)})")
        if not os.access(path, os.R_OK):
            raise CorpusError(f"{path}: permission denied")
        if stat.S_ISDIR(info.st_mode):
            path = _documents_folder(path)
            found: list[Path] = []
            skipped: list[dict] = []
            _walk(path, follow_symlinks, found, skipped)
            for file in sorted(found):
                file_fmt = fmt if fmt != "auto" else detect_format(file)
                if file_fmt is None:
                    skipped.append({"path": str(file), "reason": "unknown_format"})
                elif not os.access(file, os.R_OK):
                    skipped.append({"path": str(file), "reason": "unreadable"})
                else:
                    plan.files.append(FileTask(str(file), file_fmt, source, domain, text_key, limits, split))
            plan.skipped.extend(sorted(skipped, key=lambda s: s["path"]))
            _warn_symlinks_outside(path, skipped)
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
            plan.files.append(FileTask(str(path), file_fmt, source, domain, text_key, limits, split))
    return plan


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _walk(folder: Path, follow_symlinks: bool, found: list[Path], skipped: list[dict]) -> None:
    """Regular files under `folder` into `found`; anything else worth saying into `skipped`.

    A symlink whose real path is outside `folder` is skipped unless `follow_symlinks`; a folder
    is entered once by its real path, so a symlink loop (or two links to one folder) ends there.
    """
    root = os.path.realpath(folder)
    entered = {root}
    stack = [(folder, root)]
    while stack:
        current, current_real = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as e:
            skipped.append({"path": str(current), "reason": "unreadable", "detail": e.strerror})
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            link = entry.is_symlink()
            real = os.path.realpath(entry.path) if link else os.path.join(current_real, entry.name)
            if link and not follow_symlinks and not _inside(real, root):
                skipped.append({"path": str(path), "reason": "symlink_outside", "target": real})
                continue
            try:
                info = entry.stat()  # follows a link; never opens anything
            except OSError as e:
                skipped.append({"path": str(path), "reason": "unreadable", "detail": e.strerror})
                continue
            if stat.S_ISDIR(info.st_mode):
                if real in entered or _inside(current_real, real):
                    reason = "symlink_loop" if _inside(current_real, real) else "folder_already_read"
                    skipped.append({"path": str(path), "reason": reason, "target": real})
                    continue
                entered.add(real)
                stack.append((path, real))
            elif stat.S_ISREG(info.st_mode):
                found.append(path)
            else:
                skipped.append({"path": str(path), "reason": "not_a_regular_file", "detail": _kind(info.st_mode)})


def _warn_symlinks_outside(folder: Path, skipped: list[dict]) -> None:
    outside = [s for s in skipped if s["reason"] == "symlink_outside"]
    if outside:
        first = outside[0]
        more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
        print(
            f"corpus: warning: {folder}: not read: {first['path']} -> {first['target']}{more}, symlinks that lead "
            "outside the folder (listed in the card's skipped_files; --follow-symlinks reads them)",
            file=sys.stderr,
        )


def _documents_folder(folder: Path) -> Path:
    """A crawl output holds its pages in warc/; a dataset folder is read by stages, not ingested."""
    if (folder / "crawl_state.sqlite").exists() and (folder / "warc").is_dir():
        return folder / "warc"
    if (folder / "card.json").is_file() and (folder / "data").is_dir():
        raise CorpusError(f"{folder}: is a dataset folder already; give it to a stage (filter, dedup, ...) instead of ingest")
    return folder
