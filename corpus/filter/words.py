"""Offline word and sentence splitting by regular expression, shared by our vectorised rules and the
datatrove side of the benchmark.

A word is a run of letters, marks, digits and underscores, or a run of other non-space characters
(punctuation and symbols). The patterns use only syntax that Rust's regex (polars) and Python's
`regex` module read the same way, so a polars `str.extract_all(WORD_PATTERN)` and
`regex.findall(WORD_PATTERN, text)` split identically.
"""

from __future__ import annotations

import regex

_WORD_CHARS = r"\p{L}\p{M}\p{N}_"
WORD_PATTERN = rf"[{_WORD_CHARS}]+|[^{_WORD_CHARS}\s]+"

# A sentence ends with a run of terminal marks, optionally closed by quotes or brackets.
_SENTENCE_MARKS = r".!?\u2026\u3002\uFF01\uFF1F"
_CLOSERS = r"\"'\u201D\u2019)\]"
SENTENCE_END_PATTERN = rf"[{_SENTENCE_MARKS}]+[{_CLOSERS}]*(?:\s+|$)"
ENDS_WITH_SENTENCE_END = rf"[{_SENTENCE_MARKS}]+[{_CLOSERS}]*\s*$"

_word_re = regex.compile(WORD_PATTERN)
_sentence_end_re = regex.compile(SENTENCE_END_PATTERN)


def char_class(chars, negate: bool = False) -> str:
    """A regex character class of exactly `chars`, written with \\UXXXXXXXX escapes both engines accept."""
    body = "".join(f"\\U{ord(c):08X}" for c in sorted(set(chars)))
    return f"[{'^' if negate else ''}{body}]"


def split_words(text: str) -> list[str]:
    return _word_re.findall(text)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans: one per sentence end, plus the tail when text follows the last end."""
    spans, start = [], 0
    for match in _sentence_end_re.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def _regex_word_tokenizer() -> type:
    from datatrove.utils.word_tokenizers import WordTokenizer

    class RegexWordTokenizer(WordTokenizer):
        """The same splitting as a datatrove WordTokenizer, so datatrove's filters run offline (no spacy)."""

        def __init__(self, language: str = "en"):
            super().__init__(language)

        def word_tokenize(self, text: str) -> list[str]:
            return split_words(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text[a:b].strip() for a, b in sentence_spans(text) if text[a:b].strip()]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return sentence_spans(text)

    RegexWordTokenizer.__module__, RegexWordTokenizer.__qualname__ = __name__, "RegexWordTokenizer"  # picklable by name
    return RegexWordTokenizer


def __getattr__(name: str):
    # datatrove's tokenizer module costs a fifth of a second to import, and only the comparisons
    # with datatrove (tests, benchmarks) need the class: it is made on first use
    if name == "RegexWordTokenizer":
        globals()[name] = cls = _regex_word_tokenizer()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
