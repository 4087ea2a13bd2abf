"""The length filter's three bounds, each deciding on its own, with the reason of the first that fails."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corpus.filter.length import LengthFilter, LengthFilterConfig


def _run(config: LengthFilterConfig, texts: list[str]) -> list[str | None]:
    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts,
                      "reason": pa.nulls(len(texts), pa.string()), "detail": pa.nulls(len(texts), pa.string())})  # fmt: skip
    (out,) = list(LengthFilter(config).run(iter([table])))
    return out.column("reason").to_pylist()


def test_each_bound_rejects_with_its_reason():
    texts = ["one two three four", "one two", "x" * 50, "tiny", "  a  b  c  "]
    reasons = _run(LengthFilterConfig(min_chars=5, max_chars=40, min_words=3), texts)
    assert reasons == [None, "too_few_words", "too_long", "too_short", None]


@pytest.mark.parametrize("field, value, rejected", [("min_words", 3, [1]), ("min_chars", 8, [1, 3]), ("max_chars", 10, [0, 2])])
def test_one_bound_alone(field, value, rejected):
    texts = ["one two three four", "one two", "three four five", "a b c"]
    reasons = _run(LengthFilterConfig(**{field: value}), texts)
    assert [i for i, r in enumerate(reasons) if r is not None] == rejected


def test_words_are_runs_of_non_space_whatever_the_whitespace():
    # a tab, a newline and no-break-free punctuation: "a\tb\nc" is three words, "a,b,c" one
    assert _run(LengthFilterConfig(min_words=3), ["a\tb\nc", "a,b,c", ""]) == [None, "too_few_words", "too_few_words"]
