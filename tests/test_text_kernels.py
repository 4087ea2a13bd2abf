"""The card's per-document counts: code points and `\\S+` words, as polars' regex counts them."""

from __future__ import annotations

import random

import polars as pl
import pyarrow as pa

from corpus.text_kernels import chars_and_words

WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
NOT_SPACE = "ab\x1c\x1f\u200b\u180e\ufeff\xe9\u0301中😀\u00c2\u2030\u2060\u3001"  # look-alikes that are not White_Space


def test_counts_agree_with_the_regex_on_random_text():
    rng = random.Random(7)
    alphabet = WHITE_SPACE + NOT_SPACE
    texts = ["", None, " ", "word", *("".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(3000))]
    for array in (pa.array(texts, pa.large_string()), pa.array(texts, pa.string()).slice(2)):
        chars, words = chars_and_words(array)
        expected = pl.Series(array.to_pylist()).fill_null("")
        assert chars.tolist() == expected.str.len_chars().to_list()
        assert words.tolist() == expected.str.count_matches(r"\S+").to_list()
