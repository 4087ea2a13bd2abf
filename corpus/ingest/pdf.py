"""PDF text with PDFium (pypdfium2): one page at a time, into layout.Row lines, then cleaned.

PDFium gives the text layer in its own order with line breaks; for each line we ask only for the
boxes of its first and last characters and its font size, and for the box of the characters around
its spaces only when the line is wider than its characters explain (a table row, or two columns
written line by line), so the cost stays close to the plain text call.
"""

from __future__ import annotations

from corpus.ingest.layout import Cell, Page, Row, clean_pages


_SOFT_HYPHENS = str.maketrans({"\x02": "\ufffe", "\u00ad": "\ufffe"})  # layout.LINE_END_HYPHEN


def last_index(line: str, begin: int) -> int:
    return begin + len(line.rstrip()) - 1


class DocumentError(Exception):
    """A document that cannot be read: `reason` is the rejected row's reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _page_rows(textpage, height: float, raw) -> list[Row]:
    text = textpage.get_text_range()
    count = textpage.count_chars()
    if not text.strip():
        return []
    aligned = len(text) == count  # char indices match the string (no surrogate pairs)
    rows: list[Row] = []
    start = 0
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    widths = []
    pending = []
    for line in lines:
        begin = start
        start += len(line) + 2
        stripped = line.strip()
        if not stripped:
            continue
        if not aligned:
            rows.append(Row([Cell(stripped, 0.0, 0.0)], float(len(rows)) * 12, float(len(rows)) * 12 + 10, 10.0))
            continue
        first = begin + (len(line) - len(line.lstrip()))
        last = begin + len(line.rstrip()) - 1
        l0, b0, r0, t0 = textpage.get_charbox(first, loose=True)
        l1, b1, r1, t1 = textpage.get_charbox(last, loose=True)
        size = raw.FPDFText_GetFontSize(textpage.raw, first) or (t0 - b0)
        x0, x1 = min(l0, l1), max(r0, r1)
        # PDFium joins a word hyphenated at a line end into one line, the hyphen as U+FFFE (or U+0002)
        pending.append((line, begin, stripped, x0, x1, height - t0, height - min(b0, b1), size, height - t1))
        if len(stripped) >= 10 and size > 0:
            widths.append((x1 - x0) / (len(stripped) * size))
    typical = sorted(widths)[len(widths) // 2] if widths else 0.5
    for line, begin, stripped, x0, x1, top, bottom, size, end_top in pending:
        cells = None
        joined = end_top - top > 0.5 * size
        if not joined and " " in stripped and size > 0 and (x1 - x0) / (len(stripped) * size) > 1.3 * typical:
            cells = _cells(textpage, line, begin, size)
        if cells:
            for c in cells:
                c.text = c.text.translate(_SOFT_HYPHENS)
        else:
            x0 = min(x0, textpage.get_charbox(last_index(line, begin), loose=True)[0]) if joined else x0
            cells = [Cell(stripped.translate(_SOFT_HYPHENS), x0, x1)]
        rows.append(Row(cells, top, bottom, size, end_top))
    return rows


def _cells(textpage, line: str, begin: int, size: float) -> list[Cell] | None:
    """The line cut at gaps wider than 1.5 em: cells of a table row, or the two halves of a line
    that runs across two columns."""
    cells: list[Cell] = []
    pos = len(line) - len(line.lstrip())
    cell_start = pos
    prev_right = textpage.get_charbox(begin + pos, loose=True)[0]
    cell_left = prev_right
    i = pos
    n = len(line.rstrip())
    while i < n:
        if line[i] == " ":
            j = i
            while j < n and line[j] == " ":
                j += 1
            right_of_prev = textpage.get_charbox(begin + i - 1, loose=True)[2]
            left_of_next = textpage.get_charbox(begin + j, loose=True)[0]
            if left_of_next - right_of_prev > 1.5 * size:
                cells.append(Cell(line[cell_start:i].strip(), cell_left, right_of_prev))
                cell_start, cell_left = j, left_of_next
            i = j
        else:
            i += 1
    if not cells:
        return None
    end_right = textpage.get_charbox(begin + n - 1, loose=True)[2]
    cells.append(Cell(line[cell_start:n].strip(), cell_left, end_right))
    return [c for c in cells if c.text]


def read_pdf_pages(path: str, max_pages: int, max_chars: int) -> tuple[list[Page], dict]:
    """Rows of every page and the document's metadata; DocumentError for what cannot be read."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        message = str(e)
        if "password" in message.lower() or "security" in message.lower():
            raise DocumentError("encrypted", f"{path}: encrypted PDF (a password is needed): {message}") from None
        raise DocumentError("invalid_pdf", f"{path}: not a readable PDF: {message}") from None
    try:
        n_pages = len(pdf)
        if n_pages == 0:
            raise DocumentError("no_pages", f"{path}: the PDF has no pages")
        if n_pages > max_pages:
            raise DocumentError("too_many_pages", f"{path}: {n_pages:,} pages, more than {max_pages:,} (--max-pages)")
        meta = {k: v for k, v in pdf.get_metadata_dict(skip_empty=True).items() if k in ("Title", "Author", "Subject")}
        pages: list[Page] = []
        chars = 0
        for index in range(n_pages):
            try:
                page = pdf[index]
            except pdfium.PdfiumError as e:
                raise DocumentError("invalid_pdf", f"{path}: page {index + 1}: {e}") from None
            try:
                width, height = page.get_size()
                textpage = page.get_textpage()
                try:
                    rows = _page_rows(textpage, height, raw)
                finally:
                    textpage.close()
            finally:
                page.close()
            chars += sum(len(r.text) for r in rows)
            if chars > max_chars:
                raise DocumentError("record_too_large", f"{path}: page {index + 1}: text longer than {max_chars:,} characters (--max-record-bytes)")
            pages.append(Page(rows, width, height))
    finally:
        pdf.close()
    if not any(p.rows for p in pages):
        raise DocumentError("no_text_layer", f"{path}: none of its {n_pages} pages has a text layer (scanned? OCR is not done)")
    return pages, meta


def extract_pdf(path: str, max_pages: int, max_chars: int) -> dict:
    pages, meta = read_pdf_pages(path, max_pages, max_chars)
    texts = clean_pages(pages)
    return {
        "pages": texts,
        "title": meta.get("Title"),
        "author": meta.get("Author"),
        "page_count": len(pages),
        "removed_lines": sum(len(p.removed) for p in pages),
    }


def plain_pdf_text(path: str) -> str:
    """The library's own text, page after page: the baseline of the benchmarks."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        out = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            out.append(textpage.get_text_range().replace("\r\n", "\n"))
            textpage.close()
            page.close()
        return "\n".join(out)
    finally:
        pdf.close()
