"""PDF text with PDFium (pypdfium2): one page at a time, into layout.Row lines, then cleaned.

PDFium gives the text layer in its own order with line breaks; for each line we ask only for the
boxes of its first and last characters and its font size, and for the box of the characters around
its spaces only when the line is wider than its characters explain (a table row, or two columns
written line by line), so the cost stays close to the plain text call.
"""

from __future__ import annotations

from bisect import bisect_right

from corpus.ingest.layout import Cell, Page, Row, clean_pages

_SOFT_HYPHENS = str.maketrans({"\x02": "\ufffe", "\u00ad": "\ufffe"})  # layout.LINE_END_HYPHEN


def _soft(text: str) -> str:
    return text.translate(_SOFT_HYPHENS) if ("\x02" in text or "\u00ad" in text) else text


class DocumentError(Exception):
    """A document that cannot be read: `reason` is the rejected row's reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class _Boxes:
    """PDFium's character and run boxes through its C functions with reused buffers: the
    wrappers' per-call objects cost more than the calls (tens of thousands a document)."""

    def __init__(self, textpage, raw):
        import ctypes

        self.page = textpage.raw
        self.raw = raw
        self.rect = raw.FS_RECTF()
        self.rect_ref = ctypes.byref(self.rect)
        self.d = [ctypes.c_double() for _ in range(4)]
        self.d_refs = [ctypes.byref(d) for d in self.d]

    def char(self, index: int) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of a character's font box."""
        self.raw.FPDFText_GetLooseCharBox(self.page, index, self.rect_ref)
        r = self.rect
        return r.left, r.bottom, r.right, r.top

    def run(self, index: int) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of text run `index` (after FPDFText_CountRects)."""
        l, t, r, b = self.d_refs
        self.raw.FPDFText_GetRect(self.page, index, l, t, r, b)
        return self.d[0].value, self.d[3].value, self.d[2].value, self.d[1].value


def _gap_splits(textpage, raw, boxes: _Boxes) -> dict[int, tuple[float, float]]:
    """Where a line has a gap wider than 1.5 times its height between two runs of text: the index
    of the first character after the gap -> (right edge before it, left edge after it).

    PDFium's text rectangles are runs of one text object on one line, so a table's cells, or the
    two columns of a page that PDFium read as one line, are separate rectangles with a gap between
    them; words inside a run never are.
    """
    n = raw.FPDFText_CountRects(textpage.raw, 0, -1)
    splits: dict[int, tuple[float, float]] = {}
    # runs come in text order: a gap is between two runs in a row on one line
    prev = boxes.run(0) if n else None
    for i in range(1, n):
        r = boxes.run(i)
        height = max(prev[3] - prev[1], 1.0)
        if r[0] - prev[2] > 1.5 * height and abs((r[1] + r[3]) - (prev[1] + prev[3])) < 0.8 * height:
            index = raw.FPDFText_GetCharIndexAtPos(textpage.raw, r[0] + 0.5, (r[1] + r[3]) / 2, 1.0, 1.0)
            if index >= 0:
                splits[index] = (prev[2], r[0])
        prev = r
    return splits


def _physical_lines(boxes: _Boxes, text: str, aligned: bool) -> list[tuple[int, str]]:
    """(index of its first character, line) for each line of the page. PDFium joins a word
    hyphenated at a line end into one line, the hyphen as U+FFFE (U+0002 in some versions); such a
    line is cut again after the hyphen when the word goes on lower down, so that each piece keeps
    its own position (on a two-column page the next line may be the other column's)."""
    out = []
    start = 0
    sep = "\r\n" if "\r\n" in text else "\n"
    for line in text.split(sep):
        begin = start
        start += len(line) + len(sep)
        if aligned and ("\ufffe" in line or "\x02" in line):
            piece = 0
            for k, ch in enumerate(line[:-1]):
                if ch in "\ufffe\x02":
                    here = boxes.char(begin + k)
                    after = boxes.char(begin + k + 1)
                    if abs(here[3] - after[3]) > 0.5 * max(here[3] - here[1], 1.0):
                        out.append((begin + piece, line[piece : k + 1]))
                        piece = k + 1
            out.append((begin + piece, line[piece:]))
        else:
            out.append((begin, line))
    return out


def _bold(textpage, raw, index: int) -> bool:
    weight = raw.FPDFText_GetFontWeight(textpage.raw, index)
    if weight > 0:
        return weight >= 600
    import ctypes  # no weight (a standard font without a descriptor): its name says it

    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    raw.FPDFText_GetFontInfo(textpage.raw, index, name, 128, ctypes.byref(flags))
    return any(w in name.value for w in (b"Bold", b"Black", b"Heavy", b"Semibold", b"Demi"))


def _page_rows(textpage, height: float, raw) -> list[Row]:
    text = textpage.get_text_range()
    count = textpage.count_chars()
    if not text.strip():
        return []
    aligned = len(text) == count  # char indices match the string (no surrogate pairs)
    boxes = _Boxes(textpage, raw)
    splits = _gap_splits(textpage, raw, boxes) if aligned else {}
    split_at = sorted(splits)
    rows: list[Row] = []
    for begin, line in _physical_lines(boxes, text, aligned):
        stripped = line.strip()
        if not stripped:
            continue
        if not aligned:
            rows.append(Row([Cell(stripped, 0.0, 0.0)], float(len(rows)) * 12, float(len(rows)) * 12 + 10, 10.0))
            continue
        first = begin + (len(line) - len(line.lstrip()))
        last = begin + len(line.rstrip()) - 1
        l0, b0, r0, t0 = boxes.char(first)
        l1, b1, r1, t1 = boxes.char(last)
        size = raw.FPDFText_GetFontSize(textpage.raw, first) or (t0 - b0)
        # PDFium joins a word hyphenated at a line end into one line, the hyphen as U+FFFE (or U+0002)
        top, end_top, bottom = height - t0, height - t1, height - min(b0, b1)
        cuts = split_at[bisect_right(split_at, first) : bisect_right(split_at, last)] if split_at else []
        if cuts:
            cells = []
            cell_start, cell_left = first, l0
            for k in cuts:
                right_before, left_after = splits[k]
                cells.append(Cell(_soft(text[cell_start:k].strip()), cell_left, right_before, _bold(textpage, raw, cell_start)))
                cell_start, cell_left = k, left_after
            cells.append(Cell(_soft(text[cell_start : last + 1].strip()), cell_left, r1, _bold(textpage, raw, cell_start)))
            cells = [c for c in cells if c.text]
        else:
            bold = len(stripped) <= 150 and _bold(textpage, raw, first) and _bold(textpage, raw, last)
            cells = [Cell(_soft(stripped), min(l0, l1), max(r0, r1), bold)]
        rows.append(Row(cells, top, bottom, size, end_top))
    return rows


def _empty_page_tree(path: str) -> bool:
    import re

    with open(path, "rb") as f:
        head = f.read(4 << 20)
    counts = re.findall(rb"/Count\s+(\d+)", head)
    return bool(counts) and all(int(c) == 0 for c in counts) and re.search(rb"/Type\s*/Pages\b", head) is not None


def read_pdf_pages(path: str, max_pages: int, max_chars: int) -> tuple[list[Page], dict]:
    """Rows of every page and the document's metadata; DocumentError for what cannot be read."""
    import pypdfium2 as pdfium
    from pypdfium2 import raw

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        message = str(e)
        if "password" in message.lower() or "security" in message.lower():
            raise DocumentError("encrypted", f"{path}: encrypted PDF (a password is needed): {message}") from None
        if _empty_page_tree(path):  # PDFium refuses to load an empty page tree, with no error code of its own
            raise DocumentError("no_pages", f"{path}: the PDF has no pages (no page tree PDFium can read)") from None
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
                try:
                    textpage = page.get_textpage()
                except pdfium.PdfiumError as e:
                    raise DocumentError("invalid_pdf", f"{path}: page {index + 1}: no text page: {e}") from None
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


def plain_pdf_pages(path: str) -> list[str]:
    """The library's own text of each page: the baseline of the benchmarks."""
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
        return out
    finally:
        pdf.close()


def plain_pdf_text(path: str) -> str:
    return "\n".join(plain_pdf_pages(path))