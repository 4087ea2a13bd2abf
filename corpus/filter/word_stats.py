"""The words of a batch of texts, split as WORD_PATTERN splits them, in one walk over the UTF-8
bytes of the batch's Arrow string buffer (a numba kernel that releases the GIL).

A word is a maximal run of word characters (letters, marks, digits, `_`) or a maximal run of other
characters that are not white space: exactly what `regex.findall(WORD_PATTERN, text)` returns
(corpus.filter.words). For each word the walk gives its length in characters and a 64-bit hash of
its bytes (the n-gram repetition kernel's input); for each document it sums what Gopher's quality
rule needs: words, words with a character outside datatrove's PUNCTUATION_SET and their characters,
words with a letter (`str.isalpha`, as datatrove tests), and how many distinct stop words occur
(compared exactly, case included, as datatrove's set intersection does).

The character classes come from the same `regex` module datatrove's side splits with, and from
`str.isalpha`, built once per process (and kept beside the numba cache).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from corpus.text_kernels import FNV_OFFSET as _FNV_OFFSET
from corpus.text_kernels import FNV_PRIME as _FNV_PRIME
from corpus.text_kernels import mix64 as _mix64
from corpus.text_kernels import next_code_point, same_bytes, save_table, string_buffers

_WORD, _SPACE, _ALPHA, _PUNCT = 1, 2, 4, 8  # bits of the per-code-point class table
_CODE_POINTS = 0x110000
TABLE_VERSION = 1

_U64 = np.uint64

_table: list[np.ndarray] = []
_table_lock = threading.Lock()


def _build_table() -> np.ndarray:
    import regex
    from datatrove.utils.text import PUNCTUATION_SET

    from corpus.filter.words import _WORD_CHARS

    # every code point but the surrogates, in one string; regex classifies them in two passes
    cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, _CODE_POINTS)])
    text = "".join(map(chr, cps.tolist()))
    table = np.zeros(_CODE_POINTS, dtype=np.uint8)
    for pattern, bit in ((rf"[{_WORD_CHARS}]", _WORD), (r"\s", _SPACE)):
        hits = np.fromiter((m.start() for m in regex.finditer(pattern, text)), dtype=np.int64)
        table[cps[hits]] |= bit
    alpha = np.fromiter((c.isalpha() for c in text), dtype=bool, count=len(text))
    table[cps[alpha]] |= _ALPHA
    table[[ord(c) for c in PUNCTUATION_SET]] |= _PUNCT
    return table


def char_classes() -> np.ndarray:
    """uint8 per code point: word character, white space, letter (isalpha), datatrove punctuation."""
    with _table_lock:
        if not _table:
            import unicodedata

            import regex

            cache = Path(__file__).parent / "__pycache__" / (
                f"word_classes-v{TABLE_VERSION}-regex-{regex.__version__}-unicode-{unicodedata.unidata_version}.npy"
            )
            try:
                table = np.load(cache)
                if table.shape != (_CODE_POINTS,) or table.dtype != np.uint8:
                    raise ValueError(cache)
            except (OSError, ValueError):
                table = _build_table()
                save_table(cache, table)
            _table.append(table)
    return _table[0]




@numba.njit(cache=True, nogil=True)
def _word_stats(data, offsets, classes, stop_hashes, stop_bytes, stop_offsets, out_hashes, out_lengths,
                out_offsets, out_symbolless, out_symbolless_chars, out_alpha, out_stop):  # fmt: skip
    """Walks every text once, writing the (hash, characters) of each word, the words of document d
    being rows out_offsets[d]:out_offsets[d + 1]. Returns the number of words, or -1 when they do
    not fit in out_hashes (a text has at most one word per byte)."""
    n_docs = offsets.shape[0] - 1
    capacity = out_hashes.shape[0]
    n_stop = stop_hashes.shape[0]
    seen = np.full(max(n_stop, 1), -1, np.int64)  # seen[k] == d: stop word k occurred in document d
    longest_stop = 0  # bytes: a longer word is no stop word
    for k in range(n_stop):
        longest_stop = max(longest_stop, stop_offsets[k + 1] - stop_offsets[k])
    n = 0
    for d in range(n_docs):
        out_offsets[d] = n
        symbolless = 0
        symbolless_chars = 0
        alpha_words = 0
        stops = 0
        kind = 0  # of the current word: 0 none, 1 word characters, 2 other characters
        h = _FNV_OFFSET
        chars = 0
        not_punct = False
        has_alpha = False
        word_start = 0
        i = offsets[d]
        end = offsets[d + 1]
        while i <= end:
            if i < end:
                cp, width = next_code_point(data, i, end)
                cls = classes[cp]
                new_kind = 1 if cls & _WORD else (0 if cls & _SPACE else 2)
            else:  # past the end: closes the last word
                cls = 0
                width = 1
                new_kind = 0
            if new_kind != kind and kind != 0:  # the current word ends before data[i]
                if n == capacity:
                    return -1
                word_hash = _mix64(h)
                out_hashes[n] = word_hash
                out_lengths[n] = chars
                n += 1
                if not_punct:
                    symbolless += 1
                    symbolless_chars += chars
                if has_alpha:
                    alpha_words += 1
                if i - word_start <= longest_stop:
                    k = np.searchsorted(stop_hashes, word_hash)
                    while k < n_stop and stop_hashes[k] == word_hash:
                        a, z = stop_offsets[k], stop_offsets[k + 1]
                        if seen[k] != d and z - a == i - word_start and same_bytes(stop_bytes, a, data, word_start, z - a):
                            seen[k] = d
                            stops += 1
                        k += 1
            if i == end:
                break
            if new_kind != 0:
                if new_kind != kind:  # a word starts at data[i]
                    h = _FNV_OFFSET
                    chars = 0
                    not_punct = False
                    has_alpha = False
                    word_start = i
                for j in range(width):
                    h = (h ^ _U64(data[i + j])) * _FNV_PRIME
                chars += 1
                not_punct = not_punct or not (cls & _PUNCT)
                has_alpha = has_alpha or (cls & _ALPHA) != 0
            kind = new_kind
            i += width
        out_symbolless[d] = symbolless
        out_symbolless_chars[d] = symbolless_chars
        out_alpha[d] = alpha_words
        out_stop[d] = stops
    out_offsets[n_docs] = n
    return n


def word_hash(word: str) -> int:
    """The hash `word_stats` gives this word (FNV-1a over its UTF-8 bytes, then splitmix64's finaliser)."""
    h = int(_FNV_OFFSET)
    for b in word.encode("utf-8"):
        h = ((h ^ b) * int(_FNV_PRIME)) & 0xFFFFFFFFFFFFFFFF
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return h ^ (h >> 31)


@dataclass
class WordStats:
    """Every word of a batch: per-document offsets into the per-word arrays, and Gopher's sums."""

    offsets: np.ndarray  # (docs + 1,) int64
    counts: np.ndarray  # (docs,) words per document, symbols included
    hashes: np.ndarray  # (words,) uint64
    lengths: np.ndarray  # (words,) characters
    symbolless: np.ndarray  # (docs,) words with a character outside datatrove's PUNCTUATION_SET
    symbolless_chars: np.ndarray  # (docs,) their characters
    alpha: np.ndarray  # (docs,) words with a letter
    stop_words: np.ndarray  # (docs,) distinct stop words present


def word_stats(texts, stop_words: list[str] = ()) -> WordStats:
    """The words of each text (a pyarrow string array or a polars Series; null counts as empty)."""
    if hasattr(texts, "to_arrow"):
        texts = texts.to_arrow()
    offsets, data = string_buffers(texts)
    n_docs = len(offsets) - 1
    unique = list(dict.fromkeys(stop_words))
    order = sorted(range(len(unique)), key=lambda k: word_hash(unique[k]))
    encoded = [unique[k].encode("utf-8") for k in order]
    stop_hashes = np.array([word_hash(unique[k]) for k in order], dtype=np.uint64)
    stop_offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=stop_offsets[1:])
    stop_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()  # writable: one compiled signature
    out_offsets = np.empty(n_docs + 1, np.int64)
    per_doc = [np.empty(n_docs, np.int64) for _ in range(4)]
    classes = char_classes()
    # English averages about 5 bytes a word; a batch with more words is walked again with room for all
    for capacity in (len(data) // 4 + 16, len(data) + 1):
        hashes = np.empty(capacity, np.uint64)
        lengths = np.empty(capacity, np.int64)
        n = _word_stats(data, offsets, classes, stop_hashes, stop_bytes, stop_offsets, hashes, lengths, out_offsets, *per_doc)
        if n >= 0:
            break
    return WordStats(out_offsets, np.diff(out_offsets), hashes[:n], lengths[:n], *per_doc)

