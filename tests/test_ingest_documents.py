"""PDF and DOCX ingest: clean text (unwrapped, dehyphenated, no running lines, columns in order,
tables as rows, headings alone), metadata, splits, and every kind of bad file ending as a reason."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from corpus.ingest.documents import extract_document, read_document
from corpus.ingest.formats import FileTask, IngestLimits, detect_format, plan_ingest
from corpus.ingest.readers import ReadStats
from tests.conftest import REPO
from tests.pdf_writer import Layout, PdfPage, write_pdf

SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample" / "insurance" / "documents"

TERMS = (
    "Your plan pays for covered services after you meet your deductible. The deductible is the amount you "
    "owe for health care services before your plan begins to pay. Preventive services such as immunizations "
    "and screenings are covered without a copayment, even before you meet the deductible. Out-of-network "
    "care costs more, and a pre-existing condition never changes what you pay."
)


def in_process(args: tuple) -> dict:
    return extract_document(*args)


def read(path: Path, fmt: str | None = None, split: str = "document", limits: IngestLimits | None = None):
    fmt = fmt or detect_format(path)
    stats = ReadStats()
    task = FileTask(str(path), fmt, "s", "d", limits=limits or IngestLimits(), split=split)
    return list(read_document(task, stats, in_process)), stats


def policy_pdf(path: Path, sections: int = 3) -> Path:
    layout = Layout(header="Example Health Plan | Policy wording")
    for k in range(sections):
        layout.heading(f"Section {k + 1}: Covered services")
        for _ in range(3):
            layout.paragraph(TERMS)
        layout.table([["Service", "In network", "Out of network"], ["Primary care visit", "$20 copay", "40% coinsurance"],
                      ["Emergency room", "$250 copay", "$250 copay"]], [72, 250, 400])  # fmt: skip
    write_pdf(path, layout.finish(), title="Policy wording", author="Example Insurer")
    return path


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> tuple[Path, dict]:
    path = policy_pdf(tmp_path_factory.mktemp("pdf") / "policy.pdf")
    records, _ = read(path)
    assert len(records) == 1 and "reason" not in records[0]
    return path, records[0]


def test_pdf_paragraphs_are_unwrapped_and_hyphenated_words_rejoined(policy):
    path, rec = policy
    lines = rec["text"].split("\n")
    # every paragraph is one line: each sentence stands whole on a line
    for sentence in TERMS.split(". "):
        assert any(sentence.rstrip(".") in line for line in lines), sentence
    assert "Preven-" not in rec["text"] and "immuniza-" not in rec["text"]
    # nine paragraphs, each whole, though page breaks cut some of them in the PDF
    assert rec["text"].count(TERMS) == 9
    # the plain text is hard-wrapped: the test's PDF really is
    from corpus.ingest.pdf import plain_pdf_text

    plain = plain_pdf_text(str(path))
    assert sum(1 for s in TERMS.split(". ") if any(s.rstrip(".") in line for line in plain.split("\n"))) < 3


def test_pdf_running_header_and_page_numbers_are_removed(policy):
    _, rec = policy
    assert "Example Health Plan | Policy wording" not in rec["text"]
    assert "Page 1 of" not in rec["text"] and "Page 2 of" not in rec["text"]
    assert rec["metadata"]["header_footer_lines_removed"] >= 2 * rec["metadata"]["page_count"]


def test_pdf_headings_stand_alone_and_tables_become_rows(policy):
    _, rec = policy
    lines = rec["text"].split("\n")
    assert "Section 2: Covered services" in lines
    assert "| Service | In network | Out of network |" in lines
    assert "| Emergency room | $250 copay | $250 copay |" in lines


def test_pdf_metadata_title_author_pages_and_page_offsets(policy):
    _, rec = policy
    meta = rec["metadata"]
    assert meta["title"] == "Policy wording" and meta["author"] == "Example Insurer"
    assert meta["page_count"] == len(meta["page_starts"]) >= 2
    assert meta["page_starts"][0] == 0 and meta["page_starts"] == sorted(meta["page_starts"])
    assert all(0 < s < len(rec["text"]) for s in meta["page_starts"][1:])
    json.dumps(meta)


def test_compound_hyphen_at_a_line_end_is_kept_when_the_document_writes_it_so(tmp_path):
    layout = Layout(header=None, footer=False)
    # "pre-existing" is written whole once; the narrow column breaks it at its hyphen elsewhere
    layout.paragraph("A pre-existing condition is a health problem you had before the date that new health coverage starts.")
    for _ in range(4):
        layout.paragraph("Insurers can no longer refuse to cover you or charge you more because of your pre-existing condition.",
                         width=392)  # fmt: skip
    write_pdf(tmp_path / "h.pdf", layout.finish())
    text = read(tmp_path / "h.pdf")[0][0]["text"]
    assert "preexisting" not in text and text.count("pre-existing") == 5


def _two_column_pdf(path: Path, interleaved: bool) -> tuple[str, str]:
    left = ("The left column tells you how to file a claim with the plan. Send the claim form within ninety days "
            "of the service, with the receipts and the name of the doctor who treated you. ") * 3  # fmt: skip
    right = ("The right column explains appeals. If the plan denies a claim you may ask it to review the decision "
             "again, and then ask for an external review by an independent reviewer. ") * 3  # fmt: skip
    from tests.pdf_writer import wrap

    page = PdfPage()
    a, b = wrap(left, 220, 10), wrap(right, 220, 10)
    order = [(i, c) for i in range(max(len(a), len(b))) for c in (0, 1)] if interleaved else \
            [(i, 0) for i in range(len(a))] + [(i, 1) for i in range(len(b))]  # fmt: skip
    for i, c in order:
        lines = a if c == 0 else b
        if i < len(lines):
            page.text(60 + c * 250, 100 + i * 12.5, lines[i], size=10)
    write_pdf(path, [page])
    return left, right


@pytest.mark.parametrize("interleaved", [True, False])
def test_two_column_page_is_read_column_by_column(tmp_path, interleaved):
    left, right = _two_column_pdf(tmp_path / "c.pdf", interleaved)
    text = read(tmp_path / "c.pdf")[0][0]["text"]
    assert text.index("The left column") < text.index("The right column")
    lines = text.split("\n")
    for sentence in (left.split(". ")[1], right.split(". ")[1]):
        assert any(sentence in line for line in lines), sentence


def test_pdf_split_by_page_and_by_section(tmp_path):
    path = policy_pdf(tmp_path / "p.pdf")
    pages, _ = read(path, split="page")
    assert [r["metadata"]["page"] for r in pages] == list(range(1, len(pages) + 1)) and len(pages) >= 2
    sections, _ = read(path, split="section")
    assert [r["metadata"]["section_title"] for r in sections] == [f"Section {k}: Covered services" for k in (1, 2, 3)]
    assert all(r["text"].startswith(r["metadata"]["section_title"]) for r in sections)


# ---------------------------------------------------------------- DOCX


def product_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Bronze plan"
    document.core_properties.author = "Example Insurer"
    document.add_heading("What the plan covers", level=1)
    document.add_paragraph("Preventive care is covered at no cost to you, even before you meet your deductible.")
    document.add_paragraph("Doctor visits", style="List Bullet")
    document.add_paragraph("Prescription drugs", style="List Number")
    table = document.add_table(rows=3, cols=2)
    for cell, text in zip(table.rows[0].cells + table.rows[1].cells, ("Cost", "You pay", "Deductible", "$6,000")):
        cell.text = text
    merged = table.rows[2].cells[0].merge(table.rows[2].cells[1])
    merged.text = "Preventive care costs nothing"
    document.add_heading("Words to know", level=2)
    document.add_paragraph("A premium is the amount you pay for your plan each month.")
    document.save(path)
    return path


def test_docx_keeps_headings_lists_and_tables(tmp_path):
    records, _ = read(product_docx(tmp_path / "p.docx"))
    assert len(records) == 1 and "reason" not in records[0]
    rec = records[0]
    assert rec["text"].split("\n") == [
        "What the plan covers", "",
        "Preventive care is covered at no cost to you, even before you meet your deductible.", "",
        "- Doctor visits", "- Prescription drugs", "",
        "| Cost | You pay |", "| Deductible | $6,000 |", "| Preventive care costs nothing |", "",
        "Words to know", "",
        "A premium is the amount you pay for your plan each month.",
    ]  # fmt: skip
    assert rec["metadata"]["title"] == "Bronze plan" and rec["metadata"]["author"] == "Example Insurer"
    sections, _ = read(tmp_path / "p.docx", split="section")
    assert [r["metadata"]["section_title"] for r in sections] == ["What the plan covers", "Words to know"]


def test_formats_detected_by_name_and_by_magic_bytes(tmp_path):
    pdf = policy_pdf(tmp_path / "a.pdf", sections=1)
    docx_path = product_docx(tmp_path / "b.docx")
    (tmp_path / "pdf_no_name").write_bytes(pdf.read_bytes())
    (tmp_path / "docx_no_name").write_bytes(docx_path.read_bytes())
    with zipfile.ZipFile(tmp_path / "other_zip", "w") as z:
        z.writestr("data.csv", "a,b\n")
    assert [detect_format(tmp_path / n) for n in ("a.pdf", "b.docx", "pdf_no_name", "docx_no_name", "other_zip")] == \
           ["pdf", "docx", "pdf", "docx", None]  # fmt: skip


# ---------------------------------------------------------------- bad files


def test_bad_pdfs_and_docx_each_end_as_one_rejected_row_with_its_reason(tmp_path):
    write_pdf(tmp_path / "encrypted.pdf", [PdfPage()], encrypted=True)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage\x00\x01" * 3)
    write_pdf(tmp_path / "zero.pdf", [])
    scan = PdfPage()
    scan.rectangle(50, 50, 400, 600)  # an image of text, as far as the text layer goes
    write_pdf(tmp_path / "scan.pdf", [scan, scan])
    with zipfile.ZipFile(tmp_path / "zip.docx", "w") as z:
        z.writestr("photos/a.jpg", b"\xff\xd8\xff")
    (tmp_path / "text.docx").write_text("not a zip at all")
    expected = {"encrypted.pdf": "encrypted", "broken.pdf": "invalid_pdf", "zero.pdf": "no_pages",
                "scan.pdf": "no_text_layer", "zip.docx": "invalid_docx", "text.docx": "invalid_docx"}  # fmt: skip
    for name, reason in expected.items():
        records, _ = read(tmp_path / name)
        assert [r.get("reason") for r in records] == [reason], (name, records)
        assert records[0]["detail"].startswith(str(tmp_path / name))


def test_many_page_pdf_is_read_page_by_page_or_refused_past_the_page_limit(tmp_path):
    pages = []
    for n in range(500):
        page = PdfPage()
        page.text(72, 60, "Example Health Plan | Schedule of benefits", size=8)
        page.text(72, 120, f"Benefit line {n}: the plan pays eighty percent of the allowed amount after the deductible.")
        page.text(290, 800, str(n + 1), size=8)
        pages.append(page)
    write_pdf(tmp_path / "long.pdf", pages)
    records, _ = read(tmp_path / "long.pdf")
    assert len(records) == 1 and records[0]["metadata"]["page_count"] == 500
    assert "Schedule of benefits" not in records[0]["text"] and "Benefit line 499:" in records[0]["text"]
    refused, _ = read(tmp_path / "long.pdf", limits=IngestLimits(max_pages=100))
    assert [r["reason"] for r in refused] == ["too_many_pages"] and "500 pages" in refused[0]["detail"]


def test_extraction_timeout_and_a_dead_extractor_become_rejected_rows(tmp_path):
    path = policy_pdf(tmp_path / "p.pdf", sections=1)
    task = FileTask(str(path), "pdf", "s", "d")

    def times_out(args):
        raise TimeoutError("Document extraction timed out")

    def dies(args):
        raise EOFError("Child process died")

    assert [r["reason"] for r in read_document(task, ReadStats(), times_out)] == ["extraction_timeout"]
    assert [r["reason"] for r in read_document(task, ReadStats(), dies)] == ["extraction_error"]


def test_split_option_is_checked(tmp_path):
    from corpus.errors import CorpusError

    with pytest.raises(CorpusError, match="unknown split"):
        plan_ingest([tmp_path], "s", "d", split="chapter")


# ---------------------------------------------------------------- the bundled sample, end to end


def test_bundled_insurance_documents_ingest_clean(tmp_path):
    """The sample's PDFs and DOCX through `corpus ingest` (the real command, its child extractor
    and its card), with a broken PDF beside them."""
    import shutil

    import polars as pl

    from corpus.cli import main

    folder = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    assert main(["-q", "ingest", str(folder), "-o", str(tmp_path / "out"), "--source", "insurer", "--domain", "insurance"]) == 0
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    kept = pl.read_parquet(tmp_path / "out" / "data")
    rejected = pl.read_parquet(tmp_path / "out" / "rejected")
    assert sorted(Path(json.loads(m)["path"]).name for m in kept["metadata"]) == ["claims-guide.pdf", "policy-terms.pdf", "product-sheet.docx"]
    assert rejected["reason"].to_list() == ["invalid_pdf"]
    assert card["config"]["document_timeout"] == 300.0
    texts = dict(zip((Path(json.loads(m)["path"]).name for m in kept["metadata"]), kept["text"]))
    assert "Page 1 of" not in texts["policy-terms.pdf"] and "| Service | In network | Out of network |" in texts["policy-terms.pdf"]
    guide = texts["claims-guide.pdf"].split("\n")
    assert "How long does an internal appeal take?" in guide  # a bold question stands alone
    assert any(line.startswith("If you need help filing an internal appeal or external review, your state's Consumer") for line in guide)
    assert "- Doctor visits and hospital care" in texts["product-sheet.docx"].split("\n")


def test_an_unforeseen_library_error_is_that_files_row_not_a_dead_extractor(tmp_path, monkeypatch):
    import corpus.ingest.pdf

    def broken(*args):
        raise ValueError("unexpected object in page tree")

    monkeypatch.setattr(corpus.ingest.pdf, "extract_pdf", broken)
    result = extract_document(str(tmp_path / "x.pdf"), "pdf", 10, 1000)
    assert result == {"error": "extraction_error", "detail": f"{tmp_path / 'x.pdf'}: ValueError: unexpected object in page tree"}


@pytest.mark.parametrize("fmt", ["pdf", "docx", "md", "html", "txt"])
def test_a_file_gone_since_planning_is_a_rejected_row_naming_it(tmp_path, fmt):
    from corpus.ingest.readers import READERS

    missing = tmp_path / f"gone.{fmt}"
    stats = ReadStats()

    def extract(_):  # never reached: the file is checked first
        raise AssertionError("extracted a missing file")

    (row,) = list(READERS[fmt](FileTask(str(missing), fmt, "s", "d"), stats, extract))
    assert row["reason"] == "unreadable_file" and str(missing) in row["detail"] and "No such file" in row["detail"]


def test_a_docx_whose_styles_part_is_a_bomb_is_rejected_before_python_docx_reads_it(tmp_path):
    import shutil

    bomb = tmp_path / "bomb.docx"
    shutil.copy(REPO / "sample/insurance/documents/product-sheet.docx", bomb)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/glossary.xml", b"<w:glossary>" + b" " * (8 << 20))  # 8 MiB of spaces, a few KB packed
    (row,), _ = read(bomb)
    assert row["reason"] == "decompression_limit" and "word/glossary.xml inflates" in row["detail"] and str(bomb) in row["detail"]
    (ok,), _ = read(REPO / "sample/insurance/documents/product-sheet.docx")  # the real one, under the limits
    assert ok.get("reason") is None and ok["text"]
