"""PDF and DOCX files into records: extraction in a child process with a per-file timeout, then
one document per file, per page or per section (`split`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from corpus.ingest.formats import FileTask

DocumentExtractor = Callable[[tuple], dict]  # (path, format, max_pages, max_bytes) -> extract_document's dict


def extract_document(path: str = "", fmt: str = "pdf", max_pages: int = 0, max_bytes: int = 0) -> dict | None:
    """Runs in the extractor's child process: {"pages": [[block, ...] per page], ...} for a PDF,
    {"pages": [[block, ...]]} for a DOCX (one page), or {"error": reason, "detail": message}."""
    if not path:  # the sandbox's warm-up call
        return None
    from corpus.ingest.pdf import DocumentError

    try:
        if fmt == "pdf":
            from corpus.ingest.pdf import extract_pdf

            return extract_pdf(path, max_pages, max_bytes)
        from corpus.ingest.docx import extract_docx

        result = extract_docx(path, max_bytes)
        result["pages"] = [result.pop("blocks")]
        return result
    except DocumentError as e:
        return {"error": e.reason, "detail": str(e)}
    except Exception as e:  # a library error on a file we did not foresee: that file's row, not a dead child
        from corpus.ingest.readers import _one_line

        return {"error": "extraction_error", "detail": f"{path}: {type(e).__name__}: {_one_line(e)}"}


def read_document(task: FileTask, stats, extract: DocumentExtractor) -> Iterator[dict]:
    from corpus.ingest.readers import _one_line, rejected, still_a_file

    metadata = {"path": task.path, "format": task.format}
    _, bad = still_a_file(task, metadata)
    if bad:
        yield bad
        return
    try:
        result = extract((task.path, task.format, task.limits.max_pages, task.limits.max_record_bytes))
    except TimeoutError:
        yield rejected("extraction_timeout", f"{task.path}: {task.format.upper()} extraction timed out (--document-timeout)", metadata=metadata)
        return
    except EOFError:
        yield rejected("extraction_error", f"{task.path}: the extracting process died (out of memory?)", metadata=metadata)
        return
    except Exception as e:
        yield rejected("extraction_error", f"{task.path}: {_one_line(e)}", metadata=metadata)
        return
    if result.get("error"):
        yield rejected(result["error"], result["detail"], metadata=metadata)
        return
    pages = result["pages"]
    first_heading = next((t for page in pages for kind, t in page if kind == "heading"), None)
    metadata["title"] = result.get("title") or first_heading
    if result.get("author"):
        metadata["author"] = result["author"]
    if task.format == "pdf":
        metadata["page_count"] = result["page_count"]
        metadata["header_footer_lines_removed"] = result["removed_lines"]
    if task.split == "page" and task.format == "pdf":
        for number, blocks in enumerate(pages, start=1):
            if not blocks:
                stats.skipped_records["empty_page"] += 1
                continue
            yield _record(blocks, f"{task.path}#page {number}", {**metadata, "page": number})
        return
    if task.split == "section":
        sections: list[tuple[int, list]] = [(1, [])]
        for number, blocks in enumerate(pages, start=1):
            for block in blocks:
                if block[0] == "heading" and sections[-1][1]:
                    sections.append((number, []))
                sections[-1][1].append(block)
        for index, (page, blocks) in enumerate(sections, start=1):
            heading = blocks[0][1] if blocks and blocks[0][0] == "heading" else None
            extra = {"section": index, "section_title": heading, **({"page": page} if task.format == "pdf" else {})}
            yield _record(blocks, f"{task.path}#section {index}", {**metadata, **extra})
        return
    text_parts, starts, offset = [], [], 0
    for blocks in pages:
        page_text = "\n\n".join(t for _, t in blocks)
        starts.append(offset)
        if page_text:
            text_parts.append(page_text)
            offset += len(page_text) + 2
    if task.format == "pdf":
        metadata["page_starts"] = starts
    yield _record_text("\n\n".join(text_parts), task.path, metadata)


def _record(blocks: list, where: str, metadata: dict) -> dict:
    return _record_text("\n\n".join(t for _, t in blocks), where, metadata)


def _record_text(text: str, where: str, metadata: dict) -> dict:
    rec = {"text": text, "metadata": metadata}
    if not text.strip():
        rec.update(reason="empty_text", detail=f"{where}: no text")
    return rec
