"""`corpus instruct`: rule-built instruction pairs from the bundled healthcare.gov sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.cli import main as corpus_main
from corpus.instruct import faq_sections, pairs_of_document
from train.formats import LoadReport, load_sft

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def instruct_out(tmp_path_factory) -> Path:
    """`corpus run pipelines/quickstart.yaml` (into a temporary folder), then `corpus instruct` on its output."""
    base = tmp_path_factory.mktemp("instruct")
    pipeline = (REPO / "pipelines" / "quickstart.yaml").read_text(encoding="utf-8")
    pipeline = pipeline.replace("../sample/", f"{REPO}/sample/").replace("output: ../out/quickstart", f"output: {base / 'qs'}")
    (base / "quickstart.yaml").write_text(pipeline, encoding="utf-8")
    assert corpus_main(["-q", "run", str(base / "quickstart.yaml")]) == 0
    assert corpus_main(["-q", "instruct", str(base / "qs" / "01-length_filter"), "-o", str(base / "pairs")]) == 0
    return base / "pairs"


def test_sample_yields_at_least_300_insurance_pairs(instruct_out):
    card = json.loads((instruct_out / "card.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (instruct_out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == card["pairs"] >= 300
    assert card["by_domain"] == {"insurance": len(rows)}
    assert set(card["by_rule"]) == {"glossary_term", "title_body", "faq_heading"}
    assert sum(card["by_rule"].values()) == sum(card["by_lang"].values()) == len(rows)
    prompts = {r["messages"][0]["content"] for r in rows}
    assert "What is Minimum value?" in prompts and "¿Qué es Valor mínimo?" in prompts
    assert "Are the rules the same in each state?" in prompts  # a Q&A page: its title is the question
    assert not any("](" in r["messages"][1]["content"] for r in rows if r["rule"] == "glossary_term")
    readme = (instruct_out / "README.md").read_text(encoding="utf-8")
    assert "| glossary_term |" in readme and "## Examples" in readme


def test_pairs_file_is_sft_input(instruct_out):
    report = LoadReport()
    rows = load_sft([instruct_out / "pairs.jsonl"], report=report)
    assert report.formats == {"messages": len(rows)} and not report.skipped


def test_faq_headings_take_the_text_up_to_the_next_heading_of_their_level():
    body = "Intro.\n\n## Who can apply?\n\nAnyone living here.\n\n### Details\n\nMore.\n\n## Costs\n\nSee below.\n\n## Is it free?\n\nNo."
    assert list(faq_sections(body)) == [("Who can apply?", "Anyone living here.\n\n### Details\n\nMore."), ("Is it free?", "No.")]


def test_rules_per_page_kind():
    glossary = list(pairs_of_document("Lo que paga.", {"title": "Prima", "layout": "glossary-word"}, "es", ["glossary_term", "title_body"]))
    assert glossary == [("glossary_term", "¿Qué es Prima?", "Lo que paga.")]
    page = list(pairs_of_document("Body text here.", {"title": "Getting started"}, "en", ["title_body"]))
    assert page == [("title_body", "Tell me about Getting started.", "Body text here.")]


def test_instruct_is_a_pipeline_stage(tmp_path):
    glossary = REPO / "sample" / "insurance" / "healthcare-gov-2013" / "glossary"
    (tmp_path / "p.yaml").write_text(f"""
name: gl
output: out
sources: [{{path: {glossary}, source: hc, domain: insurance}}]
stages:
  - ingest: {{}}
  - instruct: {{rules: [glossary_term]}}
""", encoding="utf-8")
    assert corpus_main(["-q", "run", str(tmp_path / "p.yaml")]) == 0
    card = json.loads((tmp_path / "out" / "01-instruct" / "card.json").read_text(encoding="utf-8"))
    assert card["by_rule"] == {"glossary_term": card["pairs"]} and card["pairs"] > 300


def test_unknown_rule_is_a_clear_error(tmp_path, capsys):
    rc = corpus_main(["instruct", str(tmp_path), "-o", str(tmp_path / "o"), "--rules", "title_body,guess"])
    assert rc == 2 and "unknown rule(s) guess" in capsys.readouterr().err


def test_split_holds_pairs_out_and_drops_train_pairs_that_share_their_answers():
    from corpus.instruct import split_pairs

    answer = "The premium is the amount you pay each month to your insurer to keep your health plan active."
    pairs = [{"messages": [{"role": "user", "content": f"Question number {i} about plans?"},
                           {"role": "assistant", "content": f"Plan {i} covers visits {i + 1} to {i + 9} and the drugs on list {i * 7}."}]}
             for i in range(200)]  # fmt: skip
    pairs += [{"messages": [{"role": "user", "content": f"What is a premium ({i})?"}, {"role": "assistant", "content": answer}]} for i in range(6)]
    train, test, dropped = split_pairs(pairs, 0.2, seed=0)
    assert 20 <= len(test) <= 60 and len(train) + len(test) + dropped == len(pairs)
    premium_in_test = any(p["messages"][1]["content"] == answer for p in test)
    assert premium_in_test  # with 6 copies, at least one lands in the test split at seed 0
    assert not any(p["messages"][1]["content"] == answer for p in train)
    assert 1 <= dropped <= 5  # only the other copies of the held-out answer
    assert split_pairs(pairs, 0.2, seed=0) == (train, test, dropped)  # the same split on every run
