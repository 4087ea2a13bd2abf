"""A tiny PDF writer for test fixtures and the bundled sample: pages of text in the standard
Helvetica fonts (no embedding), placed where the caller says, plus the helpers that lay out
ragged-right paragraphs with hyphenation, the way a word processor's PDF export looks.

Only what the tests need: text, font size, bold, document info, an optional /Encrypt dictionary
(a password no one knows), and pages with no text at all (a scan without OCR, as far as the text
layer goes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Helvetica advance widths (1/1000 em) for ASCII 32..126, from the standard font metrics
_WIDTHS = [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278] + [556] * 10 + [
    278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556,
    278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584]  # fmt: skip


def text_width(text: str, size: float, bold: bool = False) -> float:
    w = sum(_WIDTHS[ord(c) - 32] if 32 <= ord(c) < 127 else 556 for c in text)
    return w * size / 1000 * (1.06 if bold else 1.0)


@dataclass
class PdfPage:
    width: float = 595.0  # A4
    height: float = 842.0
    ops: list[str] = field(default_factory=list)

    def text(self, x: float, y_from_top: float, text: str, size: float = 10.5, bold: bool = False) -> None:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        font = "F2" if bold else "F1"
        self.ops.append(f"BT /{font} {size:g} Tf {x:.2f} {self.height - y_from_top:.2f} Td ({escaped}) Tj ET")

    def rectangle(self, x: float, y_from_top: float, w: float, h: float) -> None:
        self.ops.append(f"0.5 g {x:.2f} {self.height - y_from_top - h:.2f} {w:.2f} {h:.2f} re f")


def wrap(text: str, width: float, size: float, hyphenate: bool = True) -> list[str]:
    """Ragged-right lines of at most `width` points; a long word that does not fit is hyphenated."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size) <= width:
            line = candidate
            continue
        if hyphenate and "-" in word[1:-1] and line and text_width(f"{line} {word[: word.index('-', 1) + 1]}", size) <= width:
            cut = word.index("-", 1) + 1  # a compound breaks after its own hyphen
            lines.append(f"{line} {word[:cut]}")
            line = word[cut:]
            continue
        if hyphenate and len(word) >= 8 and line and word.isalpha():
            for cut in range(len(word) - 3, 3, -1):
                head = f"{line} {word[:cut]}-"
                if text_width(head, size) <= width and word[:cut].isalpha():
                    lines.append(head)
                    line = word[cut:]
                    break
            else:
                lines.append(line)
                line = word
            continue
        if line:
            lines.append(line)
        line = word
    if line:
        lines.append(line)
    return lines


def _latin1(s: str) -> bytes:
    return s.encode("cp1252", errors="replace")  # WinAnsiEncoding


def write_pdf(path, pages: list[PdfPage], title: str | None = None, author: str | None = None, encrypted: bool = False) -> None:
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    pages_id = add(b"")
    font1 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    font2 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for page in pages:
        stream = _latin1("\n".join(page.ops))
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %g %g] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>" % (pages_id, page.width, page.height, content, font1, font2)
        ))  # fmt: skip
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    info_parts = []
    for key, value in (("Title", title), ("Author", author)):
        if value:
            info_parts.append(b"/%s (%s)" % (key.encode(), _latin1(value)))
    info = add(b"<< " + b" ".join(info_parts) + b" >>")
    encrypt = None
    if encrypted:  # the standard handler, RC4 40-bit, with /O and /U that match no password
        encrypt = add(b"<< /Filter /Standard /V 1 /R 2 /O <" + b"ab" * 32 + b"> /U <" + b"cd" * 32 + b"> /P -4 >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = b"<< /Size %d /Root %d 0 R /Info %d 0 R" % (len(objects) + 1, catalog, info)
    if encrypt:
        trailer += b" /Encrypt %d 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]" % encrypt
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    with open(path, "wb") as f:
        f.write(bytes(out))


@dataclass
class Layout:
    """Pages filled top to bottom with headings, paragraphs and table rows, with a running header
    and a "Page N of M" footer added at the end."""

    header: str | None = None
    footer: bool = True
    size: float = 10.5
    leading: float = 13.5
    margin: float = 72.0
    pages: list[PdfPage] = field(default_factory=list)
    y: float = 0.0

    def _page(self) -> PdfPage:
        if not self.pages or self.y > self.pages[-1].height - self.margin - self.leading:
            self.pages.append(PdfPage())
            self.y = self.margin + 12
        return self.pages[-1]

    def heading(self, text: str, size: float = 14.0) -> None:
        self.y += 8
        page = self._page()
        page.text(self.margin, self.y + size, text, size=size, bold=True)
        self.y += size + 8

    def paragraph(self, text: str, x: float | None = None, width: float | None = None) -> None:
        x = self.margin if x is None else x
        page_width = 595.0
        width = width or page_width - 2 * self.margin
        for line in wrap(text, width, self.size):
            page = self._page()
            page.text(x, self.y + self.size, line, size=self.size)
            self.y += self.leading
        self.y += self.leading * 0.6

    def table(self, rows: list[list[str]], columns: list[float]) -> None:
        for i, row in enumerate(rows):
            page = self._page()
            for x, cell in zip(columns, row):
                page.text(x, self.y + self.size, cell, size=self.size, bold=i == 0)
            self.y += self.leading
        self.y += self.leading * 0.6

    def finish(self) -> list[PdfPage]:
        total = len(self.pages)
        for number, page in enumerate(self.pages, start=1):
            if self.header:
                page.text(self.margin, 40, self.header, size=8.5)
            if self.footer:
                label = f"Page {number} of {total}"
                page.text(page.width / 2 - text_width(label, 8.5) / 2, page.height - 36, label, size=8.5)
        return self.pages
