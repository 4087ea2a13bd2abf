"""The filter's profiles: `general` keeps good text of every common kind and removes junk; `web-strict`
is datatrove's rules unchanged. The fixture holds real pages of five kinds and generated junk pages."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from corpus.filter.config import GENERAL_PROFILE, FilterConfig, QualityConfig
from corpus.filter.quality import failing_masks, quality_scores
from tests.test_filter import make_dataset, needs_lid_model, run_filter

KINDS = Path(__file__).parent / "fixtures" / "filter" / "kinds.jsonl"


def kinds() -> list[dict]:
    return [json.loads(line) for line in KINDS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def both_profiles(tmp_path_factory) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    tmp = tmp_path_factory.mktemp("profiles")
    rows = kinds()
    records = [{"text": r["text"], "id": f"{r['kind']}-{i}", "metadata": {"kind": r["kind"], "label": r["label"]}} for i, r in enumerate(rows)]
    inp = make_dataset(tmp / "in", records, source="kinds", domain="mixed")
    out = {}
    for profile in ("general", "web-strict"):
        # the insurance pages are English and Spanish: the user says so, as pipelines/insurance.yaml does
        config = FilterConfig.model_validate({"profile": profile, "langid": {"allowed": ["en", "es"]}})
        _, kept, rejected = run_filter(tmp, inp, config, name=profile)
        out[profile] = (kept, rejected)
    return out


def _labelled(frame: pl.DataFrame) -> pl.DataFrame:
    meta = pl.col("metadata").str.json_decode(pl.Struct({"kind": pl.String, "label": pl.String}))
    return frame.with_columns(meta.struct.field("kind"), meta.struct.field("label"))


@needs_lid_model
def test_general_keeps_genuine_text_of_every_kind_and_removes_every_junk_page(both_profiles):
    kept, rejected = (_labelled(f) for f in both_profiles["general"])
    junk_kept = kept.filter(pl.col("label").str.starts_with("junk"))
    assert junk_kept.height == 0, junk_kept.select("kind", "label", pl.col("text").str.slice(0, 80)).to_dicts()
    reasons = set(rejected.filter(pl.col("label").str.starts_with("junk"))["reason"])
    assert reasons <= {"prose_few_function_words", "prose_low_word_variety", "prose_below_alpha_threshold", "langid_low_score",
                       "gopher_rep_duplicated_10_n_grams", "gopher_rep_top_2_gram", "gopher_rep_top_3_gram", "gopher_rep_top_4_gram"}  # fmt: skip
    genuine = kept.filter(pl.col("label") == "genuine").group_by("kind").len()
    per_kind = dict(genuine.iter_rows())
    for kind in ("web", "docs", "wrapped", "insurance", "qa"):
        assert per_kind.get(kind, 0) >= 9, (kind, rejected.filter(pl.col("kind") == kind, pl.col("label") == "genuine").select("reason", "detail").to_dicts())
    # nothing kept is rewritten: hard-wrapped lines, headings, lists and code stay as they were
    original = {f"{r['kind']}-{i}": r["text"] for i, r in enumerate(kinds())}
    assert all(len(text) >= 0.95 * len(original[i]) for i, text in zip(kept["id"], kept["text"]))  # only sanitised
    wrapped = kept.filter(pl.col("kind") == "wrapped")
    assert all("\n" in t and max(map(len, t.splitlines())) <= 100 for t in wrapped["text"])  # still hard-wrapped


@needs_lid_model
def test_web_strict_is_datatrove_and_damages_what_general_keeps(both_profiles):
    strict_kept, _ = (_labelled(f) for f in both_profiles["web-strict"])
    general_kept, _ = (_labelled(f) for f in both_profiles["general"])
    strict = dict(strict_kept.filter(pl.col("label") == "genuine").group_by("kind").len().iter_rows())
    general = dict(general_kept.filter(pl.col("label") == "genuine").group_by("kind").len().iter_rows())
    # reference docs and hard-wrapped text: the web rules drop most pages (docs/filter.md has the figures)
    assert strict.get("docs", 0) <= 3 < general["docs"]
    assert strict.get("wrapped", 0) < general["wrapped"]
    # and the hard-wrapped pages web-strict keeps are cut to fragments by C4's line rule
    original = {f"{r['kind']}-{i}": r["text"] for i, r in enumerate(kinds())}
    wrapped = strict_kept.filter(pl.col("kind") == "wrapped")
    assert all(len(t) < 0.6 * len(original[i]) for i, t in zip(wrapped["id"], wrapped["text"]))


def test_profiles_are_defaults_that_given_options_override():
    assert FilterConfig().profile == "general"
    general = FilterConfig()
    assert general.quality.prose.enabled and general.langid.read == "words"
    assert not general.quality.c4.rewrite_text and general.quality.c4.min_num_sentences == -1  # scored, not decided
    strict = FilterConfig(profile="web-strict")
    assert not strict.quality.prose.enabled and strict.quality.c4.enabled and strict.quality.gopher_quality.min_doc_words == 50
    assert strict.model_dump(exclude={"profile"}) == FilterConfig.model_validate({"profile": "web-strict"}).model_dump(exclude={"profile"})
    # an option given over the profile wins; the rest of the profile stays
    mine = FilterConfig.model_validate({"quality": {"prose": {"min_function_word_ratio": 0.2}, "c4": {"min_num_sentences": 3}}})
    assert mine.quality.prose.min_function_word_ratio == 0.2 and mine.quality.prose.enabled
    assert mine.quality.c4.min_num_sentences == 3 and mine.quality.c4.rewrite_text is False
    assert mine.quality.fineweb.line_punct_thr is None
    # a dumped config (as in a card) reads back to the same config
    assert FilterConfig.model_validate(mine.model_dump(mode="json")) == mine
    assert set(GENERAL_PROFILE) <= {"langid", "quality", "sanitise"}


def _reasons(texts: list[str], cfg: QualityConfig, langs: list[str | None], lang_scores: list[float | None]) -> list[str | None]:
    scores = quality_scores(pl.Series(texts), cfg, pl.Series(langs, dtype=pl.String), pl.Series(lang_scores, dtype=pl.Float64))
    out: list[str | None] = [None] * len(texts)
    for check, fails, _ in failing_masks(scores, pl.Series([None] * len(texts), dtype=pl.String), pl.Series([True] * len(texts)), cfg):
        for i, f in enumerate(fails):
            out[i] = out[i] or (check.reason if f else None)
    return out


def test_function_words_use_the_documents_language_and_its_confidence():
    cfg = FilterConfig().quality
    spanish = "La cobertura de salud es importante para las familias que buscan un plan con beneficios esenciales."
    english = "The plan covers the cost of care that is provided by the doctors in the network of the insurer."
    keywords = "cheap insurance quotes best insurance plan cheap quotes online insurance deals plan quotes"
    reasons = _reasons([spanish, spanish, english, keywords, keywords], cfg, ["es", "en", "en", "en", "la"], [0.99, 0.99, 0.99, 0.99, 0.3])
    assert reasons[0] is None  # Spanish, judged with the Spanish list
    assert reasons[1] == "prose_few_function_words"  # the same text called English by a sure model: no English function words
    assert reasons[2] is None
    assert reasons[3] == reasons[4] == "prose_few_function_words"  # unsure language: the best-matching list, still none
    # a language without a list, identified surely, is not judged by the ratio
    assert _reasons([keywords], cfg, ["ja"], [0.99]) == [None]


def test_word_variety_is_judged_only_on_documents_long_enough():
    cfg = FilterConfig().quality
    short = "the plan and the plan and the plan and the plan"  # 12 words, 3 distinct: too short to judge
    long = " ".join(["the plan and the cost of the plan"] * 12)  # 96 words, 5 distinct
    scores = quality_scores(pl.Series([short, long]), cfg, pl.Series(["en", "en"]), pl.Series([0.9, 0.9]))
    assert scores["prose_word_variety"][1] == pytest.approx(5 / 96**0.5)
    assert _reasons([short, long], cfg, ["en", "en"], [0.9, 0.9]) == [None, "prose_low_word_variety"]


@needs_lid_model
def test_general_keeps_the_web_rules_scores_as_columns(both_profiles):
    """So a user can still apply the strict web thresholds to the general profile's output."""
    kept, rejected = both_profiles["general"]
    for column in ("c4_sentences", "fineweb_line_punct_ratio", "gopher_rep_top_2_gram_char_frac", "gopher_rep_dup_5_gram_char_frac",
                   "gopher_alpha_words_ratio", "prose_function_word_ratio"):  # fmt: skip
        assert column in kept.columns and kept[column].null_count() < kept.height
    assert not set(rejected["reason"]) & {"c4_too_few_sentences", "fineweb_line_punct_ratio", "gopher_rep_top_2_gram"}


def test_cli_profile_flag(tmp_path):
    from corpus.cli import main
    from tests.test_filter import c4_texts

    inp = make_dataset(tmp_path / "in", [{"text": t} for t in c4_texts()[:6]])
    cfg = tmp_path / "f.yaml"
    cfg.write_text("langid: {enabled: false}\n")
    assert main(["-q", "filter", str(inp), "-o", str(tmp_path / "a"), "--config", str(cfg), "--profile", "web-strict"]) == 0
    assert main(["-q", "filter", str(inp), "-o", str(tmp_path / "b"), "--config", str(cfg)]) == 0
    strict = json.loads((tmp_path / "a" / "card.json").read_text())["config"]
    general = json.loads((tmp_path / "b" / "card.json").read_text())["config"]
    assert strict["profile"] == "web-strict" and strict["quality"]["c4"]["rewrite_text"] is True and strict["langid"]["enabled"] is False
    assert general["profile"] == "general" and general["quality"]["prose"]["enabled"] is True
