"""DOCX text with python-docx: the body in document order, headings on their own lines, list
items as `- ` lines, tables as Markdown-ish rows, paragraphs separated by a blank line."""

from __future__ import annotations

import zipfile

from corpus.ingest.pdf import DocumentError

MAX_XML_RATIO = 200  # a part inflated past this many times its compressed size (and past 1 MiB): a bomb


def _check_package(path: str, max_bytes: int) -> None:
    """A ZIP holding word/document.xml no longer than max_bytes, and no part that is a bomb:
    python-docx reads every part (styles, numbering, headers, ...) into memory."""
    try:
        with zipfile.ZipFile(path) as z:
            parts = z.infolist()
            info = z.getinfo("word/document.xml")
    except KeyError:
        raise DocumentError("invalid_docx", f"{path}: a ZIP without word/document.xml, not a Word document") from None
    except zipfile.BadZipFile as e:
        raise DocumentError("invalid_docx", f"{path}: not a ZIP package: {e}") from None
    if info.file_size > max_bytes:
        raise DocumentError("record_too_large", f"{path}: word/document.xml of {info.file_size:,} bytes is longer than {max_bytes:,} (--max-record-bytes)")
    for part in parts:
        if part.file_size > (1 << 20) and part.file_size > MAX_XML_RATIO * max(part.compress_size, 1):
            raise DocumentError("decompression_limit", f"{path}: {part.filename} inflates {part.file_size / max(part.compress_size, 1):,.0f} times")


def _style_names(document) -> tuple[dict[str, str], str]:
    """({style id: lower-case name} of the paragraph styles, the default style's name), read once:
    asking each paragraph for its style makes python-docx search the styles part every time."""
    from docx.enum.style import WD_STYLE_TYPE

    names, default = {}, ""
    try:
        for style in document.styles:
            if style.type == WD_STYLE_TYPE.PARAGRAPH:
                names[style.style_id] = (style.name or "").lower()
        fallback = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        default = (fallback.name or "").lower() if fallback is not None else ""
    except (KeyError, ValueError):
        pass
    return names, default


def _paragraph_line(paragraph, styles: tuple[dict[str, str], str]) -> tuple[str, str]:
    """(kind, text): kind is heading, item or text."""
    text = " ".join(paragraph.text.split())
    names, default = styles
    style_id = paragraph._p.style
    style = default if style_id is None else names.get(style_id, default)
    if style.startswith("heading") or style in ("title", "subtitle"):
        return "heading", text
    numbered = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if style.startswith("list") or numbered:
        return "item", "- " + text
    return "text", text


def _table_rows(table) -> list[str]:
    rows = []
    for row in table.rows:
        cells = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell comes once per grid column
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()).replace("|", "/"))
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def extract_docx(path: str, max_bytes: int) -> dict:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    _check_package(path, max_bytes)
    try:
        document = docx.Document(path)
    except Exception as e:  # python-docx raises PackageNotFoundError, KeyError, lxml errors, ...
        from corpus.ingest.readers import _one_line

        raise DocumentError("invalid_docx", f"{path}: not a readable Word document: {_one_line(e)}") from None
    blocks: list[tuple[str, str]] = []
    items: list[str] = []
    styles = _style_names(document)

    def end_list() -> None:
        if items:
            blocks.append(("list", "\n".join(items)))
            items.clear()

    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            kind, text = _paragraph_line(Paragraph(child, document), styles)
            if not text or text == "- ":
                continue
            if kind == "item":
                items.append(text)
                continue
            end_list()
            blocks.append((kind, text))
        elif tag == "tbl":
            end_list()
            rows = _table_rows(Table(child, document))
            if rows:
                blocks.append(("table", "\n".join(rows)))
    end_list()
    props = document.core_properties
    return {
        "blocks": blocks,
        "title": props.title or None,
        "author": props.author or None,
    }
