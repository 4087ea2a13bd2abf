"""Data cards: numbers recomputed independently, validate, diff, lineage, show, and the HTML in a real browser."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pyarrow.parquet as pq
import pytest

from corpus.cards import LIMITATIONS_HEADING, commands
from corpus.execution import run_stage
from corpus.executors import ExecutorConfig
from corpus.filter.length import LengthFilterConfig, length_filter_job
from corpus.ingest import ingest_job
from tests.conftest import read_folder, run_cli


@pytest.fixture
def two_stages(small_corpus, tmp_path):
    sources = [
        {"paths": [small_corpus / "insurance"], "source": "hc", "domain": "insurance"},
        {"paths": [small_corpus / "general"], "source": "py", "domain": "general"},
    ]
    ingested = tmp_path / "datasets" / "ingested"
    run_stage(ingest_job(sources, "ingested"), ingested, ExecutorConfig(tasks=2, workers=1))
    filtered = tmp_path / "datasets" / "filtered"
    run_stage(length_filter_job([ingested], "filtered", LengthFilterConfig(min_chars=300)), filtered, ExecutorConfig(tasks=2, workers=1))
    return ingested, filtered


def test_card_numbers_equal_an_independent_recount(two_stages):
    for folder in two_stages:
        card = json.loads((folder / "card.json").read_text())
        df = pl.read_parquet(folder / "data" / "*.parquet")
        assert card["stats"]["docs"] == df.height
        assert card["stats"]["chars"] == int(df["text"].str.len_chars().sum())
        for column, key in (("domain", "by_domain"), ("source", "by_source")):
            recount = {k: n for k, n in df.group_by(column).len().iter_rows()}
            assert {k: v["docs"] for k, v in card["stats"][key].items()} == recount
        langs = {(k or "unknown"): n for k, n in df.group_by("lang").len().iter_rows()}
        assert {k: v["docs"] for k, v in card["stats"]["by_lang"].items()} == langs
        assert sum(h["docs"] for h in card["stats"]["length_histogram"]) == df.height
        rejected = read_folder(folder, "rejected")
        assert card["rejected_stats"]["docs"] == rejected.height
        for plot in card["plots"]:
            assert plot.endswith(".svg") and (folder / plot).read_bytes().startswith(b"<svg ")


def test_svg_plots_are_well_formed_escaped_and_deterministic(tmp_path):
    import xml.etree.ElementTree as ET

    from corpus.cards.plots import bars, columns, write_plots

    ns = "{http://www.w3.org/2000/svg}"
    sources = {"a & b <c>": 0.6, 'say "hi"': 0.3, "x" * 80: 0.1}
    card = {
        "stats": {"docs": 10, "length_histogram": [{"chars": "0-100", "docs": 4}, {"chars": "100-300", "docs": 6}],
                  "by_domain": {"insurance": {"share_chars": 1.0}},
                  "by_source": {k: {"share_chars": v} for k, v in sources.items()}},
        "rejected_stats": {"by_reason": {"empty": 3, "too_short": 0}},
        "stage_facts": {"mix_shares": {"insurance": {"target": 0.5, "achieved": 0.4}, "general": {"target": 0.5}}},
    }  # fmt: skip
    paths = write_plots(tmp_path, card)
    (tmp_path / "again").mkdir()
    assert write_plots(tmp_path / "again", card) == paths
    bars_per_plot = {"length_histogram": 2, "share_domain": 1, "share_source": 3, "rejected_by_reason": 2, "mix_shares": 4}
    assert paths == [f"plots/{name}.svg" for name in bars_per_plot]
    for path, n_bars in zip(paths, bars_per_plot.values()):
        data = (tmp_path / path).read_bytes()
        root = ET.fromstring(data)
        width, height = float(root.get("width")), float(root.get("height"))
        assert root.tag == ns + "svg" and width > 0 and height > 0
        assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
        rects = root.findall(f".//{ns}rect")
        legend = 2 if path.endswith("mix_shares.svg") else 0  # one swatch per series
        assert rects[0].get("fill") == "#fff" and len(rects) == 1 + n_bars + legend
        assert (tmp_path / "again" / path).read_bytes() == data
    texts = [t.text for t in ET.parse(tmp_path / "plots" / "share_source.svg").iter(ns + "text")]
    assert "a & b <c>" in texts and 'say "hi"' in texts
    assert any(t.startswith("xxx") and t.endswith("\u2026") and len(t) < 80 for t in texts)
    assert b"a &amp; b &lt;c&gt;" in (tmp_path / "plots" / "share_source.svg").read_bytes()
    for svg in (bars("none & <all>", [], [], "documents"), columns("none & <all>", [], {"documents": []}, "documents")):
        root = ET.fromstring(svg)
        assert len(root.findall(f".//{ns}rect")) == 1 and root.find(f"{ns}text").text == "none & <all>"
    assert write_plots(tmp_path / "again", {"stats": {"docs": 0}}) == []


def test_readme_has_hugging_face_front_matter_and_sections(two_stages):
    import yaml

    text = (two_stages[1] / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["pretty_name"] == "filtered"
    langs = pl.read_parquet(two_stages[1] / "data" / "*.parquet")["lang"].drop_nulls().unique().sort().to_list()
    assert front["language"] == langs and langs
    assert front["size_categories"] == ["n<1K"]
    assert front["source_datasets"] == ["ingested"]
    assert front["configs"][0]["data_files"][0]["path"] == "data/*.parquet"
    for section in ("## Sources and lineage", "## Accounting per stage", "## Distributions", "## Example openings", LIMITATIONS_HEADING):
        assert section in text


def test_validate_passes_then_catches_a_tampered_shard(two_stages):
    _, filtered = two_stages
    assert commands.validate(filtered) == []
    proc = run_cli("card", "validate", str(filtered))
    assert proc.returncode == 0, proc.stdout + proc.stderr

    shard = sorted((filtered / "data").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)  # one document quietly removed
    problems = commands.validate(filtered)
    assert any("sha256" in p and shard.name in p for p in problems)
    assert any("rows, the card says" in p for p in problems)
    proc = run_cli("card", "validate", str(filtered))
    assert proc.returncode == 1
    assert "mismatch" in proc.stderr


def test_validate_catches_a_missing_file_and_an_edited_card(two_stages):
    _, filtered = two_stages
    card_path = filtered / "card.json"
    card = json.loads(card_path.read_text())
    card["stats"]["docs"] += 1
    card_path.write_text(json.dumps(card))
    problems = commands.validate(filtered)
    assert any("card.json was edited" in p for p in problems)
    assert any("'stats' differs" in p for p in problems)
    sorted((filtered / "rejected").glob("*.parquet"))[0].unlink()
    assert any("listed in the card but missing" in p for p in commands.validate(filtered))


def test_known_limitations_survive_regeneration(two_stages):
    ingested, filtered = two_stages
    readme = filtered / "README.md"
    text = readme.read_text().replace(
        LIMITATIONS_HEADING + "\n\n", LIMITATIONS_HEADING + "\n\nSpanish glossary entries are short; check them.\n\n"
    )
    readme.write_text(text)
    run_stage(length_filter_job([ingested], "filtered", LengthFilterConfig(min_chars=200)), filtered,
              ExecutorConfig(tasks=2, workers=1), overwrite=True)  # fmt: skip
    assert "Spanish glossary entries are short; check them." in readme.read_text()
    assert json.loads((filtered / "card.json").read_text())["config"]["min_chars"] == 200


def test_diff_and_lineage(two_stages):
    ingested, filtered = two_stages
    lines = commands.diff(ingested, filtered)
    assert any(line.startswith("docs: ") for line in lines)
    assert "config min_chars: null -> 300" in lines
    assert "stage length_filter: only in B" in lines
    chain = commands.lineage(filtered)
    assert chain[0].startswith("filtered [length_filter]")
    assert chain[1].strip().startswith("ingested [ingest]")
    assert sum("raw " in line for line in chain) == 2
    # the tree of datasets can move as a whole: lineage paths are relative
    moved = filtered.parent.parent / "moved"
    shutil.move(filtered.parent, moved)
    chain = commands.lineage(moved / "filtered")
    assert "missing" not in chain[1]


def test_show_prints_the_numbers(two_stages):
    from rich.console import Console

    console = Console(record=True, width=120)
    commands.show(two_stages[1], console=console)
    out = console.export_text()
    card = json.loads((two_stages[1] / "card.json").read_text())
    assert f"{card['stats']['docs']:,} documents" in out
    assert "Accounting per stage" in out and "length_filter" in out


def test_card_commands_on_a_missing_folder_are_one_line_errors(tmp_path):
    proc = run_cli("card", "show", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"corpus: error: {tmp_path / 'nope'}: no such folder"


def _browser():
    selenium = pytest.importorskip("selenium", reason="selenium is not installed")
    del selenium
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.skip("Debian packages chromium and chromium-driver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,2400"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.mark.slow
def test_html_card_renders_in_chromium_with_every_image(two_stages, tmp_path):
    _, filtered = two_stages
    html = commands.to_html(filtered, tmp_path / "card.html")
    assert "plots/" not in html.read_text()  # self-contained: every plot is a data URI
    driver = _browser()
    try:
        driver.get(html.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        title = driver.title
        driver.save_screenshot(str(tmp_path / "card.png"))
        headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
    finally:
        driver.quit()
    card = json.loads((filtered / "card.json").read_text())
    assert len(images) == len(card["plots"]) >= 3
    assert all(complete and w > 0 and h > 0 for complete, w, h in images)
    assert title == "filtered - data card"
    assert "Accounting per stage" in headings
    assert (tmp_path / "card.png").stat().st_size > 10_000


def test_card_commands_on_tokenizer_and_shards_folders(two_stages, tmp_path):
    _, filtered = two_stages
    tok, shards = tmp_path / "tok", tmp_path / "shards"
    assert run_cli("tokenizer", "train", str(filtered), "-o", str(tok), "--vocab-size", "400", "--no-compare").returncode == 0
    assert run_cli("tokenize", str(filtered), "-o", str(shards), "--tokenizer", str(tok)).returncode == 0
    for folder in (tok, shards):
        show = run_cli("card", "show", str(folder))
        assert show.returncode == 0 and "Traceback" not in show.stderr, show.stderr
        assert run_cli("card", "validate", str(folder)).returncode == 0
        chain = run_cli("card", "lineage", str(folder)).stdout.splitlines()
        assert chain[1].strip().startswith("filtered [length_filter]")
    shard = sorted(shards.glob("train-*.arrow"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    proc = run_cli("card", "validate", str(shards))
    assert proc.returncode == 1
    assert shard.name in proc.stdout


def test_diff_keeps_every_accounting_row_of_a_repeated_stage(tmp_path):
    from corpus.cards.commands import diff

    def card(folder, ingests):
        folder.mkdir()
        rows = [{"stage": "ingest", "docs_in": n, "kept": n, "rejected": {}} for n in ingests]
        rows.append({"stage": "mix", "docs_in": sum(ingests), "kept": 10, "rejected": {}})
        (folder / "card.json").write_text(json.dumps({"name": folder.name, "stage": "mix", "stats": {"docs": 10},
                                                      "accounting": rows, "config": {}}))  # fmt: skip
        return folder

    lines = diff(card(tmp_path / "a", [454, 17]), card(tmp_path / "b", [454, 20]))
    assert "stage ingest #2 in: 17 -> 20 (+17.6%)" in lines
    assert not any(line.startswith("stage ingest in") for line in lines)  # the first ingest did not change
    assert "stage mix in: 471 -> 474 (+0.6%)" in lines
