"""`corpus decontaminate`: eval items found verbatim, reformatted or in part; near misses not; bad eval input."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import polars as pl
import pytest

from corpus.cli import main
from tests.test_filter import c4_texts, make_dataset

ANSWER = ("A deductible is the amount you pay for covered health care services before your insurance plan starts to pay. "
          "With a 2,000 dollar deductible, for example, you pay the first 2,000 dollars of covered services yourself.")  # fmt: skip
ACCENTED = "Le café de la rue a une carte très variée et le résumé du menu est affiché à l'entrée pour les clients."
QUESTION = "How does the deductible work in a Marketplace health plan?"  # 10 words: shorter than a 13-gram
ITEMS = [
    {"id": "q1", "prompt": QUESTION, "response": ANSWER},
    {"id": "q2", "instruction": "Explain what a premium is.", "input": "", "output": "The premium is the amount you pay each month to your insurer to keep your health plan active, whether or not you use it."},
    {"id": "q3", "messages": [{"role": "user", "content": "What is coinsurance?"},
                              {"role": "assistant", "content": [{"type": "text", "text": "Coinsurance is your share of the costs of a covered health care service, calculated as a percent of the allowed amount for the service."}]}]},
    {"id": "q5", "text": unicodedata.normalize("NFC", ACCENTED)},
    {"id": "q4", "conversations": [{"from": "human", "value": "Yes"}, {"from": "gpt", "value": "1 2 3 4 5 6 7 8"}]},
]  # fmt: skip


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _docs() -> dict[str, str]:
    clean = c4_texts()
    words = ANSWER.split()
    return {
        "verbatim": clean[0] + "\n" + ANSWER + "\n" + clean[1],
        "reformatted": clean[2] + "\n" + _wrap(ANSWER.upper().replace(",", "").replace(".", " -"), 31) + "\n",
        "fullwidth": clean[3] + " " + "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in ANSWER),
        "decomposed": unicodedata.normalize("NFD", ACCENTED),  # the item is composed (NFC)
        "split_lines": "\n".join(ANSWER.split(" ")),  # one word a line
        "partial": clean[4] + " " + " ".join(words[7:32]) + " " + clean[5],  # a 25-word window in a long page
        "short_item_whole": "Questions people ask: how does the deductible work in a Marketplace health plan? Ask us.",
        "near_miss": clean[6] + " " + " ".join(words[:12]) + ". " + clean[7],  # 12 words: below the 13-gram
        "common_words": "You pay for covered health care services. The amount you pay each month is small.",
        "numbers": "Steps: 1 2 3 4 5 6 7 8 and then 9.",
        "clean": clean[8],
    }


@pytest.fixture
def setup(tmp_path) -> tuple[Path, Path]:
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in ITEMS), encoding="utf-8")
    docs = _docs()
    inp = make_dataset(tmp_path / "in", [{"id": name, "text": text} for name, text in docs.items()])
    return inp, eval_file


def _run(inp: Path, out: Path, *args: str) -> int:
    return main(["-q", "decontaminate", str(inp), "-o", str(out), *args])


def test_every_form_of_an_item_is_found_and_near_misses_are_not(setup, tmp_path):
    inp, eval_file = setup
    assert _run(inp, tmp_path / "out", "--against", str(eval_file)) == 0
    rejected = pl.read_parquet(tmp_path / "out" / "rejected")
    kept = pl.read_parquet(tmp_path / "out" / "data")
    found = set(rejected["id"])
    assert found == {"verbatim", "reformatted", "fullwidth", "decomposed", "split_lines", "partial", "short_item_whole"}
    assert set(kept["id"]) == {"near_miss", "common_words", "numbers", "clean"}
    assert set(rejected["reason"]) == {"contaminated"}
    detail = dict(zip(rejected["id"], rejected["detail"]))
    assert detail["verbatim"].startswith(f"{eval_file}: item q1: \"A deductible is the amount you pay for covered health care services before\"")
    assert "item q1" in detail["short_item_whole"] and "How does the deductible work in a Marketplace health plan" in detail["short_item_whole"]
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    facts = card["stage_facts"]["decontamination"]["by_eval_set"][str(eval_file)]
    assert facts["items"] == 5 and facts["docs_matched"] == 7
    assert [(f["item"], f["docs"]) for f in facts["found"]] == [("q1", 6), ("q5", 1)]
    assert facts["items_unmatchable"] == 1 and facts["unmatchable_examples"] == ["q4"]  # "Yes" / numbers only
    assert card["accounting"][-1] == {**card["accounting"][-1], "docs_in": 11, "kept": 4, "rejected": {"contaminated": 7}}


def test_redact_cuts_the_matching_spans_and_keeps_the_document(setup, tmp_path):
    inp, eval_file = setup
    assert _run(inp, tmp_path / "out", "--against", str(eval_file), "--mode", "redact") == 0
    kept = pl.read_parquet(tmp_path / "out" / "data")
    assert kept.height == 11 and not list((tmp_path / "out" / "rejected").glob("*.parquet"))
    text = dict(zip(kept["id"], kept["text"]))
    clean = c4_texts()
    assert "deductible is the amount" not in text["verbatim"].lower()
    assert text["verbatim"].startswith(clean[0][:200]) and clean[1][-200:] in text["verbatim"]
    assert " ".join(ANSWER.split()[7:32]) not in text["partial"] and clean[5][-100:] in text["partial"]
    note = json.loads(dict(zip(kept["id"], kept["decontamination"]))["verbatim"])
    assert note["removed_chars"] >= len(ANSWER) - 5 and note["items"] == [f"{eval_file}: q1"]
    assert dict(zip(kept["id"], kept["decontamination"]))["clean"] is None
    assert text["clean"] == clean[8]


def test_eval_sources_of_every_kind(tmp_path):
    from corpus.decontaminate.items import read_eval_items

    array = tmp_path / "a.json"
    array.write_text(json.dumps([{"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}], "rejected": "no"}]))
    txt = tmp_path / "prompts.txt"
    txt.write_text("first prompt line\n\nsecond prompt line\n")
    run = tmp_path / "sft-run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "test.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a."}]}) + "\n")
    dataset = make_dataset(tmp_path / "ds", [{"id": "doc-1", "text": "an eval document"}])
    assert [i.texts for i in read_eval_items(array)] == [["hi", "hello there", "no"]]
    assert [(i.name, i.texts) for i in read_eval_items(txt)] == [(f"{txt}:1", ["first prompt line"]), (f"{txt}:3", ["second prompt line"])]
    assert read_eval_items(run)[0].texts == ["q?", "a."] and read_eval_items(run)[0].name.endswith("test.jsonl:1")
    assert [(i.name, i.texts) for i in read_eval_items(dataset)] == [("doc-1", ["an eval document"])]


def test_bad_eval_input_is_one_line_naming_the_file_and_line(setup, tmp_path, capsys):
    inp, _ = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"label": 1, "score": 2}) + "\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n')
    cases = [
        (bad, f"{bad}:2: no eval text in the record (fields: label, score)"),
        (empty, f"{empty}: the eval set holds no items"),
        (broken, f"{broken}:2: not valid JSON"),
        (tmp_path / "nope.jsonl", "no such eval file or folder"),
        (tmp_path / "in", None),  # a dataset folder is a valid eval source
    ]
    for source, message in cases:
        code = _run(inp, tmp_path / f"out-{source.name}", "--against", str(source))
        err = capsys.readouterr().err.strip()
        if message is None:
            continue
        assert code == 2 and message in err and "\n" not in err, err
        assert not (tmp_path / f"out-{source.name}").exists()
    weird = tmp_path / "eval.csv"
    weird.write_text("a,b\n")
    assert _run(inp, tmp_path / "o", "--against", str(weird)) == 2
    assert "an eval file is .json, .jsonl(.gz) or .txt" in capsys.readouterr().err


def test_a_changed_eval_set_redoes_the_stage(setup, tmp_path, capsys):
    inp, eval_file = setup
    assert _run(inp, tmp_path / "out", "--against", str(eval_file)) == 0
    assert _run(inp, tmp_path / "out", "--against", str(eval_file)) == 0  # up to date
    eval_file.write_text(json.dumps({"text": "something else entirely, of more than a few words"}) + "\n")
    assert _run(inp, tmp_path / "out", "--against", str(eval_file)) == 2  # another eval set: not silently reused
    assert "made by another configuration" in capsys.readouterr().err


def test_pipeline_stage_validates():
    from corpus.decontaminate import DecontaminateConfig
    from corpus.stages import stage

    assert stage("decontaminate").config is DecontaminateConfig
    with pytest.raises(ValueError):
        DecontaminateConfig(against=[])
    assert DecontaminateConfig(against=["x.jsonl"]).ngram == 13
