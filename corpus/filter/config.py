"""Configuration of the `filter` stage: sanitiser, language ID and quality rules.

Two profiles. `general` (the default) keeps good text of every common kind (web pages, reference
documentation, hard-wrapped text, Q&A, several languages) and removes junk; `web-strict` is
datatrove 0.10.1's GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter and
FineWebQualityFilter with their published defaults. The field defaults below are the web-strict
values; GENERAL_PROFILE lists what `general` changes (docs/filter.md gives the reason and the
measurement behind each change). Options given in a config are applied over the profile's.

A threshold set to null turns that check off. Options that change how a score is computed (stop
words, which lines C4 drops, what counts as a short line) are global; thresholds can differ per
domain under `by_domain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corpus.errors import CorpusError, validation_message
from corpus.yaml_file import read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- sanitiser


class PiiConfig(_Strict):
    enabled: bool = True
    email: bool = True
    phone: bool = True
    ip_address: bool = True
    ssn: bool = Field(True, description="US social-security-like numbers: 123-45-6789")
    custom: dict[str, str] = Field(
        default_factory=dict, description="kind -> regex (Rust syntax), e.g. policy_number: 'POL-\\d{8}'"
    )
    placeholder: str = Field("<{KIND}>", description="replacement; {KIND} becomes the upper-case kind")

    @field_validator("custom")
    @classmethod
    def _compiles(cls, custom: dict[str, str]) -> dict[str, str]:
        import polars as pl

        for kind, pattern in custom.items():
            try:
                pl.Series([""]).str.contains(pattern)
            except Exception as e:  # polars raises ComputeError with the regex parser's message
                raise ValueError(f"custom PII pattern {kind!r} is not a valid regex: {str(e).splitlines()[0]}") from None
        return custom


class BoilerplateConfig(_Strict):
    enabled: bool = True
    min_docs: int = Field(10, ge=2, description="a line is boilerplate when this many documents of a source have it")
    min_doc_fraction: float = Field(0.05, ge=0, le=1, description="... and at least this share of the source's documents")
    min_line_chars: int = Field(8, ge=1, description="shorter lines, and lines with fewer than 3 letters, are never boilerplate")


class SanitiseConfig(_Strict):
    enabled: bool = True
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    quotes: Literal["ascii", "keep"] = Field("ascii", description="curly quotes -> ' and \"")
    dashes: Literal["ascii", "keep"] = Field("keep", description="en/em dashes -> '-' when ascii")
    ellipsis: Literal["dots", "char", "keep"] = Field("dots", description="'…' -> '...' (dots) or '...' -> '…' (char)")
    fullwidth: bool = Field(True, description="full-width ASCII forms (Ａ, ！) -> ASCII")
    collapse_repeated_punctuation: bool = Field(True, description="'!!!!' -> '!', '.....' -> '...'")
    control_chars: bool = Field(True, description="drop control and zero-width characters except tab and newline")
    whitespace: bool = Field(True, description="collapse spaces, strip line ends, at most one blank line")
    boilerplate: BoilerplateConfig = Field(default_factory=BoilerplateConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)


# ---------------------------------------------------------------- language ID


class LangIdConfig(_Strict):
    enabled: bool = True
    allowed: list[str] | None = Field(["en"], description="languages kept; null keeps every language")
    allowed_by_source: dict[str, list[str] | None] = Field(default_factory=dict, description="source -> languages")
    min_score: float = Field(0.65, ge=0, le=1, description="datatrove LanguageFilter's default threshold")
    max_chars: int = Field(10_000, ge=100, description="characters of each document the model reads")
    read: Literal["text", "words"] = Field(
        "text", description="what the model reads: the text, or only its words that contain a letter (code, "
        "symbols and markup then do not lower its confidence)"
    )


# ---------------------------------------------------------------- quality rules


class GopherQualityRule(_Strict):
    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = Field(0.8, description="datatrove calls it max_non_alpha_words_ratio")
    min_stop_words: int | None = 2
    stop_words: list[str] = ["the", "be", "to", "of", "and", "that", "have", "with"]


class GopherRepetitionRule(_Strict):
    enabled: bool = True
    dup_para_frac: float | None = 0.3
    dup_para_char_frac: float | None = 0.2
    dup_line_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    top_n_grams: dict[int, float | None] = {2: 0.2, 3: 0.18, 4: 0.16}
    dup_n_grams: dict[int, float | None] = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    min_doc_words: int | None = Field(
        None, description="judge only documents with at least this many words (gopher_words); null: every document"
    )


class C4Rule(_Strict):
    enabled: bool = True
    # how lines are cleaned (global)
    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_words_per_line: int = Field(3, description="-1 turns it off")
    max_word_length: int = Field(1000, description="-1 turns it off")
    filter_javascript: bool = True
    filter_policy: bool = True
    rewrite_text: bool = Field(True, description="kept documents lose the lines C4 drops, as datatrove's filter does")
    # decisions (per domain)
    min_num_sentences: int = Field(5, description="-1 turns it off")
    filter_lorem_ipsum: bool = True
    filter_curly_bracket: bool = True


class FineWebRule(_Strict):
    enabled: bool = True
    line_punct_thr: float | None = 0.12
    line_punct_exclude_zero: bool = False
    stop_chars: list[str] | None = Field(None, description="line-ending characters; null: datatrove's TERMINAL_PUNCTUATION")
    short_line_thr: float | None = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float | None = 0.01
    new_line_ratio: float | None = 0.3


class ProseRule(_Strict):
    """Is the text running language? Function words and vocabulary, measured over the words of the
    whole document, so code, tables, lists and line wrapping inside a real document do not decide."""

    enabled: bool = False
    min_function_word_ratio: float | None = Field(
        0.1, description="function words (corpus/filter/function_words.py) per word made of letters"
    )
    lang_confidence: float = Field(
        0.65, ge=0, le=1, description="language ID at least this sure: the ratio uses the document's own language's list "
        "(a language without one is not judged); less sure: the list that matches best"
    )
    min_word_variety: float | None = Field(2.0, description="distinct words / sqrt(words) (Guiraud's index)")
    min_words_for_variety: int = Field(50, ge=1, description="word variety is judged on documents of at least this many words")
    min_alpha_words_ratio: float | None = Field(0.4, description="whitespace-separated words that contain a letter")


RULE_MODELS: dict[str, type[_Strict]] = {
    "gopher_quality": GopherQualityRule,
    "prose": ProseRule,
    "gopher_repetition": GopherRepetitionRule,
    "c4": C4Rule,
    "fineweb": FineWebRule,
}
# Options that change a score rather than a decision: they cannot differ per domain.
SCORING_OPTIONS: dict[str, set[str]] = {
    "gopher_quality": {"stop_words"},
    "gopher_repetition": set(),
    "prose": {"lang_confidence"},
    "c4": {"remove_citations", "filter_no_terminal_punct", "min_words_per_line", "max_word_length", "filter_javascript", "filter_policy", "rewrite_text"},
    "fineweb": {"stop_chars", "short_line_length"},
}


class QualityConfig(_Strict):
    gopher_quality: GopherQualityRule = Field(default_factory=GopherQualityRule)
    prose: ProseRule = Field(default_factory=ProseRule)
    gopher_repetition: GopherRepetitionRule = Field(default_factory=GopherRepetitionRule)
    c4: C4Rule = Field(default_factory=C4Rule)
    fineweb: FineWebRule = Field(default_factory=FineWebRule)
    languages: list[str] | None = Field(
        ["en"], description="decide the rules only for these languages (the defaults are tuned for English); null: all"
    )
    by_domain: dict[str, dict[str, dict]] = Field(default_factory=dict, description="domain -> rule -> thresholds")

    @model_validator(mode="after")
    def _overrides(self):
        for domain, rules in self.by_domain.items():
            for rule, values in rules.items():
                if rule not in RULE_MODELS:
                    raise ValueError(f"by_domain.{domain}.{rule}: unknown rule (known: {', '.join(RULE_MODELS)})")
                fixed = SCORING_OPTIONS[rule] & set(values)
                if fixed:
                    raise ValueError(f"by_domain.{domain}.{rule}.{sorted(fixed)[0]}: changes a score, so it cannot differ per domain")
                base = getattr(self, rule)
                for key in ("top_n_grams", "dup_n_grams"):
                    extra = set(values.get(key, {})) - set(getattr(base, key, {}) or {})
                    if extra:
                        raise ValueError(f"by_domain.{domain}.{rule}.{key}: n={sorted(extra)[0]} is not scored globally")
                try:
                    self.rule_for(rule, domain)  # validates the merged thresholds
                except ValidationError as e:
                    raise ValueError(f"by_domain.{domain}.{rule}.{validation_message(e)}") from None
        return self

    def rule_for(self, rule: str, domain: str | None):
        base = getattr(self, rule)
        override = self.by_domain.get(domain or "", {}).get(rule)
        if not override:
            return base
        merged = base.model_dump()
        for key, value in override.items():
            merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        return RULE_MODELS[rule].model_validate(merged)

    def scored(self, rule: str) -> bool:
        """A rule's scores are computed when it is on globally or for any domain."""
        return getattr(self, rule).enabled or any(
            self.rule_for(rule, d).enabled for d, rules in self.by_domain.items() if rule in rules
        )


# What the `general` profile changes in the web-strict (datatrove) defaults. Each change and the
# measurement behind it is in docs/filter.md ("The general profile").
GENERAL_PROFILE: dict = {
    "langid": {"read": "words", "min_score": 0.5},
    "quality": {
        "languages": None,
        "gopher_quality": {"min_doc_words": None, "min_avg_word_length": None, "max_avg_word_length": None,
                           "max_symbol_word_ratio": None, "min_alpha_words_ratio": None, "min_stop_words": None},
        "prose": {"enabled": True},
        "gopher_repetition": {"min_doc_words": 50, "dup_para_frac": None, "dup_para_char_frac": None,
                              "dup_line_frac": None, "dup_line_char_frac": None, "top_n_grams": {2: None, 3: None, 4: None},
                              "dup_n_grams": {5: None, 6: None, 7: None, 8: None, 9: None, 10: 0.3}},
        # scored but not decided, and the text not rewritten: the web rules' columns stay in the output,
        # so their thresholds can still be applied to it (docs/filter.md, "Retuning from the output")
        "c4": {"rewrite_text": False, "min_num_sentences": -1, "filter_lorem_ipsum": False, "filter_curly_bracket": False},
        "fineweb": {"line_punct_thr": None, "short_line_thr": None, "char_duplicates_ratio": None, "new_line_ratio": None},
    },
}  # fmt: skip
PROFILES: dict[str, dict] = {"general": GENERAL_PROFILE, "web-strict": {}}


def overlay(base: dict, override: dict) -> dict:
    """`override` applied over `base`, mapping by mapping."""
    out = dict(base)
    for key, value in override.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class FilterConfig(_Strict):
    profile: Literal["general", "web-strict"] = Field(
        "general", description="general: every common kind of text; web-strict: datatrove's web rules, as published"
    )
    sanitise: SanitiseConfig = Field(default_factory=SanitiseConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, raw):
        if not isinstance(raw, dict):
            return raw
        profile = raw.get("profile", "general")
        if profile not in PROFILES:
            return raw  # the field's own validation names the allowed values
        return overlay(PROFILES[profile], raw)


def load_filter_config(path: str | Path | None, profile: str | None = None) -> FilterConfig:
    """Read a filter YAML (the options themselves, or under a top-level `filter:` key); `profile`
    (the CLI's --profile) replaces the file's."""
    if path is None:
        return FilterConfig.model_validate({"profile": profile} if profile else {})
    path = Path(path)
    raw = read_yaml(path, "config file") or {}
    if isinstance(raw, dict) and set(raw) == {"filter"}:
        raw = raw["filter"] or {}
    if not isinstance(raw, dict):
        raise CorpusError(f"{path}: a filter config is a YAML mapping (profile, sanitise, langid, quality)")
    if profile:
        raw = {**raw, "profile": profile}
    try:
        return FilterConfig.model_validate(raw)
    except ValidationError as e:
        raise CorpusError(f"{path}: {validation_message(e)}") from None
