"""Makes sample/insurance/documents/: a policy-terms PDF, a two-column claims guide PDF and a
product sheet DOCX, typeset from the public-domain healthcare.gov pages in the sample (glossary
entries and questions), the way an insurer's own files look: running headers, page numbers,
hyphenated line ends, a table, two columns. Run it again to remake them (the PDFs come out byte for
byte the same; the DOCX differs in its timestamps).

    .venv/bin/python tests/make_sample_documents.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pdf_writer import Layout, PdfPage, text_width, wrap, write_pdf

REPO = Path(__file__).resolve().parent.parent
PAGES = REPO / "sample" / "insurance" / "healthcare-gov-2013"
OUT = REPO / "sample" / "insurance" / "documents"

GLOSSARY = ["06-07-deductible", "co-insurance", "co-payment", "out-of-pocket-maximum-limit", "-premium", "-claim", "-appeal",
            "allowed-amount", "balance-billing", "excluded-services", "formulary", "in-network-coinsurance",
            "-network", "preventive-services", "referral", "specialist", "urgent-care", "emergency-room-care"]  # fmt: skip
QUESTIONS = ["how-long-does-an-internal-appeal-take", "what-kinds-of-denials-can-be-appealed",
             "where-can-i-get-help-filing-an-appeal", "how-do-i-know-if-my-doctor-is-in-a-plans-network",
             "will-i-pay-more-to-insure-my-under-26-year-old", "what-if-my-family-has-medicaid-or-chip",
             "how-long-does-the-appeals-process-take", "when-can-i-request-an-appeal", "what-if-my-child-under-26-isnt-covered-at-all",
             "does-this-apply-to-my-plan-appeal"]  # fmt: skip


def page_text(pattern: str, folder: str) -> tuple[str, list[str]]:
    """(title, paragraphs) of the first page whose name ends with pattern.md, Markdown made plain."""
    path = next(p for p in sorted((PAGES / folder).glob(f"*{pattern}.md")))
    raw = path.read_text(encoding="utf-8")
    front, body = raw.split("\n---\n", 1) if raw.startswith("---") else ("", raw)
    title = re.search(r"^title:\s*['\"]?(.*?)['\"]?\s*$", front, re.MULTILINE).group(1).replace("''", "'")
    body = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", body)  # links -> their text
    body = re.sub(r"<[^>]+>|\*\*|__|^#+\s*|^\s*[-*]\s+", "", body, flags=re.MULTILINE)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if p.strip()]
    return title, [p for p in paragraphs if len(p.split()) > 3]


def policy_terms() -> None:
    layout = Layout(header="Example Health Plan | Policy terms and definitions")
    layout.heading("Policy terms and definitions", size=18)
    layout.paragraph("This part of your policy explains the words we use. The definitions come from the "
                     "glossary of the federal Health Insurance Marketplace (healthcare.gov, 2013), a work of the "
                     "United States government in the public domain.")  # fmt: skip
    for i, name in enumerate(GLOSSARY):
        title, paragraphs = page_text(name, "glossary")
        layout.heading(title, size=13)
        for p in paragraphs:
            layout.paragraph(p)
        if i == 2:
            layout.heading("What you pay: an example", size=13)
            layout.table([["Service", "In network", "Out of network"], ["Primary care visit", "$20 copayment", "40% coinsurance"],
                          ["Specialist visit", "$40 copayment", "40% coinsurance"], ["Emergency room", "$250 copayment", "$250 copayment"]],
                         [72, 250, 400])  # fmt: skip
    write_pdf(OUT / "policy-terms.pdf", layout.finish(), title="Policy terms and definitions", author="Example Health Plan")


def claims_guide() -> None:
    """Two columns, written line by line across both (the order some exporters use)."""
    size, leading, gutter = 10.0, 12.5, 24.0
    col_width = (595 - 2 * 60 - gutter) / 2
    columns: list[list[tuple[str, bool]]] = [[], []]
    lines: list[tuple[str, bool]] = []
    for name in QUESTIONS:
        title, paragraphs = page_text(name, "questions")
        lines.extend((line, True) for line in wrap(title, col_width, 11.0, hyphenate=False))
        for p in paragraphs:
            lines.extend((line, False) for line in wrap(p, col_width, size))
            lines.append(("", False))
    per_column = 34
    pages = []
    while lines:
        columns = [lines[:per_column], lines[per_column : 2 * per_column]]
        lines = lines[2 * per_column :]
        page = PdfPage()
        page.text(60, 40, "Example Health Plan | Claims and eligibility guide", size=8.5)
        page.text(60, 70, "Questions members ask", size=16, bold=True)
        for row in range(per_column):
            for c, column in enumerate(columns):
                if row < len(column) and column[row][0]:
                    text, bold = column[row]
                    page.text(60 + c * (col_width + gutter), 100 + row * leading, text, size=11.0 if bold else size, bold=bold)
        pages.append(page)
    for number, page in enumerate(pages, start=1):
        label = f"- {number} -"
        page.text(page.width / 2 - text_width(label, 8.5) / 2, page.height - 36, label, size=8.5)
    write_pdf(OUT / "claims-guide.pdf", pages, title="Claims and eligibility guide", author="Example Health Plan")


def product_sheet() -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Bronze plan product sheet"
    document.core_properties.author = "Example Health Plan"
    document.add_heading("Bronze plan: product sheet", level=0)
    document.add_paragraph("A summary of what the plan covers and what you pay. Words in this sheet mean what the "
                           "healthcare.gov glossary (public domain) says they mean.")  # fmt: skip
    document.add_heading("What the plan covers", level=1)
    for name in ("essential-health-benefits", "preventive-services"):
        _, paragraphs = page_text(name, "glossary")
        document.add_paragraph(paragraphs[0])
    for item in ("Doctor visits and hospital care", "Prescription drugs on the formulary", "Preventive services at no cost",
                 "Emergency care, in or out of network"):  # fmt: skip
        document.add_paragraph(item, style="List Bullet")
    document.add_heading("What you pay", level=1)
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(table.rows[0].cells, ("Cost", "You pay", "Notes")):
        cell.text = text
    for row in (("Deductible", "$6,000", "per person each year"), ("Out-of-pocket maximum", "$6,350", "then the plan pays 100%"),
                ("Primary care visit", "$45", "after the deductible")):  # fmt: skip
        cells = table.add_row().cells
        for cell, text in zip(cells, row):
            cell.text = text
    document.add_heading("Words to know", level=1)
    for name in ("06-07-deductible", "-premium", "out-of-pocket-maximum-limit"):
        title, paragraphs = page_text(name, "glossary")
        document.add_heading(title, level=2)
        document.add_paragraph(paragraphs[0])
    document.save(OUT / "product-sheet.docx")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    policy_terms()
    claims_guide()
    product_sheet()


if __name__ == "__main__":
    main()
