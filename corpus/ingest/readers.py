"""One reader per format. Each yields record dicts (see corpus.document.records_to_table).

A bad record is yielded with a `reason` and a `detail` naming the file and the line or record,
so it lands in rejected/; the reader then goes on where the format allows it (JSONL lines), or
stops reading that file where it cannot find the next record (a broken gzip stream or WARC).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import stat
import zlib
from collections import Counter
from typing import Callable, Iterator

import orjson
import yaml

from corpus.document import bytes_id
from corpus.ingest.documents import read_document
from corpus.ingest.formats import FileTask, IngestLimits
from corpus.yaml_file import FRONT_MATTER_LIMITS, YamlLimitError, load_yaml

MAX_REJECTED_TEXT = 1 << 20  # keep at most 1 MiB of an undecodable record's bytes in rejected/
HtmlExtractor = Callable[[str], tuple[str, dict]]  # html -> (text, metadata); raises on failure


class ReadStats:
    """What a reader saw besides documents: record types it skipped, blank lines, warnings."""

    def __init__(self) -> None:
        self.skipped_records: Counter = Counter()
        self.warnings: list[str] = []


def rejected(reason: str, detail: str, raw: bytes | str = b"", **fields) -> dict:
    if isinstance(raw, bytes):
        raw_id = bytes_id(raw)
        text = raw[:MAX_REJECTED_TEXT].decode("utf-8", errors="replace")
    else:
        raw_id = None
        text = raw[:MAX_REJECTED_TEXT]
    rec = {"text": text, "reason": reason, "detail": detail, **fields}
    if raw_id and not text.strip():
        rec["id"] = raw_id
    return rec


def decode_text(raw: bytes, where: str) -> tuple[str | None, dict | None]:
    """UTF-8 decode, or a rejected record naming where the bad byte is."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, rejected("invalid_utf8", f"{where}: invalid UTF-8 at byte {e.start}", raw)


# ---------------------------------------------------------------- JSONL


class DecompressionLimit(Exception):
    """A compressed file gave more than its limits allow (IngestLimits)."""


class _Counted:
    """A binary file that counts the bytes read from it (the compressed side)."""

    def __init__(self, f):
        self.f = f
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:
        n = self.f.readinto(buffer)
        self.count += n or 0
        return n

    def close(self) -> None:
        self.f.close()

    def __getattr__(self, name):  # seekable(), tell(), closed, ... for the decompressors
        return getattr(self.f, name)


class _Bounded:
    """The decompressed side of a .gz/.zst file, stopped (DecompressionLimit) past the file's limits:
    more than max_decompressed_bytes out, or, once ratio_checked_after bytes are out, more than
    max_decompressed_ratio bytes out per byte in."""

    def __init__(self, stream, compressed: _Counted, limits: IngestLimits):
        self.stream = stream
        self.compressed = compressed
        self.limits = limits
        self.out = 0

    def read(self, n: int = -1) -> bytes:
        # gzip: read1, so the lines before a truncation still come out before its EOFError
        data = self.stream.read1(n) if isinstance(self.stream, gzip.GzipFile) else self.stream.read(n)
        self.out += len(data)
        self.check()
        return data

    def check(self) -> None:
        check_decompression(self.out, self.compressed.count, self.limits)

    def close(self) -> None:
        self.stream.close()
        self.compressed.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_decompression(out: int, compressed: int, limits: IngestLimits) -> None:
    """DecompressionLimit when `out` bytes decompressed from `compressed` bytes is past `limits`."""
    if out > limits.max_decompressed_bytes:
        raise DecompressionLimit(f"more than {limits.max_decompressed_bytes:,} bytes decompressed (--max-decompressed-bytes)")
    ratio = out / max(compressed, 1)
    if out > limits.ratio_checked_after and ratio > limits.max_decompressed_ratio:
        raise DecompressionLimit(
            f"{out:,} bytes decompressed from {compressed:,}: ratio {ratio:,.0f} is over "
            f"{limits.max_decompressed_ratio:g} (--max-decompressed-ratio)"
        )


def open_binary(path: str, limits: IngestLimits):
    """A file's bytes, decompressed if it is gzip or zstd (by magic, or a .zst name) within `limits`.
    Every compressed input is opened here."""
    lowered = path.lower()
    with open(path, "rb") as probe:
        magic = probe.read(4)
    if magic[:2] == b"\x1f\x8b":
        compressed = _Counted(open(path, "rb"))
        return _Bounded(gzip.GzipFile(fileobj=compressed, mode="rb"), compressed, limits)
    if magic == b"\x28\xb5\x2f\xfd" or lowered.endswith((".zst", ".zstd")):
        import zstandard

        compressed = _Counted(open(path, "rb"))
        return _Bounded(zstandard.ZstdDecompressor().stream_reader(compressed, closefd=False), compressed, limits)
    return open(path, "rb")


_JSONL_KNOWN = {"text", "id", "url", "lang", "language", "metadata", "source", "domain"}
_CHUNK = 1 << 20
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


def read_lines(f, max_bytes: int, on_blank: Callable[[int], None]) -> Iterator[tuple[int, bytes, int]]:
    """(line number, line, length) for every line of `f` that is not blank, read in 1 MiB chunks.

    A line longer than `max_bytes` is not kept: it comes as its first MAX_REJECTED_TEXT bytes and
    its full length, so memory stays bounded whatever the file holds. Blank lines are counted
    through `on_blank(n)`, runs of them at C speed (a gzip of newlines is a billion lines).
    """
    line_no = 1
    parts: list[bytes] = []
    size = 0  # bytes of the line being assembled; parts hold them unless it is already too long
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        pos, end = 0, len(chunk)
        while pos < end:
            if size == 0 and chunk[pos] <= 32:  # a line starting with whitespace: skip the blank lines ahead in one go
                found = _NOT_SPACE.search(chunk, pos)
                stop = found.start() if found else end
                blank = chunk.count(b"\n", pos, stop)
                if blank:
                    on_blank(blank)
                    line_no += blank
                    pos = chunk.rfind(b"\n", pos, stop) + 1
                    if pos >= end:
                        break
            newline = chunk.find(b"\n", pos)
            if size == 0 and 0 <= newline - pos <= max_bytes:  # the common case: a whole line in this chunk
                line = chunk[pos:newline]
                if (line and line[0] > 32) or line.strip():
                    yield line_no, line, newline - pos
                else:
                    on_blank(1)
                line_no += 1
                pos = newline + 1
                continue
            piece_end = end if newline < 0 else newline
            if size + piece_end - pos <= max_bytes:
                parts.append(chunk[pos:piece_end])
            elif size <= max_bytes:  # just went over: keep the head for the rejected row
                parts = [b"".join(parts)[:MAX_REJECTED_TEXT]]
                if len(parts[0]) < MAX_REJECTED_TEXT:
                    parts.append(chunk[pos : min(piece_end, pos + MAX_REJECTED_TEXT - len(parts[0]))])
            size += piece_end - pos
            if newline < 0:
                break
            line = parts[0] if len(parts) == 1 else b"".join(parts)
            if size > max_bytes or (line and line[0] > 32) or line.strip():
                yield line_no, line, size
            else:
                on_blank(1)
            line_no += 1
            parts, size = [], 0
            pos = newline + 1
    if size:
        line = b"".join(parts)
        if line.strip() or size > max_bytes:
            yield line_no, line, size
        else:
            on_blank(1)


def read_jsonl(task: FileTask, stats: ReadStats, extract_html: HtmlExtractor) -> Iterator[dict]:
    line_no = 0
    limit = task.limits.max_record_bytes

    def blank(n: int) -> None:
        stats.skipped_records["blank_line"] += n

    try:
        with open_binary(task.path, task.limits) as f:
            for line_no, raw, size in read_lines(f, limit, blank):
                where = f"{task.path}:{line_no}"
                if size > limit:
                    yield rejected("record_too_large", f"{where}: line of {size:,} bytes is longer than {limit:,} (--max-record-bytes)", raw)
                    continue
                yield _jsonl_record(raw, task, where)
    except DecompressionLimit as e:
        yield rejected("decompression_limit", f"{task.path}: {e}; the rest of the file is not read")
    except (EOFError, OSError, zlib.error) as e:
        yield rejected(
            "truncated_file",
            f"{task.path}: unreadable after line {line_no}: {_one_line(e)} (rest of the file lost)",
        )
    except Exception as e:  # zstandard.ZstdError and friends
        if type(e).__name__ != "ZstdError":
            raise
        yield rejected("truncated_file", f"{task.path}: unreadable after line {line_no}: {_one_line(e)}")


def _jsonl_record(raw: bytes, task: FileTask, where: str) -> dict:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        reason = "invalid_utf8" if "utf-8" in str(e).lower() else "invalid_json"
        return rejected(reason, f"{where}: {_one_line(e)}", raw)
    if not isinstance(obj, dict):
        return rejected("invalid_record", f"{where}: expected a JSON object, got {type(obj).__name__}", raw)
    key = task.text_key if task.text_key in obj else ("content" if "content" in obj else task.text_key)
    text = obj.get(key)
    if text is None:
        return rejected("missing_text", f"{where}: no {task.text_key!r} field", raw)
    if not isinstance(text, str):
        return rejected("invalid_text", f"{where}: {key!r} is {type(text).__name__}, not a string", raw)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    metadata = {**metadata, **{k: v for k, v in obj.items() if k not in _JSONL_KNOWN and k != key}}
    if "id" in obj:
        metadata["source_id"] = obj["id"]
    rec = {"text": text, "url": obj.get("url"), "lang": obj.get("lang") or obj.get("language"), "metadata": metadata}
    if not text.strip():
        rec.update(reason="empty_text", detail=f"{where}: empty text")
    return rec


# ---------------------------------------------------------------- Parquet


def read_parquet(task: FileTask, stats: ReadStats, extract_html: HtmlExtractor) -> Iterator[dict]:
    import pyarrow.parquet as pq

    row = 0
    try:
        pf = pq.ParquetFile(task.path)
        names = pf.schema_arrow.names
        key = task.text_key if task.text_key in names else ("content" if "content" in names else None)
        if key is None:
            yield rejected("missing_text", f"{task.path}: no {task.text_key!r} column (columns: {', '.join(names)})")
            return
        # Parquet pages are compressed too: the sizes its footer declares are checked against the
        # same limits before a page is read (a few KB of zstd can hold a 300 MB string)
        meta = pf.metadata
        out = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        try:
            check_decompression(out, os.path.getsize(task.path), task.limits)
        except DecompressionLimit as e:
            yield rejected("decompression_limit", f"{task.path}: {e}; the file is not read")
            return
        widest = max((meta.row_group(i).total_byte_size / max(meta.row_group(i).num_rows, 1)
                      for i in range(meta.num_row_groups)), default=0)  # fmt: skip
        if widest > task.limits.max_record_bytes:
            yield rejected("record_too_large", f"{task.path}: rows of {widest:,.0f} bytes on average, longer than "
                                               f"{task.limits.max_record_bytes:,} (--max-record-bytes); the file is not read")  # fmt: skip
            return
        rows_per_batch = int(max(1, min(2048, (32 << 20) // max(widest, 1))))  # about 32 MB a batch
        for batch in pf.iter_batches(batch_size=rows_per_batch):
            for obj in batch.to_pylist():
                row += 1
                where = f"{task.path}#row {row}"
                text = obj.pop(key)
                if not isinstance(text, str):
                    yield rejected("invalid_text", f"{where}: {key!r} is {type(text).__name__}, not a string")
                    continue
                if len(text) > task.limits.max_record_bytes // 4 and len(text.encode("utf-8", "surrogatepass")) > task.limits.max_record_bytes:
                    yield rejected("record_too_large", f"{where}: text longer than {task.limits.max_record_bytes:,} bytes (--max-record-bytes)",
                                   text[:MAX_REJECTED_TEXT])  # fmt: skip
                    continue
                metadata = obj.pop("metadata", None)
                metadata = metadata if isinstance(metadata, dict) else {}
                if "id" in obj:
                    metadata["source_id"] = obj.pop("id")
                url, lang = obj.pop("url", None), obj.pop("lang", None)
                for drop in ("source", "domain"):
                    obj.pop(drop, None)
                metadata.update(obj)
                rec = {"text": text, "url": url, "lang": lang, "metadata": metadata}
                if not text.strip():
                    rec.update(reason="empty_text", detail=f"{where}: empty text")
                yield rec
    except (OSError, ValueError) as e:  # pyarrow.ArrowInvalid is a ValueError
        yield rejected("unreadable_file", f"{task.path}: unreadable after row {row}: {_one_line(e)}")


# ---------------------------------------------------------------- plain text, Markdown, HTML files


def still_a_file(task: FileTask, metadata: dict | None = None) -> tuple[os.stat_result | None, dict | None]:
    """(its stat, None), or (None, a rejected row) when the file has gone, cannot be read or stopped
    being a regular file since it was planned (opening a FIFO would wait for a writer)."""
    fields = {} if metadata is None else {"metadata": metadata}
    try:
        info = os.stat(task.path)
    except OSError as e:
        return None, rejected("unreadable_file", f"{task.path}: {e.strerror or _one_line(e)}", **fields)
    if not stat.S_ISREG(info.st_mode):
        return None, rejected("unreadable_file", f"{task.path}: not a regular file", **fields)
    return info, None


def read_file_bytes(task: FileTask) -> tuple[bytes | None, dict | None]:
    """A txt/md/html file's bytes, or a rejected row when it is longer than max_record_bytes (not
    read then) or has stopped being a readable regular file since it was planned."""
    limit = task.limits.max_record_bytes
    info, bad = still_a_file(task)
    if bad:
        return None, bad
    if info.st_size <= limit:
        with open(task.path, "rb") as f:
            raw = f.read(limit + 1)
        if len(raw) <= limit:
            return raw, None
    size = max(info.st_size, limit + 1)
    return None, rejected("record_too_large", f"{task.path}: file of {size:,} bytes is longer than {limit:,} (--max-record-bytes)")


def read_txt(task: FileTask, stats: ReadStats, extract_html: HtmlExtractor) -> Iterator[dict]:
    raw, bad = read_file_bytes(task)
    if bad:
        yield bad
        return
    text, bad = decode_text(raw, task.path)
    if bad:
        yield bad
        return
    yield _file_record(text, task.path, {"path": task.path})


def read_md(task: FileTask, stats: ReadStats, extract_html: HtmlExtractor) -> Iterator[dict]:
    raw, bad = read_file_bytes(task)
    if bad:
        yield bad
        return
    text, bad = decode_text(raw, task.path)
    if bad:
        yield bad
        return
    front, body, error = split_front_matter(text)
    if error:
        yield rejected("invalid_front_matter", f"{task.path}: {error}", text)
        return
    metadata = {"path": task.path, **front}
    url = front.get("url") or front.get("permalink")
    lang = front.get("lang") or front.get("language")
    rec = _file_record(body, task.path, metadata)
    rec.update(url=str(url) if url else None, lang=str(lang) if lang else None)
    yield rec


def split_front_matter(text: str) -> tuple[dict, str, str | None]:
    """YAML front matter between a leading '---' line and the next '---' line."""
    if not text.startswith("---"):
        return {}, text, None
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return {}, text, None
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, text, "front matter opened with '---' is never closed"
    try:
        front = load_yaml("\n".join(lines[1:end]), FRONT_MATTER_LIMITS) or {}
    except YamlLimitError as e:  # the front matter starts on the file's line 2
        where = f"line {e.line + 1}: " if e.line else ""
        return {}, text, f"{where}front matter past a limit: {e.problem}"
    except yaml.YAMLError as e:
        return {}, text, f"front matter is not valid YAML: {_one_line(e)}"
    if not isinstance(front, dict):
        return {}, text, "front matter is not a mapping"
    return front, "\n".join(lines[end + 1 :]).strip("\n"), None


def read_html(task: FileTask, stats: ReadStats, extract_html: HtmlExtractor) -> Iterator[dict]:
    raw, bad = read_file_bytes(task)
    if bad:
        yield bad
        return
    html = raw.decode("utf-8", errors="replace")
    yield _html_record(html, task.path, {"path": task.path}, None, extract_html)


def _file_record(text: str, where: str, metadata: dict) -> dict:
    rec = {"text": text, "metadata": metadata}
    if not text.strip():
        rec.update(reason="empty_text", detail=f"{where}: empty text")
    return rec


def _html_record(html: str, where: str, metadata: dict, url: str | None, extract_html: HtmlExtractor) -> dict:
    try:
        text, extra = extract_html(html)
    except TimeoutError:
        return rejected("extraction_timeout", f"{where}: HTML extraction timed out", html, url=url, metadata=metadata)
    except Exception as e:
        return rejected("extraction_error", f"{where}: {_one_line(e)}", html, url=url, metadata=metadata)
    if not text or not text.strip():
        return rejected("empty_extraction", f"{where}: no main text found in the HTML", html, url=url, metadata=metadata)
    lang = extra.pop("lang", None)
    return {"text": text, "url": url or extra.pop("url", None), "lang": lang, "metadata": {**metadata, **extra}}


# ---------------------------------------------------------------- WARC / WET / ARC

_DOCUMENT_RECORDS = {"response", "resource", "conversion"}
_TEXT_TYPES = ("text/plain",)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def read_warc(task: FileTask, stats: ReadStats, extract_html: HtmlExtractor) -> Iterator[dict]:
    from warcio.archiveiterator import ArchiveIterator

    index = 0
    warnings = io.StringIO()
    limit = task.limits.max_record_bytes
    with open(task.path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        with open(task.path, "rb") as raw_file, contextlib.redirect_stderr(warnings):
            # warcio decompresses the gzip members itself: the limits are checked between records,
            # on the bytes the records declare against the compressed bytes read so far
            f = _Counted(raw_file)
            records = ArchiveIterator(f, arc2warc=True)
            declared = 0
            for index, record in enumerate(records, start=1):
                declared += int(record.length or 0)
                if gzipped:
                    check_decompression(declared, f.count, task.limits)
                if record.rec_type not in _DOCUMENT_RECORDS:
                    stats.skipped_records[f"warc_{record.rec_type}"] += 1
                    continue
                payload = _read_up_to(record.content_stream(), limit + 1)  # the rest is skipped, not kept
                # after the read: get_record_offset() reads the record to its end
                where = f"{task.path}#record {index} (offset {records.get_record_offset()})"
                if len(payload) > limit:
                    yield rejected(
                        "record_too_large", f"{where}: payload longer than {limit:,} bytes (--max-record-bytes)",
                        payload[:MAX_REJECTED_TEXT], url=record.rec_headers.get_header("WARC-Target-URI"),
                    )  # fmt: skip
                    continue
                missing = record.raw_stream.limit  # bytes promised by Content-Length that never came
                yield _warc_record(record, payload, missing, task, where, extract_html)
    except DecompressionLimit as e:
        yield rejected("decompression_limit", f"{task.path}: at record {index}: {e}; the rest of the file is not read")
    except Exception as e:  # warcio raises ArchiveLoadFailed, zlib errors, EOFError, ValueError...
        yield rejected(
            "warc_parse_error",
            f"{task.path}: record {index + 1} cannot be parsed: {_one_line(e)} (rest of the file lost)",
        )
    for line in warnings.getvalue().splitlines():
        if line.strip():
            stats.warnings.append(f"{task.path}: {line.strip()}")


def _read_up_to(stream, n: int) -> bytes:
    """Up to n bytes: warcio's streams return a buffer's worth per read."""
    parts, size = [], 0
    while size < n:
        data = stream.read(min(n - size, _CHUNK))
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def _warc_record(record, payload: bytes, missing: int, task: FileTask, where: str, extract_html: HtmlExtractor) -> dict:
    url = record.rec_headers.get_header("WARC-Target-URI")
    metadata = {
        "warc_record_id": record.rec_headers.get_header("WARC-Record-ID"),
        "warc_date": record.rec_headers.get_header("WARC-Date"),
        "warc_type": record.rec_type,
        "path": task.path,
    }
    status = record.http_headers.get_statuscode() if record.http_headers else None
    if record.http_headers is not None and record.rec_type == "response":
        content_type = record.http_headers.get_header("Content-Type") or ""
    else:
        content_type = record.rec_headers.get_header("Content-Type") or ""
    metadata["content_type"] = content_type
    if missing:
        return rejected("truncated_record", f"{where}: {missing} bytes missing", payload, url=url, metadata=metadata)
    if status and not str(status).startswith("2"):
        return rejected("http_status", f"{where}: HTTP {status}", payload, url=url, metadata=metadata)
    media_type = content_type.split(";")[0].strip().lower()
    if record.rec_type == "conversion" or media_type in _TEXT_TYPES:
        text, bad = decode_text(payload, where)
        if bad:
            bad.update(url=url, metadata=metadata)
            return bad
        rec = _file_record(text, where, metadata)
        rec["url"] = url
        return rec
    if media_type in _HTML_TYPES or (not media_type and payload.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))):
        # the HTTP header first, else what the crawler detected (corpus crawl writes this WARC header)
        charset = _charset(content_type) or record.rec_headers.get_header("WARC-Identified-Content-Charset")
        try:
            html = payload.decode(charset or "utf-8", errors="replace")
        except LookupError:
            html = payload.decode("utf-8", errors="replace")
        return _html_record(html, where, metadata, url, extract_html)
    return rejected(
        "unsupported_content_type", f"{where}: content type {media_type or 'unknown'!r}", b"", url=url, metadata=metadata
    )


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


READERS = {"jsonl": read_jsonl, "parquet": read_parquet, "warc": read_warc, "txt": read_txt, "md": read_md, "html": read_html,
           "pdf": read_document, "docx": read_document}  # fmt: skip
DOCUMENT_FORMATS = ("pdf", "docx")  # read through the document extractor, not the HTML one
