"""Clean text from positioned lines: the part of PDF reading that does not depend on the library.

A page arrives as `Row`s (a line of the PDF's text layer, cut into cells where it has wide gaps,
with its position). `clean_pages` then:

- removes running headers, footers and page numbers: lines at the top or bottom of a page whose
  text, digits aside, repeats on several pages, that carry the page number at a fixed offset from
  the page index, or that are a bare page number;
- keeps the reading order of two-column pages: a vertical gutter that long lines do not cross
  splits the page, and each column is read top to bottom;
- turns rows of two or more cells into Markdown-ish table rows (`| a | b |`);
- keeps headings (a larger font than the body) on their own lines;
- joins hard-wrapped lines into paragraphs, rejoining words hyphenated across the break unless the
  hyphenated form appears elsewhere in the document.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from statistics import median


@dataclass
class Cell:
    text: str
    x0: float
    x1: float
    bold: bool = False


class Row:
    """A line of a page: top is the distance from the page's top edge, so rows sort downwards."""

    __slots__ = ("bold", "bottom", "cells", "end_top", "size", "text", "top", "x0", "x1")

    def __init__(self, cells: list[Cell], top: float, bottom: float, size: float, end_top: float | None = None):
        self.cells = cells
        self.top = top
        self.bottom = bottom
        self.end_top = top if end_top is None else end_top  # the top of its last line (PDFium joins hyphenated lines)
        self.size = size  # font size
        self.x0 = cells[0].x0
        self.x1 = cells[-1].x1
        if len(cells) == 1:
            self.text = cells[0].text
            self.bold = cells[0].bold
        else:
            self.text = " ".join(c.text for c in cells)
            self.bold = all(c.bold for c in cells)


@dataclass
class Page:
    rows: list[Row]
    width: float
    height: float
    removed: list[str] = field(default_factory=list)  # header/footer lines taken out


_DIGITS = re.compile(r"\d+")
# a bare page number: `12`, `- 12 -`, `Page 3 of 9`, `3/9`, or a lower-case roman one (`xii`)
_PAGE_NUMBER = re.compile(r"^[\W_]*(?:(?:[Pp]age|PAGE|p\.|Seite|Página|Pagina)\s*)?(?:\d+|[ivxlc]{1,7})(?:\s*(?:of|/|de|von)\s*\d+)?[\W_]*$")
_EDGE_NUMBER = re.compile(r"^\s*(\d{1,4})\b|\b(\d{1,4})\s*$")
_BULLET = re.compile(r"^(?:[•◦▪●○■\-–*]|\(?\d{1,3}[.)]|\(?[a-z][.)]|\(?[ivx]{1,4}[.)])\s")
_SENTENCE_END = re.compile(r"[.!?:;)\]\"”’]$")
_HYPHEN_END = re.compile(r"(\w+)[-\u00ad\u2010\ufffe]$")
_WORD_START = re.compile(r"^([a-zà-ÿ]\w*)")

LINE_END_HYPHEN = "\ufffe"  # where PDFium joined a word hyphenated at a line end (`com\ufffeputed`)
_JOINED_WORD = re.compile(r"(\w*)\ufffe(\w*)")
EDGE_ROWS = 2  # rows at the top and at the bottom of a page that may be headers or footers
EDGE_ZONE = 0.15  # ... if they lie within this share of the page's height from its edge


Block = tuple[str, str]  # (kind, text): kind is "heading", "table" or "text"


def clean_pages(pages: list[Page]) -> list[list[Block]]:
    """The blocks of each page in reading order: headings, tables and unwrapped paragraphs."""
    _remove_running_lines(pages)
    rows_all = [r for p in pages for r in p.rows]
    if not rows_all:
        return [[] for _ in pages]
    body_size = _body_size(rows_all)
    spacing = _line_spacing(pages, body_size)
    hyphenated = _hyphenated_words(rows_all)
    prose = sorted(r.x1 for r in rows_all if len(r.cells) == 1 and len(r.text) >= 20)
    right = prose[int(0.9 * (len(prose) - 1))] if prose else None  # the text's right margin on most pages
    texts = [_page_text(page, body_size, spacing, hyphenated, right) for page in pages]
    _join_across_pages(texts, hyphenated)

    def rejoin(m: re.Match) -> str:
        if not m.group(2) or not m.group(1):  # nothing to join it to: the hyphen as written
            return m.group(1) + "-" + m.group(2)
        return m.group(1) + ("-" if f"{m.group(1)}-{m.group(2)}".lower() in hyphenated else "") + m.group(2)

    return [[(kind, _JOINED_WORD.sub(rejoin, text) if LINE_END_HYPHEN in text else text) for kind, text in blocks] for blocks in texts]


def _join_across_pages(texts: list[list[Block]], hyphenated: set[str]) -> None:
    """A paragraph that a page break cuts (no sentence end before it, a lower-case word or a
    hyphenated word after it) is kept whole on the page where it starts."""
    for before, after in zip(texts, texts[1:]):
        if before and after and _continues(before[-1], after[0]):
            before[-1] = ("text", _join(before[-1][1], after[0][1], hyphenated))
            after.pop(0)


# ---------------------------------------------------------------- headers and footers


def _edge_rows(page: Page) -> list[tuple[str, int, Row]]:
    """(zone, depth, row) for the rows nearest the top and bottom edges; depth 0 is the outermost."""
    rows = sorted(page.rows, key=lambda r: r.top)
    zone = page.height * EDGE_ZONE
    top = [("top", d, r) for d, r in enumerate(rows[:EDGE_ROWS]) if r.top <= zone]
    taken = {id(r) for _, _, r in top}
    bottom = [("bottom", d, r) for d, r in enumerate(reversed(rows[-EDGE_ROWS:])) if r.bottom >= page.height - zone and id(r) not in taken]
    return top + bottom


def _edge_key(zone: str, depth: int, text: str) -> tuple[str, int, str]:
    """The outermost line repeats with its numbers changing (`Chapter 3: Objects 15`); the one
    inside it must repeat as it is, or a body line such as `Benefit 12: ...` would go too."""
    return (zone, depth, _DIGITS.sub("#", text.lower()).strip() if depth == 0 else text.strip())


def _remove_running_lines(pages: list[Page]) -> None:
    keys: Counter = Counter()
    offsets: Counter = Counter()
    edges = [_edge_rows(p) for p in pages]
    for index, page_edges in enumerate(edges):
        for zone, depth, row in page_edges:
            keys[_edge_key(zone, depth, row.text)] += 1
            offset = _page_offset(row.text, index) if depth == 0 else None
            if offset is not None:
                offsets[(zone, offset)] += 1
    repeats = 2 if len(pages) <= 4 else 3
    for index, (page, page_edges) in enumerate(zip(pages, edges)):
        drop = []
        for zone, depth, row in page_edges:
            text = row.text.strip()
            offset = _page_offset(text, index) if depth == 0 else None
            if (
                _PAGE_NUMBER.match(text)
                or (keys[_edge_key(zone, depth, text)] >= repeats and len(pages) > 1)
                or (offset is not None and offsets[(zone, offset)] >= max(repeats, 0.3 * len(pages)))
            ):
                drop.append(row)
        if drop:
            page.removed = [r.text for r in drop]
            page.rows = [r for r in page.rows if all(r is not d for d in drop)]


def _page_offset(text: str, index: int) -> int | None:
    """The number at the start or end of a line minus the page's index: constant for page numbers."""
    m = _EDGE_NUMBER.search(text)
    if not m:
        return None
    return int(m.group(1) or m.group(2)) - index


# ---------------------------------------------------------------- measures over the document


def _body_size(rows: list[Row]) -> float:
    sizes: Counter = Counter()
    for r in rows:
        sizes[round(r.size, 1)] += len(r.text)
    return sizes.most_common(1)[0][0] or 10.0


def _line_spacing(pages: list[Page], body_size: float) -> float:
    gaps = []
    for p in pages:
        rows = sorted(p.rows, key=lambda r: r.top)
        for a, b in zip(rows, rows[1:]):
            gap = b.top - a.end_top
            if 0 < gap < 3 * body_size and abs(a.size - body_size) < 0.5:
                gaps.append(gap)
    return median(gaps) if gaps else 1.2 * body_size


def _hyphenated_words(rows: list[Row]) -> set[str]:
    """Words written with a hyphen inside a line (`well-known`): kept whole when split at a line end."""
    return set(re.findall(r"\b\w+-\w+\b", "\n".join(r.text for r in rows).lower()))


# ---------------------------------------------------------------- one page


def _columns(page: Page) -> float | None:
    """The x of a gutter between two columns, or None for a one-column page.

    Only long rows (prose) are looked at: a table's short cells do not make a page two-column.
    """
    long_cells = [c for r in page.rows for c in r.cells if len(c.text) >= 20]
    if len(long_cells) < 8:
        return None
    width = page.width
    best = None
    for step in range(30, 71, 2):
        g = width * step / 100
        left = sum(1 for c in long_cells if c.x1 < g)
        right = sum(1 for c in long_cells if c.x0 > g)
        crossing = len(long_cells) - left - right
        if left >= 4 and right >= 4 and crossing <= max(1, 0.05 * len(long_cells)):
            score = min(left, right) - 4 * crossing
            if best is None or score > best[0]:
                best = (score, g)
    return best[1] if best else None


def _reading_order(page: Page) -> list[list[Row]]:
    """Runs of rows in reading order; a new run starts at each column."""
    rows = sorted(page.rows, key=lambda r: (round(r.top, 0), r.x0))
    gutter = _columns(page)
    if gutter is None:
        return [rows]
    runs: list[list[Row]] = []
    left: list[Row] = []
    right: list[Row] = []

    def flush() -> None:
        for side in (left, right):
            if side:
                runs.append(list(side))
                side.clear()

    for row in rows:
        lefts = [c for c in row.cells if c.x1 < gutter]
        rights = [c for c in row.cells if c.x0 > gutter]
        if len(lefts) + len(rights) < len(row.cells):  # crosses the gutter: a full-width line
            flush()
            runs.append([row])
            continue
        if lefts:
            left.append(Row(lefts, row.top, row.bottom, row.size, row.end_top))
        if rights:
            right.append(Row(rights, row.top, row.bottom, row.size, row.end_top))
    flush()
    return runs


def _page_text(page: Page, body_size: float, spacing: float, hyphenated: set[str], right: float | None) -> list[Block]:
    blocks: list[Block] = []
    runs = _reading_order(page)
    for run in runs:
        run_blocks = _run_blocks(run, body_size, spacing, hyphenated, right if len(runs) == 1 else None)
        if blocks and run_blocks and _continues(blocks[-1], run_blocks[0]):  # a paragraph going on in the next column
            blocks[-1] = ("text", _join(blocks[-1][1], run_blocks.pop(0)[1], hyphenated))
        blocks.extend(run_blocks)
    return [b for b in blocks if b[1].strip()]


def _continues(before: Block, after: Block) -> bool:
    """`after` goes on with the sentence `before` breaks off: no sentence end, then a lower-case
    word, or a break after a comma, a hyphen or a lower-case word."""
    if before[0] != "text" or after[0] != "text":
        return False
    tail, head = before[1], after[1]
    return not _SENTENCE_END.search(tail[-2:]) and (head[:1].islower() or tail[-1:].islower() or tail[-1:] in ",-")


def _is_heading(row: Row, body_size: float) -> bool:
    """A larger font than the body's, or a bold line at the body's size or more."""
    if len(row.cells) != 1 or not 0 < len(row.text) <= 150:
        return False
    return row.size >= body_size * 1.15 or (row.bold and row.size >= body_size * 0.95)


def _run_blocks(rows: list[Row], body_size: float, spacing: float, hyphenated: set[str], doc_right: float | None = None) -> list[Block]:
    """Paragraphs, headings and tables of one column's rows, top to bottom. `doc_right` is the
    document's right margin, for a one-column page whose own lines may all be short."""
    if not rows:
        return []
    prose = [r for r in rows if len(r.cells) == 1 and len(r.text) >= 20]
    left = min((r.x0 for r in prose), default=min(r.x0 for r in rows))
    # the right margin: most long lines reach it (a heading or a wide line may stick out past it)
    ends = sorted(r.x1 for r in prose)
    right = ends[int(0.9 * (len(ends) - 1))] if ends else max(r.x1 for r in rows)
    if doc_right is not None and len(prose) < 5:  # too few lines of its own to tell its margin
        right = max(right, doc_right)
    width = max(right - left, 1.0)
    blocks: list[Block] = []
    paragraph = ""
    table: list[str] = []
    previous: Row | None = None

    def end_paragraph() -> None:
        nonlocal paragraph
        if paragraph.strip():
            blocks.append(("text", paragraph.strip()))
        paragraph = ""

    def end_table() -> None:
        if table:
            blocks.append(("table", "\n".join(table)))
            table.clear()

    for i, row in enumerate(rows):
        text = row.text.strip()
        if not text:
            continue
        is_row = len(row.cells) >= 2 and (
            table or (i + 1 < len(rows) and len(rows[i + 1].cells) >= 2)
        )  # two rows of cells, one under the other, make a table
        if is_row:
            end_paragraph()
            table.append("| " + " | ".join(c.text.strip().replace("|", "/") for c in row.cells) + " |")
            previous = row
            continue
        end_table()
        if _is_heading(row, body_size):
            end_paragraph()
            if blocks and blocks[-1][0] == "heading" and previous is not None and _is_heading(previous, body_size) \
                    and row.top - previous.end_top < 2 * row.size:
                blocks[-1] = ("heading", blocks[-1][1] + " " + text)  # a heading wrapped over two lines
            else:
                blocks.append(("heading", text))
            previous = row
            continue
        if paragraph and previous is not None:
            gap = row.top - previous.end_top
            new_paragraph = (
                gap > 1.45 * spacing
                or gap < 0
                or _is_heading(previous, body_size)
                or _BULLET.match(text)
                or (previous.x1 < right - 0.12 * width and _SENTENCE_END.search(paragraph[-2:]))
                or previous.x1 < right - 0.25 * width  # a short line (code, an address, a list) stands alone
                or row.x0 > left + 0.12 * width and row.x0 > previous.x0 + 3 * body_size  # indented far: a new block
            )
            if new_paragraph:
                end_paragraph()
            else:
                paragraph = _join(paragraph, text, hyphenated)
                previous = row
                continue
        paragraph = text if not paragraph else paragraph
        previous = row
    end_paragraph()
    end_table()
    return blocks


def _join(paragraph: str, text: str, hyphenated: set[str]) -> str:
    m = _HYPHEN_END.search(paragraph[-80:]) if paragraph[-1] in "-\u00ad\u2010\ufffe" else None
    if m:
        m_end = len(paragraph) - 80 + m.end(1) if len(paragraph) > 80 else m.end(1)
        n = _WORD_START.match(text)
        if n:
            whole = f"{m.group(1)}-{n.group(1)}".lower()
            if whole in hyphenated:
                return paragraph[:m_end] + "-" + text
            return paragraph[:m_end] + text
    return paragraph + " " + text
