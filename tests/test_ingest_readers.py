"""Each reader on small real files, good and malformed: every record ends kept or rejected with a reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from corpus.errors import CorpusError
from corpus.ingest import extract_main_text
from corpus.ingest.formats import FileTask, detect_format, plan_ingest
from corpus.ingest.readers import READERS, ReadStats

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def read(path: Path, fmt: str | None = None, text_key: str = "text") -> tuple[list[dict], ReadStats]:
    fmt = fmt or detect_format(path)
    stats = ReadStats()
    records = list(READERS[fmt](FileTask(str(path), fmt, "s", "d", text_key), stats, extract_main_text))
    return records, stats


def reasons(records: list[dict]) -> list[str | None]:
    return [r.get("reason") for r in records]


# ---------------------------------------------------------------- format detection


@pytest.mark.parametrize(
    "name,expected",
    [("a.jsonl", "jsonl"), ("a.jsonl.gz", "jsonl"), ("a.jsonl.zst", "jsonl"), ("a.parquet", "parquet"),
     ("a.warc.gz", "warc"), ("a.warc", "warc"), ("a.wet.gz", "warc"), ("a.arc", "warc"), ("a.md", "md"),
     ("a.rst.txt", "txt"), ("a.txt", "txt"), ("a.html", "html"), ("a.htm", "html")],
)  # fmt: skip
def test_format_by_name(tmp_path, name, expected):
    path = tmp_path / name
    path.write_bytes(b"x")
    assert detect_format(path) == expected


def test_format_sniffed_from_content_when_the_name_says_nothing():
    # a gzipped WARC named .bad
    assert detect_format(FIXTURES / "warc" / "example-bad.warc.gz.bad") == "warc"


def test_unknown_format_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_bytes(b"\x00\x01binary")
    with pytest.raises(CorpusError, match="notes.xyz: unknown format"):
        plan_ingest([path], "s", "d")


def test_missing_path_is_an_error_naming_it(tmp_path):
    with pytest.raises(CorpusError, match="nope.jsonl: no such file"):
        plan_ingest([tmp_path / "nope.jsonl"], "s", "d")


def test_folder_lists_files_without_documents_as_skipped(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\nbody text")
    (tmp_path / "data.yml").write_text("k: v")
    (tmp_path / ".hidden.md").write_text("x")
    plan = plan_ingest([tmp_path], "s", "d")
    assert [Path(f.path).name for f in plan.files] == ["a.md"]
    assert plan.skipped == [{"path": str(tmp_path / "data.yml"), "reason": "unknown_format"}]


# ---------------------------------------------------------------- JSONL


def _jsonl_lines() -> bytes:
    real = (FIXTURES / "jsonl" / "c4_demo_head20.jsonl").read_bytes().splitlines()[:3]
    bad = [
        b'{"text": "unterminated',  # invalid JSON
        b"[1, 2, 3]",  # not an object
        b'{"body": "no text field"}',
        b'{"text": 42}',
        b'{"text": "caf\xe9 latin-1 byte"}',  # invalid UTF-8
        b"",  # blank line: not a record
        b'{"text": "   "}',
        b'{"text": "kept", "id": "src-1", "url": "https://example.org/a", "lang": "en", "extra": 1}',
    ]
    return b"\n".join(real + bad) + b"\n"


def test_jsonl_good_and_malformed_lines(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_jsonl_lines())
    records, stats = read(path)
    assert reasons(records) == [None, None, None, "invalid_json", "invalid_record", "missing_text",
                                "invalid_text", "invalid_utf8", "empty_text", None]  # fmt: skip
    assert records[3]["detail"].startswith(f"{path}:4:")
    assert records[7]["detail"].startswith(f"{path}:8:")
    last = records[-1]
    assert last["url"] == "https://example.org/a" and last["lang"] == "en"
    assert last["metadata"] == {"source_id": "src-1", "extra": 1}
    assert stats.skipped_records == {"blank_line": 1}


def test_jsonl_gz_and_zst_read_the_same(tmp_path):
    raw = _jsonl_lines()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    plain, _ = read(tmp_path / "a.jsonl.gz")
    zst, _ = read(tmp_path / "a.jsonl.zst")
    assert [r["text"] for r in plain] == [r["text"] for r in zst]
    assert len(plain) == 10


def test_truncated_gzip_keeps_what_was_read_and_rejects_the_rest(tmp_path):
    raw = (FIXTURES / "jsonl" / "c4_demo_head20.jsonl").read_bytes()
    compressed = gzip.compress(raw)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    records, _ = read(path)
    assert records[-1]["reason"] == "truncated_file"
    assert str(path) in records[-1]["detail"]
    assert all(r.get("reason") is None for r in records[:-1])
    assert 0 < len(records) - 1 < 20


# ---------------------------------------------------------------- Parquet


def test_parquet_rows_and_columns(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["first doc", "", "third"], "url": ["u1", None, None],
                             "score": [1.0, 2.0, 3.0]}), path)  # fmt: skip
    records, _ = read(path)
    assert reasons(records) == [None, "empty_text", None]
    assert records[0]["metadata"] == {"source_id": "a", "score": 1.0}
    assert records[0]["url"] == "u1"


def test_parquet_without_text_column_is_rejected_with_reason(tmp_path):
    path = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    records, _ = read(path)
    assert reasons(records) == ["missing_text"]
    assert "notext.parquet" in records[0]["detail"]


def test_corrupt_parquet_is_rejected_not_raised(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": ["a"] * 100}), good)
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(good.read_bytes()[:-40])
    records, _ = read(path, "parquet")
    assert reasons(records) == ["unreadable_file"]


# ---------------------------------------------------------------- Markdown, text, HTML


def test_markdown_front_matter_becomes_metadata():
    (rec,), _ = read(FIXTURES / "md" / "0100-01-01-premium-es.md")
    assert rec["lang"] == "es"
    assert rec["metadata"]["title"] == "Prima"
    assert rec["text"].startswith("La cantidad que debe pagar")
    assert "---" not in rec["text"]


def test_markdown_with_broken_front_matter_is_rejected(tmp_path):
    path = tmp_path / "bad.md"
    path.write_text("---\ntitle: [unclosed\n---\nbody\n")
    (rec,), _ = read(path)
    assert rec["reason"] == "invalid_front_matter"
    assert str(path) in rec["detail"]


def test_text_file_with_invalid_utf8_is_rejected(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème".encode("latin-1"))
    (rec,), _ = read(path)
    assert rec["reason"] == "invalid_utf8"
    assert "byte 3" in rec["detail"]


def test_rst_text_is_kept_verbatim():
    path = FIXTURES / "rst" / "appetite.rst.txt"
    (rec,), _ = read(path)
    assert rec.get("reason") is None
    assert rec["text"] == path.read_text()


def test_html_main_text_is_extracted():
    (rec,), _ = read(FIXTURES / "html" / "prof-pc.de.html")
    assert rec.get("reason") is None
    # evaldata.json for this page: these snippets belong to the main text, the last does not
    for snippet in ("Liebe_r Besucher_in", "Doch seitdem ist viel Zeit", "Thanks for All the Fish"):
        assert snippet in rec["text"]
    assert "Datenschutzerklärung" not in rec["text"]


def test_html_without_text_is_rejected(tmp_path):
    path = tmp_path / "empty.html"
    path.write_text("<html><body><script>var x = 1;</script></body></html>")
    (rec,), _ = read(path)
    assert rec["reason"] == "empty_extraction"


# ---------------------------------------------------------------- WARC / WET / ARC


def test_wet_conversion_record_is_a_document():
    records, stats = read(FIXTURES / "warc" / "whirlwind.warc.wet.gz")
    assert len(records) == 1 and records[0].get("reason") is None
    assert records[0]["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert "Escopete" in records[0]["text"]
    assert stats.skipped_records == {"warc_warcinfo": 1}


def test_warc_response_html_is_extracted():
    records, stats = read(FIXTURES / "warc" / "whirlwind.warc.gz")
    assert [r.get("reason") for r in records] == [None]
    assert "Escopete" in records[0]["text"]
    assert stats.skipped_records == {"warc_warcinfo": 1, "warc_request": 1, "warc_metadata": 1}


def test_clipped_warc_record_is_rejected_as_truncated():
    records, _ = read(FIXTURES / "warc" / "clipped.warc.gz")
    assert reasons(records) == ["truncated_record"]
    assert "bytes missing" in records[0]["detail"] and "clipped.warc.gz#record 1" in records[0]["detail"]


EXPECTED_WARC = {
    # file: reasons of its document records, in order (None = kept)
    "example-bad-non-chunked.warc.gz": ["warc_parse_error"],
    "example-bad.warc.gz.bad": ["warc_parse_error"],
    "example-wrong-chunks.warc.gz": ["truncated_record", "warc_parse_error"],
    "example-space-in-url.arc": ["truncated_record"],
    "example.warc.gz": [None],
    "example.arc.gz": [None],
    "example-digest.warc": [],
    "post-test.warc.gz": ["unsupported_content_type"] * 3,
    "bad.arc": ["unsupported_content_type"] * 3,
}


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "warc").iterdir()))
def test_every_warc_fixture_ends_kept_or_rejected(name):
    """Every malformed WARC/ARC of warcio's tests: no exception, each record kept or rejected with a reason."""
    records, _ = read(FIXTURES / "warc" / name, "warc")
    for rec in records:
        assert rec.get("reason") is None or rec["detail"].startswith(str(FIXTURES / "warc" / name))
        assert rec.get("reason") is not None or rec["text"].strip()
    if name in EXPECTED_WARC:
        assert reasons(records) == EXPECTED_WARC[name]


def test_rejected_record_metadata_is_json_serialisable():
    records, _ = read(FIXTURES / "warc" / "example-wrong-chunks.warc.gz")
    for rec in records:
        json.dumps(rec.get("metadata") or {})


def test_a_crawl_folder_is_read_from_its_warc_subfolder(tmp_path):
    import shutil

    (tmp_path / "warc").mkdir()
    shutil.copy(FIXTURES / "warc" / "whirlwind.warc.gz", tmp_path / "warc")
    (tmp_path / "crawl_state.sqlite").write_bytes(b"")
    (tmp_path / "README.md").write_text("# the crawl's card")
    (tmp_path / "crawl_log.jsonl").write_text('{"url": "x"}\n')
    plan = plan_ingest([tmp_path], "s", "d")
    assert [Path(f.path).name for f in plan.files] == ["whirlwind.warc.gz"]


def test_a_dataset_folder_is_not_ingested_again(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "card.json").write_text("{}")
    with pytest.raises(CorpusError, match="is a dataset folder already"):
        plan_ingest([tmp_path], "s", "d")
