"""corpus classifier train / corpus classify: fastText classifiers and the stage that applies them."""

from __future__ import annotations

import json
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pytest

from corpus.classify import keep_top_cut, score_table
from corpus.classify.model import (
    NEGATIVE,
    POSITIVE,
    choose_threshold,
    metrics_at,
    roc_auc,
)
from corpus.classify.text import MAX_CHARS, fasttext_lines
from corpus.classify.train import ClassifierConfig, FastTextParams, fit
from corpus.cli import main
from tests.conftest import FIXTURES, SAMPLE, read_folder

QUESTIONS = SAMPLE / "insurance" / "healthcare-gov-2013" / "questions"
PY_DOCS = SAMPLE / "general" / "python-3.11-docs"
C4 = FIXTURES / "jsonl" / "c4_demo_head20.jsonl"
FAST = FastTextParams(epoch=10, bucket=20_000)
_INS = ["deductible", "premium", "coinsurance", "copay", "marketplace", "coverage", "medicaid", "plan", "enrollment", "subsidy"]
_PY = ["python", "function", "class", "module", "import", "list", "dict", "argument", "return", "exception"]
_FILLER = ["the", "a", "of", "to", "and", "in", "for", "is", "you", "your", "with", "on"]


def _texts(words: list[str], n: int, seed: int) -> list[str]:
    """Varied short documents: domain words among common ones (fastText diverges on a few repeated lines)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words + _FILLER, size=int(rng.integers(12, 30)))) for _ in range(n)]


def _run(*args: str) -> int:
    return main(["-q", *args])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Dataset folders: insurance Q&A pages (positive), Python docs and C4 pages (negative), and a classifier."""
    base = tmp_path_factory.mktemp("classify")
    assert _run("ingest", str(QUESTIONS), "-o", str(base / "ins"), "--source", "hc", "--domain", "insurance") == 0
    assert _run("ingest", str(PY_DOCS / "faq"), str(PY_DOCS / "tutorial"), "-o", str(base / "py"), "--source", "py", "--domain", "general") == 0
    assert _run("ingest", str(C4), "-o", str(base / "web"), "--source", "c4", "--domain", "web") == 0
    assert _run("classifier", "train", "--positive", str(base / "ins"), "--negative", str(base / "py"), str(base / "web"),
                "-o", str(base / "clf"), "--name", "insurance") == 0  # fmt: skip
    return base


# ---------------------------------------------------------------- normalisation and the threshold


def test_normalisation_lowercases_splits_punctuation_and_joins_lines():
    lines = fasttext_lines(["The DEDUCTIBLE:\nis $1,500.\u00a0ﬁne\r\n\tＯK", None, " \n ", "word " * 5000])
    assert lines[0] == "the deductible : is $ 1 , 500 . fine ok"
    assert lines[1] == "" and lines[2] == ""
    assert len(lines[3]) <= MAX_CHARS and lines[3].endswith("word") and "\n" not in lines[3]


def test_training_and_scoring_use_the_same_normalisation(seeds, monkeypatch):
    """The lines fastText trains on are fasttext_lines(text), and the stage scores fasttext_lines(text):
    changing the normalisation on either side fails here."""
    import corpus.classify.model as model_mod

    captured = {}
    real = model_mod.train_fasttext

    def spy(lines, labels, work, params, seed):
        captured["lines"] = list(lines)
        return real(lines, labels, work, params, seed)

    monkeypatch.setattr("corpus.classify.train.train_fasttext", spy)
    pos = [t.title() + "!\nLine: two" for t in _texts(_INS, 30, 1)]
    neg = [t.upper() + ";\n\tprint(X)" for t in _texts(_PY, 30, 2)]
    result = fit(pos, neg, ClassifierConfig(fasttext=FAST), seeds / "w")
    assert set(captured["lines"]) <= set(fasttext_lines(pos + neg))
    model = result["model"]
    texts = ["The DEDUCTIBLE of a plan?\nYes.", "def g(): Return 1", ""]
    scores, empty = score_table(pa.table({"text": texts}), _model_file(seeds, model))
    for text, score in zip(texts[:2], scores[:2]):
        labels, probs = model.predict(fasttext_lines([text])[0], k=2)
        assert score == pytest.approx(min(1.0, float(dict(zip(labels, probs))[POSITIVE])), abs=1e-7)  # fastText can say 1.00001
    assert empty.tolist() == [False, False, True] and scores[2] == 0


def _model_file(seeds: Path, model) -> str:
    path = seeds / "spy-model.bin"
    model.save_model(str(path))
    return str(path)


def test_threshold_best_f1_and_min_precision_on_constructed_scores():
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
    truth = np.array([True, True, False, True, True, False, False, True, False])
    t, rule = choose_threshold(scores, truth)
    # best F1: accept down to 0.6 (4 of 5 positives, 1 false positive: F1 0.8), halfway to 0.4
    assert t == pytest.approx(0.5) and "best F1" in rule
    assert metrics_at(scores, truth, t)["f1"] == pytest.approx(0.8)
    t, rule = choose_threshold(scores, truth, min_precision=1.0)
    assert t == pytest.approx(0.85) and "precision >= 1" in rule  # only the top two are surely positive
    t, _ = choose_threshold(scores, truth, min_precision=0.75)
    assert t == pytest.approx(0.5)  # the lowest cut with precision 0.8 >= 0.75
    assert roc_auc(np.array([0.1, 0.9, 0.5]), np.array([False, True, True])) == 1.0
    assert keep_top_cut(np.array([0.1, 0.9, 0.5, 0.7], np.float32), 0.5) == pytest.approx(0.7)


def test_recall_rounds_add_positives(seeds):
    pos, neg = _texts(_INS, 30, 3), _texts(_PY, 30, 4)
    pool = _texts(_INS, 10, 5) + _texts(_PY, 10, 6)
    result = fit(pos, neg, ClassifierConfig(rounds=2, round_threshold=0.5, fasttext=FAST), seeds / "w", pool_texts=pool)
    rounds = result["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["joined"] > 0 and rounds[1]["train_positives"] == rounds[0]["train_positives"] + rounds[1]["joined"]
    assert result["seeds"]["pool"]["joined"] == sum(r["joined"] for r in rounds)


def test_training_is_deterministic(seeds):
    pos, neg = _texts(_INS, 30, 7), _texts(_PY, 30, 8)
    a = fit(pos, neg, ClassifierConfig(fasttext=FAST), seeds / "w")["held_out_scores"]
    b = fit(pos, neg, ClassifierConfig(fasttext=FAST), seeds / "w")["held_out_scores"]
    assert a == b


# ---------------------------------------------------------------- the classifier folder and its card


def test_classifier_folder_loads_with_plain_fasttext_and_its_card_explains_it(seeds):
    clf = seeds / "clf"
    model = fasttext.load_model(str(clf / "model.bin"))
    assert set(model.get_labels()) == {POSITIVE, NEGATIVE}
    card = json.loads((clf / "card.json").read_text())
    assert card["stage"] == "classifier" and card["classifier_format"] == 1 and card["name"] == "insurance"
    assert card["seeds"]["positive"]["read"] > 0 and card["seeds"]["negative"]["held_out"] >= 1
    assert {i["kind"] for i in card["inputs"]["negative"]} == {"dataset"} and all(i["fingerprint"] for i in card["inputs"]["positive"])
    for key in ("precision", "recall", "f1", "roc_auc"):
        assert 0 <= card["held_out"][key] <= 1
    assert card["held_out"]["f1"] >= 0.9
    assert 0 < card["threshold"]["value"] < 1 and "best F1" in card["threshold"]["rule"]
    assert card["top_ngrams"]["positive"] and card["top_ngrams"]["negative"]
    assert sum(card["held_out"]["histogram"]["positive"]) == card["held_out"]["docs"]["positive"]
    readme = (clf / "README.md").read_text()
    for heading in ("## Held-out quality", "## Seeds", "## What the model learned", "plots/held_out_scores.svg"):
        assert heading in readme
    assert (clf / "plots" / "held_out_scores.svg").read_text().startswith("<svg")
    assert not list(clf.rglob("*.txt"))  # fastText's training file was removed


def test_ngram_rows_are_the_rows_fasttext_averages(seeds):
    """The card's n-gram weights read the rows fastText uses: a line's word and bigram rows (with the
    `</s>` a newline adds) average to fastText's own sentence vector."""
    from corpus.classify.model import bigram_row

    model = fasttext.load_model(str(seeds / "clf" / "model.bin"))
    line = fasttext_lines(["Your deductible and out-of-pocket costs — qué?"])[0]
    words = line.split() + ["</s>"]
    rows = [model.get_word_id(w) for w in words if model.get_word_id(w) >= 0]
    rows += [bigram_row(model, a, b) for a, b in zip(words, words[1:])]
    mean = model.get_input_matrix()[rows].mean(axis=0)
    assert np.abs(mean - model.get_sentence_vector(line)).max() < 1e-6


# ---------------------------------------------------------------- the classify stage


def test_classify_scores_every_row_and_rejects_below_the_threshold(seeds):
    out = seeds / "scored"
    assert _run("classify", str(seeds / "ins"), str(seeds / "web"), "-o", str(out), "--model", str(seeds / "clf"), "--tasks", "2") == 0
    kept, rejected = read_folder(out), read_folder(out, "rejected")
    card = json.loads((out / "card.json").read_text())
    t = card["stage_facts"]["classify"]["cut"]
    assert t == json.loads((seeds / "clf" / "card.json").read_text())["threshold"]["value"]
    assert kept.height and rejected.height
    assert (kept["insurance_score"] >= t).all() and (rejected["insurance_score"] < t).all()
    assert set(rejected["reason"]) == {"insurance_below_threshold"}
    acc = card["accounting"][-1]
    assert acc["docs_in"] == kept.height + rejected.height
    assert kept.filter(kept["domain"] == "insurance").height > 0.8 * kept.height
    # the scores equal plain fastText's on the normalised text
    model = fasttext.load_model(str(seeds / "clf" / "model.bin"))
    rows = kept.vstack(rejected.select(kept.columns))
    for text, score in zip(rows["text"], rows["insurance_score"]):
        labels, probs = model.predict(fasttext_lines([text])[0], k=2)
        assert score == pytest.approx(min(1.0, float(dict(zip(labels, probs))[POSITIVE])), abs=1e-6)  # fastText can say 1.00001
    facts = card["stage_facts"]["classify"]
    assert set(facts["by_domain"]) == {"insurance", "web"} and set(facts["by_source"]) == {"hc", "c4"}
    assert sum(g["docs"] for g in facts["by_source"].values()) == acc["docs_in"]
    assert all(e["score"] >= t for e in facts["just_above"]) and all(e["score"] < t for e in facts["just_below"])
    readme = (out / "README.md").read_text()
    assert "## Classifier scores" in readme and "Just below the cut" in readme
    assert (out / "plots" / "classify_scores_by_domain.svg").is_file()
    # a rerun is up to date
    before = (out / "card.json").stat().st_mtime_ns
    assert _run("classify", str(seeds / "ins"), str(seeds / "web"), "-o", str(out), "--model", str(seeds / "clf"), "--tasks", "2") == 0
    assert (out / "card.json").stat().st_mtime_ns == before


def test_keep_top_keeps_the_share_and_score_only_keeps_everything(seeds):
    both = [str(seeds / "ins"), str(seeds / "web")]
    assert _run("classify", *both, "-o", str(seeds / "top"), "--model", str(seeds / "clf"), "--keep-top", "0.25", "--tasks", "2") == 0
    kept, rejected = read_folder(seeds / "top"), read_folder(seeds / "top", "rejected")
    total = kept.height + rejected.height
    assert kept.height >= int(np.ceil(0.25 * total)) and kept.height <= int(np.ceil(0.25 * total)) + 3  # ties at the cut
    assert kept["insurance_score"].min() >= rejected["insurance_score"].max()
    assert _run("classify", *both, "-o", str(seeds / "all"), "--model", str(seeds / "clf"), "--score-only", "--name", "ins") == 0
    kept = read_folder(seeds / "all")
    assert kept.height == total and not (seeds / "all" / "rejected").exists() or read_folder(seeds / "all", "rejected").height == 0
    assert kept["ins_score"].is_between(0, 1).all()


def test_empty_text_scores_zero_and_is_rejected_with_a_reason(seeds, tmp_path):
    import pyarrow.parquet as pq

    from corpus.document import records_to_table

    folder = tmp_path / "docs"
    (folder / "data").mkdir(parents=True)
    table = records_to_table([{"text": "Your deductible is what you pay before the plan pays."}, {"text": " \n\t "}], "s", "d")
    pq.write_table(table.drop_columns(["reason", "detail"]), folder / "data" / "part-0.parquet")
    (folder / "card.json").write_text(json.dumps({"name": "docs", "stage": "ingest"}))
    assert _run("classify", str(folder), "-o", str(tmp_path / "out"), "--model", str(seeds / "clf"), "--threshold", "0") == 0
    rejected = read_folder(tmp_path / "out", "rejected")
    assert rejected["reason"].to_list() == ["empty_text"] and rejected["insurance_score"].to_list() == [0.0]


# ---------------------------------------------------------------- bad input: one line, exit 2


def _one_line_error(capsys, *args) -> str:
    assert main(["-q", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_bad_input_is_one_line(seeds, capsys, tmp_path):
    ins, web, clf = str(seeds / "ins"), str(seeds / "web"), str(seeds / "clf")
    line = _one_line_error(capsys, "classifier", "train", "--positive", ins, "--positive-domain", "nope", "--negative", web, "-o", str(tmp_path / "c"))
    assert ins in line and "nope" in line
    line = _one_line_error(capsys, "classifier", "train", "--positive", web, "--negative", web, "-o", str(tmp_path / "c"))
    assert "at least 2" in line  # the same documents on both sides: only one class is left
    line = _one_line_error(capsys, "classify", web, "-o", str(tmp_path / "o"), "--model", ins)
    assert ins in line and "not a classifier folder" in line
    bad = tmp_path / "badmodel"
    bad.mkdir()
    (bad / "card.json").write_text((seeds / "clf" / "card.json").read_text())
    (bad / "model.bin").write_bytes(b"this is not a model at all")
    line = _one_line_error(capsys, "classify", web, "-o", str(tmp_path / "o"), "--model", str(bad))
    assert str(bad / "model.bin") in line and "not a fastText model" in line
    old = tmp_path / "old"
    old.mkdir()
    card = json.loads((seeds / "clf" / "card.json").read_text())
    card["classifier_format"] = 0
    (old / "card.json").write_text(json.dumps(card))
    (old / "model.bin").write_bytes((seeds / "clf" / "model.bin").read_bytes())
    line = _one_line_error(capsys, "classify", web, "-o", str(tmp_path / "o"), "--model", str(old))
    assert str(old) in line and "format 0" in line
    line = _one_line_error(capsys, "classify", web, "-o", str(tmp_path / "o"), "--model", clf, "--threshold", "1.5")
    assert "--threshold" in line
    line = _one_line_error(capsys, "classifier", "train", "--positive", str(tmp_path / "missing"), "--negative", web, "-o", str(tmp_path / "c"))
    assert "missing" in line


# ---------------------------------------------------------------- pipelines


def test_pipeline_stages_are_validated(tmp_path):
    from corpus.errors import CorpusError
    from corpus.pipeline import load_pipeline

    _, stages = load_pipeline(Path(__file__).resolve().parents[1] / "pipelines" / "insurance.yaml")
    kinds = [k for k, _ in stages]
    assert kinds[-2:] == ["classifier", "classify"]
    assert stages[-2][1].positive == ["dedup"] and stages[-2][1].negative_domains == ["general", "web"]
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\noutput: out\nsources: [{path: a, source: s, domain: d}]\nstages:\n  - ingest: {}\n"
                   "  - classify: {threshold: 2}\n")  # fmt: skip
    with pytest.raises(CorpusError, match=r"stages\.1\.classify\.threshold"):
        load_pipeline(bad)
