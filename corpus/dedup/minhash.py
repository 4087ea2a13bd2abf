"""Shingles, MinHash signatures, LSH band hashes and exact-text hashes, vectorised.

numba kernels walk the UTF-8 bytes of each batch's Arrow text buffer once: a word is a run of
Unicode letters, marks and digits (classes from a per-process table built from unicodedata), it is
lower-cased and hashed, characters of scripts written without spaces (Han, kana, Thai, Lao, Khmer,
Myanmar) become words of their own so a Chinese paragraph is not one giant word, consecutive
`ngram` words are combined into a 64-bit shingle hash, and every shingle goes through `bands*rows`
seeded permutations `x -> a*x + b (mod 2**64)` (a odd, so each is a bijection of 64-bit words)
followed by an xor-shift that folds the well-mixed high bits into the low ones. The signature is the
minimum per permutation; a band hash is a hash of `rows` consecutive minima.

Every hash here is our own arithmetic on bytes (no Python `hash`, no library whose output may change
between versions), so a saved index stays valid for later runs with the same settings.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.text_kernels import FNV_OFFSET as _FNV_OFFSET
from corpus.text_kernels import FNV_PRIME as _FNV_PRIME
from corpus.text_kernels import mix64 as _mix64
from corpus.text_kernels import next_code_point as _next_code_point
from corpus.text_kernels import string_buffers

# Bumped whenever tokenisation or hashing changes: a saved index records it and refuses a mismatch.
HASH_VERSION = 1

_U64 = np.uint64
_NO_SHINGLE = np.iinfo(np.uint64).max


@numba.njit(cache=True, inline="always")
def shingle_hash(tokens, start, width):
    """The 64-bit hash of the shingle tokens[start:start+width] (signatures and verification)."""
    h = _U64(0x9E3779B97F4A7C15) * _U64(width)
    for k in range(width):
        h = _mix64(h ^ tokens[start + k])
    return h


# Character classes of the tokeniser (from unicodedata, built once per process)
_SEPARATOR, _WORD, _UNSPACED, _SPACE = 0, 1, 2, 3
_TABLE_SIZE = 0x30000  # above: rare planes, treated as word characters and not lower-cased


def _unspaced_script(cp: int) -> bool:
    # scripts written without spaces between words: each character is a token of its own
    return (
        0x0E00 <= cp <= 0x0EFF  # Thai, Lao
        or 0x1000 <= cp <= 0x109F  # Myanmar
        or 0x1780 <= cp <= 0x17FF  # Khmer
        or 0x2E80 <= cp <= 0x9FFF  # CJK radicals, kana, CJK unified ideographs
        or 0xF900 <= cp <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= cp  # CJK extensions B and later
    )


_tables: dict[str, np.ndarray] = {}
_tables_lock = threading.Lock()


def _build_tables() -> dict[str, np.ndarray]:
    kinds = np.zeros(_TABLE_SIZE, dtype=np.uint8)
    lower = np.arange(_TABLE_SIZE, dtype=np.int64)
    unstable = np.zeros(_TABLE_SIZE, dtype=np.bool_)  # above: no character NFC changes
    for cp in range(_TABLE_SIZE):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat[0] in "LMN":
            kinds[cp] = _UNSPACED if _unspaced_script(cp) and cat[0] == "L" else _WORD
            low = ch.lower()
            if len(low) == 1:
                lower[cp] = ord(low)
        elif ch.isspace():
            kinds[cp] = _SPACE
        if cp >= 0x300 and not 0xD800 <= cp <= 0xDFFF and (cat[0] == "M" or not unicodedata.is_normalized("NFC", ch)):
            unstable[cp] = True
    unstable[0x1100:0x1200] = True  # Hangul jamo compose into syllables
    return {"kinds": kinds, "lower": lower, "unstable": unstable}


def _load_tables() -> dict[str, np.ndarray]:
    """The character tables, built from this Python's unicodedata once and kept beside the numba
    cache (a third of a second saved on every later run); rebuilt if the file is missing or bad."""
    with _tables_lock:
        if not _tables:
            cache = Path(__file__).parent / "__pycache__" / f"char_tables-v{HASH_VERSION}-unicode-{unicodedata.unidata_version}.npz"
            try:
                with np.load(cache) as saved:
                    _tables.update({k: saved[k] for k in ("kinds", "lower", "unstable")})
            except (OSError, ValueError, KeyError):
                _tables.update(_build_tables())
                try:
                    cache.parent.mkdir(exist_ok=True)
                    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npz")
                    np.savez(tmp, **_tables)
                    os.replace(tmp, cache)
                except OSError:
                    pass  # a read-only install: build the tables each time
    return _tables


def nfc_unstable_table() -> np.ndarray:
    """True for code points that NFC may change (or that may combine with a neighbour): combining
    marks, Hangul jamo and characters that are not NFC on their own. A text with none is NFC."""
    return _load_tables()["unstable"]


def char_tables() -> tuple[np.ndarray, np.ndarray]:
    """(class per code point uint8, lower-case code point int64) for code points below 0x30000.

    Word characters are Unicode letters, marks and digits; everything else separates words.
    """
    tables = _load_tables()
    return tables["kinds"], tables["lower"]




@numba.njit(cache=True, nogil=True)
def _token_hashes(data, offsets, kinds, lower, unstable, to_lower, letters_only, out_tokens, out_doc_offsets,
                  out_exact, out_needs_nfc, out_chars):  # fmt: skip
    """Hashes of each document's lower-cased words, in order; returns the number written.

    A word is a run of letters, marks and digits; a character of an unspaced script is a word.
    The same walk over the bytes also gives each text's normalised hash (the exact-duplicate key,
    as `_normalised_text_hashes`) and whether NFC could change the text.
    """
    n_tokens = 0
    n_docs = offsets.shape[0] - 1
    table_size = kinds.shape[0]
    for d in range(n_docs):
        out_doc_offsets[d] = n_tokens
        h = _FNV_OFFSET
        run = 0
        exact, length, pending_space, started = _FNV_OFFSET, 0, False, False
        needs_nfc = False
        n_chars = 0
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            b = data[i]
            if b < 0x80 and kinds[b] == _WORD:
                # a run of ASCII word characters, the common case: no decoding, NFC or space checks
                if pending_space:
                    exact = (exact ^ _U64(32)) * _FNV_PRIME
                    length += 1
                    pending_space = False
                while True:
                    low = lower[b]
                    h = (h ^ _U64(low)) * _FNV_PRIME
                    exact = (exact ^ _U64(low if to_lower else b)) * _FNV_PRIME
                    run += 1
                    length += 1
                    n_chars += 1
                    i += 1
                    if i >= end:
                        break
                    b = data[i]
                    if b >= 0x80 or kinds[b] != _WORD:
                        break
                started = True
                continue
            cp, width = _next_code_point(data, i, end)
            i += width
            n_chars += 1
            kind = kinds[cp] if cp < table_size else _WORD
            # the normalised-text hash, as _normalised_text_hashes computes it
            if kind == _SPACE or (letters_only and kind == _SEPARATOR):
                pending_space = started
            else:
                if pending_space:
                    exact = (exact ^ _U64(32)) * _FNV_PRIME
                    length += 1
                    pending_space = False
                exact = (exact ^ _U64(lower[cp] if to_lower and cp < table_size else cp)) * _FNV_PRIME
                length += 1
                started = True
            if cp >= 0x300 and cp < unstable.shape[0] and unstable[cp]:
                needs_nfc = True
            if kind == _WORD:
                low = lower[cp] if cp < table_size else cp
                h = (h ^ _U64(low)) * _FNV_PRIME
                run += 1
                continue
            if run:
                out_tokens[n_tokens] = _mix64(h)
                n_tokens += 1
                h = _FNV_OFFSET
                run = 0
            if kind == _UNSPACED:
                out_tokens[n_tokens] = _mix64((_FNV_OFFSET ^ _U64(cp)) * _FNV_PRIME)
                n_tokens += 1
        if run:
            out_tokens[n_tokens] = _mix64(h)
            n_tokens += 1
        out_exact[d] = _mix64(exact ^ _U64(length))
        out_needs_nfc[d] = needs_nfc
        out_chars[d] = n_chars
    out_doc_offsets[n_docs] = n_tokens
    return n_tokens


@numba.njit(cache=True, nogil=True)
def _normalised_text_hashes(data, offsets, kinds, lower, to_lower, letters_only, out):
    """Hash of each text with whitespace runs collapsed and trimmed; optionally lower-cased, and
    optionally with every run of non-word characters (punctuation too) read as one space.
    `_token_hashes` repeats these steps in its own walk (a shared numba function returning the
    state was four times slower); tests check that both give the same hashes."""
    table_size = kinds.shape[0]
    for d in range(offsets.shape[0] - 1):
        exact, length, pending_space, started = _FNV_OFFSET, 0, False, False
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            cp, width = _next_code_point(data, i, end)
            i += width
            kind = kinds[cp] if cp < table_size else _WORD
            if kind == _SPACE or (letters_only and kind == _SEPARATOR):
                pending_space = started
                continue
            if pending_space:
                exact = (exact ^ _U64(32)) * _FNV_PRIME
                length += 1
                pending_space = False
            exact = (exact ^ _U64(lower[cp] if to_lower and cp < table_size else cp)) * _FNV_PRIME
            length += 1
            started = True
        out[d] = _mix64(exact ^ _U64(length))


@numba.njit(cache=True, nogil=True)
def _signatures(tokens, doc_offsets, ngram, perm_a, perm_b, out_sig, out_shingles):
    """MinHash of each document's word n-gram shingles; a document shorter than `ngram` words has
    one shingle of all its words, an empty one has none (its signature stays all-max).

    A document's shingle hashes are computed once; then each permutation is one minimum over them,
    a loop the compiler vectorises."""
    n_docs = doc_offsets.shape[0] - 1
    n_perm = perm_a.shape[0]
    shingle = np.empty(max(1, tokens.shape[0]), dtype=np.uint64)
    for d in range(n_docs):
        start = doc_offsets[d]
        n = doc_offsets[d + 1] - start
        n_shingles = 0 if n == 0 else max(1, n - ngram + 1)
        width = min(ngram, n)
        for s in range(n_shingles):
            shingle[s] = shingle_hash(tokens, start + s, width)
        for p in range(n_perm):
            a = perm_a[p]
            b = perm_b[p]
            low = _NO_SHINGLE
            for s in range(n_shingles):
                v = a * shingle[s] + b
                v ^= v >> _U64(32)
                low = min(low, v)
            out_sig[d, p] = low
        out_shingles[d] = n_shingles


@numba.njit(cache=True, nogil=True)
def _band_hashes(sig, bands, rows, out):
    for d in range(sig.shape[0]):
        for b in range(bands):
            h = _U64(b + 1)
            for r in range(rows):
                h = _mix64(h ^ sig[d, b * rows + r])
            out[d, b] = h


@numba.njit(cache=True, nogil=True)
def _needs_nfc(data, offsets, unstable, out):
    for d in range(offsets.shape[0] - 1):
        found = False
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            if data[i] < 0xCC:  # ASCII, continuation bytes and 2-byte leads below U+0300
                i += 1
                continue
            cp, width = _next_code_point(data, i, end)
            i += width
            if cp < unstable.shape[0] and unstable[cp]:
                found = True
                break
        out[d] = found


@numba.njit(cache=True, nogil=True)
def _string_hashes(data, offsets, out):
    # FNV-1a over the bytes, then mixed: the exact-duplicate key of a normalised text
    for d in range(offsets.shape[0] - 1):
        h = _U64(0xCBF29CE484222325)
        for i in range(offsets[d], offsets[d + 1]):
            h = (h ^ _U64(data[i])) * _U64(0x100000001B3)
        out[d] = _mix64(h ^ _U64(offsets[d + 1] - offsets[d]))


def permutations(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded affine permutations: odd multipliers, any offsets."""
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.integers(0, 2**64 - 1, size=count, dtype=np.uint64, endpoint=True) | np.uint64(1)
    b = rng.integers(0, 2**64 - 1, size=count, dtype=np.uint64, endpoint=True)
    return a, b


class TextHashes(NamedTuple):
    tokens: np.ndarray  # uint64 hashes of the lower-cased words, document after document
    doc_offsets: np.ndarray  # int64, len(texts) + 1: document d's tokens are tokens[doc_offsets[d]:doc_offsets[d + 1]]
    exact: np.ndarray  # uint64 exact-duplicate keys, as exact_hashes(texts, normalisation)
    chars: np.ndarray  # int64 code points per text


class Signatures(NamedTuple):
    sig: np.ndarray  # (documents, permutations) uint64 minima
    shingles: np.ndarray  # int64 shingles per document (0: empty, in no bucket)
    exact: np.ndarray  # uint64 exact-duplicate keys
    chars: np.ndarray  # int64 code points per text


def token_hashes(texts: pa.Array | pa.ChunkedArray, normalisation: str = "whitespace") -> TextHashes:
    """The texts' word hashes, with their exact-duplicate keys and lengths from the same walk over the bytes."""
    offsets, data = string_buffers(texts)
    kinds, lower = char_tables()
    tokens = np.empty(max(int(offsets[-1] - offsets[0]), 1), dtype=np.uint64)  # at most one per byte
    doc_offsets = np.empty(len(offsets), dtype=np.int64)
    exact = np.empty(len(offsets) - 1, dtype=np.uint64)
    needs_nfc = np.empty(len(offsets) - 1, dtype=np.bool_)
    chars = np.empty(len(offsets) - 1, dtype=np.int64)
    to_lower, letters_only = normalisation in ("lowercase", "letters"), normalisation == "letters"
    n = _token_hashes(data, offsets, kinds, lower, nfc_unstable_table(), to_lower, letters_only, tokens, doc_offsets,
                      exact, needs_nfc, chars)  # fmt: skip
    if normalisation == "none":
        exact = exact_hashes(texts, "none")
    else:
        _renormalise_nfc(texts, exact, needs_nfc, normalisation)
    return TextHashes(tokens[:n], doc_offsets, exact, chars)


def minhash_signatures(texts, ngram: int, perm_a: np.ndarray, perm_b: np.ndarray, normalisation: str = "whitespace") -> Signatures:
    """MinHash signatures of the texts' word `ngram` shingles under the permutations (perm_a, perm_b)."""
    tokens, doc_offsets, exact, chars = token_hashes(texts, normalisation)
    sig = np.empty((len(doc_offsets) - 1, perm_a.shape[0]), dtype=np.uint64)
    shingles = np.empty(len(doc_offsets) - 1, dtype=np.int64)
    _signatures(tokens, doc_offsets, ngram, perm_a, perm_b, sig, shingles)
    return Signatures(sig, shingles, exact, chars)


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    out = np.empty((sig.shape[0], bands), dtype=np.uint64)
    _band_hashes(np.ascontiguousarray(sig), bands, rows, out)
    return out


def _needs_nfc_mask(texts: pa.Array) -> np.ndarray:
    offsets, data = string_buffers(texts)
    needs = np.empty(len(texts), dtype=np.bool_)
    _needs_nfc(data, offsets, nfc_unstable_table(), needs)
    return needs


EXACT_NORMALISATIONS = ("whitespace", "lowercase", "letters", "none")


def exact_hashes(texts, normalisation: str) -> np.ndarray:
    """64-bit hash of each text after normalisation, the key of exact duplicates.

    `whitespace`: NFC, whitespace runs collapsed to one space, trimmed (the rule document ids use);
    `lowercase`: that, lower-cased; `letters`: lower-cased words (letters, marks, digits) separated by
    single spaces, punctuation ignored; `none`: the raw UTF-8 bytes.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    texts = pc.fill_null(texts, "")
    if normalisation == "none":
        offsets, data = string_buffers(texts)
        out = np.empty(offsets.shape[0] - 1, dtype=np.uint64)
        _string_hashes(data, offsets, out)
        return out
    out = _normalised_hashes(texts, normalisation)
    _renormalise_nfc(texts, out, _needs_nfc_mask(texts), normalisation)
    return out


def _renormalise_nfc(texts, out: np.ndarray, needs_nfc: np.ndarray, normalisation: str) -> None:
    """NFC (Arrow's kernel is slow) only for the few texts it can change: their hashes are redone."""
    idx = np.flatnonzero(needs_nfc)
    if len(idx):
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        chosen = pc.fill_null(texts.take(pa.array(idx)), "")
        out[idx] = _normalised_hashes(pc.utf8_normalize(chosen, "NFC"), normalisation)


def _normalised_hashes(texts: pa.Array, normalisation: str) -> np.ndarray:
    offsets, data = string_buffers(texts)
    out = np.empty(offsets.shape[0] - 1, dtype=np.uint64)
    kinds, lower = char_tables()
    _normalised_text_hashes(data, offsets, kinds, lower, normalisation != "whitespace", normalisation == "letters", out)
    return out
