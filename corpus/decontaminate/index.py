"""Word n-grams of eval items and of documents, hashed the same way; the eval index; matching.

Both sides are normalised the same way before any n-gram is formed: Unicode NFKC (full-width forms,
ligatures and composed or decomposed accents become one form), then words are runs of letters,
marks and digits, lower-cased (a character of a script written without spaces is a word of its own,
as in dedup). Punctuation, whitespace and line breaks only separate words, so case, punctuation,
re-wrapped lines and an item split over several lines do not change the n-grams.

A k-gram hash is a polynomial of its words' 64-bit hashes (rolled along the text in O(1) per
word), finished by splitmix64 with k mixed in. Items with at least `ngram` words contribute every
n-gram; an item shorter than that (but with at least `min_words`) is matched whole, against the
documents' runs of as many words. An n-gram with no word holding a letter, and a short item of which
fewer than half the words hold one (a list of numbers, a row of figures), are not indexed: they
would match every enumeration.

Matching is one pass over each document's words in a numba kernel: at every word, one probe of an
open-addressing table of the n-grams, and one of a table of the short items' first `min_words`
words (whose few hits are checked against the whole item). The cost per word does not grow with
the number of eval items.
"""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path

import numba
import numpy as np
import polars as pl
import pyarrow as pa

from corpus.dedup.minhash import _UNSPACED, _WORD, char_tables
from corpus.text_kernels import FNV_OFFSET as _FNV_OFFSET
from corpus.text_kernels import FNV_PRIME as _FNV_PRIME
from corpus.text_kernels import mix64 as _mix64
from corpus.text_kernels import next_code_point as _next_code_point
from corpus.text_kernels import save_table, string_buffers

_U64 = np.uint64
_ROLL = _U64(0x9E3779B97F4A7C15)  # odd: multiplication by it is a bijection of 64-bit words
_TABLE_SIZE = 0x30000  # code points above are taken as NFKC-stable
_nfkc_table: list[np.ndarray] = []
_nfkc_lock = threading.Lock()


def _nfkc_changeable() -> np.ndarray:
    """True for code points NFKC may change, alone or with a neighbour: characters not NFKC on their
    own (full-width forms, ligatures, compatibility characters), combining marks, Hangul jamo.
    Built once from this Python's unicodedata and kept beside the numba cache."""
    with _nfkc_lock:
        if not _nfkc_table:
            cache = Path(__file__).parent / "__pycache__" / f"nfkc-unicode-{unicodedata.unidata_version}.npy"
            try:
                _nfkc_table.append(np.load(cache))
            except (OSError, ValueError):
                table = np.zeros(_TABLE_SIZE, np.bool_)
                for cp in range(0x80, _TABLE_SIZE):
                    if 0xD800 <= cp <= 0xDFFF:
                        continue
                    ch = chr(cp)
                    table[cp] = unicodedata.category(ch)[0] == "M" or not unicodedata.is_normalized("NFKC", ch)
                table[0x1100:0x1200] = True  # Hangul jamo compose into syllables
                _nfkc_table.append(table)
                save_table(cache, table)
    return _nfkc_table[0]


@numba.njit(cache=True, nogil=True)
def _needs_nfkc(data, offsets, table, out):
    for d in range(offsets.shape[0] - 1):
        found = False
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            if data[i] < 0x80:
                i += 1
                continue
            cp, width = _next_code_point(data, i, end)
            i += width
            if cp < table.shape[0] and table[cp]:
                found = True
                break
        out[d] = found


def normalise(texts: pa.Array | pa.ChunkedArray | list[str]) -> pa.Array:
    """NFKC of every text (null as empty), as an Arrow string array. Only texts holding a character
    NFKC may change are normalised (most hold none); the others are not copied."""
    import pyarrow.compute as pc

    array = pa.array(texts, pa.large_string()) if isinstance(texts, list) else texts
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if array.null_count:
        array = pc.fill_null(array, "")
    offsets, data = string_buffers(array)
    needs = np.empty(len(offsets) - 1, np.bool_)
    _needs_nfkc(data, offsets, _nfkc_changeable(), needs)
    if not needs.any():
        return array
    mask = pa.array(needs)
    changed = pl.Series(array.filter(mask)).cast(pl.String).str.normalize("NFKC").to_arrow().cast(array.type)
    return pc.replace_with_mask(array, mask, changed)


@numba.njit(cache=True, nogil=True)
def _words(data, offsets, kinds, lower, out_hash, out_doc_offsets, out_start, out_end, out_lettered):
    """Each document's lower-cased word hashes, their [start, end) in code points and whether they
    hold a character other than an ASCII digit; returns the count."""
    n = 0
    table_size = kinds.shape[0]
    for d in range(offsets.shape[0] - 1):
        out_doc_offsets[d] = n
        h = _FNV_OFFSET
        run = 0
        start = 0
        lettered = False
        cp_index = 0
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            b = data[i]
            if b < 0x80 and kinds[b] == _WORD:
                # a run of ASCII word characters, the common case: no decoding, one table lookup each
                if run == 0:
                    start = cp_index
                    lettered = False
                while True:
                    h = (h ^ _U64(lower[b])) * _FNV_PRIME
                    lettered = lettered or b < 0x30 or b > 0x39
                    run += 1
                    cp_index += 1
                    i += 1
                    if i >= end:
                        break
                    b = data[i]
                    if b >= 0x80 or kinds[b] != _WORD:
                        break
                continue
            if b < 0x80:
                cp, width = np.int64(b), 1
            else:
                cp, width = _next_code_point(data, i, end)
            i += width
            kind = kinds[cp] if cp < table_size else _WORD
            if kind == _WORD:
                if run == 0:
                    start = cp_index
                    lettered = False
                low = lower[cp] if cp < table_size else cp
                h = (h ^ _U64(low)) * _FNV_PRIME
                lettered = lettered or cp < 0x30 or cp > 0x39
                run += 1
            else:
                if run:
                    out_hash[n] = _mix64(h)
                    out_start[n] = start
                    out_end[n] = cp_index
                    out_lettered[n] = lettered
                    n += 1
                    h = _FNV_OFFSET
                    run = 0
                if kind == _UNSPACED:
                    out_hash[n] = _mix64((_FNV_OFFSET ^ _U64(cp)) * _FNV_PRIME)
                    out_start[n] = cp_index
                    out_end[n] = cp_index + 1
                    out_lettered[n] = True
                    n += 1
            cp_index += 1
        if run:
            out_hash[n] = _mix64(h)
            out_start[n] = start
            out_end[n] = cp_index
            out_lettered[n] = lettered
            n += 1
    out_doc_offsets[offsets.shape[0] - 1] = n
    return n


class Words:
    """The words of a batch of (normalised) texts: hashes, per-text offsets, code-point spans."""

    def __init__(self, texts: pa.Array):
        offsets, data = string_buffers(texts)
        kinds, lower = char_tables()
        size = max(int(offsets[-1] - offsets[0]) // 2 + len(offsets), 1)  # a word and the separator after it take 2 bytes
        self.hashes = np.empty(size, np.uint64)
        self.doc_offsets = np.empty(len(offsets), np.int64)
        self.start = np.empty(size, np.int64)
        self.end = np.empty(size, np.int64)
        self.lettered = np.empty(size, np.bool_)
        n = _words(data, offsets, kinds, lower, self.hashes, self.doc_offsets, self.start, self.end, self.lettered)
        self.hashes, self.start, self.end, self.lettered = self.hashes[:n], self.start[:n], self.end[:n], self.lettered[:n]

    def counts(self) -> np.ndarray:
        return np.diff(self.doc_offsets)


@numba.njit(cache=True, nogil=True)
def _kgram_hash(words, start, k):
    h = _U64(0)
    for j in range(k):
        h = h * _ROLL + words[start + j]
    return _mix64(h ^ _U64(k))


@numba.njit(cache=True, nogil=True)
def _kgrams(words, doc_offsets, k, out_hash, out_doc, out_pos):
    """Hashes of every run of k consecutive words of each text (rolling); returns the count."""
    n = 0
    top = _U64(1)
    for _ in range(k - 1):
        top = top * _ROLL  # _ROLL ** (k - 1), for removing the word that leaves the window
    for d in range(doc_offsets.shape[0] - 1):
        start, stop = doc_offsets[d], doc_offsets[d + 1]
        if stop - start < k:
            continue
        h = _U64(0)
        for j in range(k):
            h = h * _ROLL + words[start + j]
        for i in range(start, stop - k + 1):
            if i > start:
                h = (h - words[i - 1] * top) * _ROLL + words[i + k - 1]
            out_hash[n] = _mix64(h ^ _U64(k))
            out_doc[n] = d
            out_pos[n] = i - start
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _short_hashes(words, starts, lengths, m, out_whole, out_prefix):
    for i in range(starts.shape[0]):
        out_whole[i] = _kgram_hash(words, starts[i], lengths[i])
        out_prefix[i] = _kgram_hash(words, starts[i], m)


def kgrams(words: Words, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hash, text index, word position) of every run of k words."""
    size = max(int(np.maximum(words.counts() - k + 1, 0).sum()), 1)
    out_hash, out_doc, out_pos = np.empty(size, np.uint64), np.empty(size, np.int64), np.empty(size, np.int64)
    n = _kgrams(words.hashes, words.doc_offsets, k, out_hash, out_doc, out_pos)
    return out_hash[:n], out_doc[:n], out_pos[:n]


class Table:
    """An open-addressing hash table from 64-bit keys to row numbers (at most half full). Key 0
    marks an empty slot (a key that is 0 is stored as 1: one hash in 2**64 shares a slot's key), so
    a probe reads one array until it finds the key."""

    def __init__(self, keys: np.ndarray):
        capacity = 1 << max(4, int(2 * max(len(keys), 1) - 1).bit_length())
        self.mask = _U64(capacity - 1)
        self.keys = np.zeros(capacity, np.uint64)
        self.rows = np.full(capacity, -1, np.int64)
        _fill(keys, self.mask, self.keys, self.rows)
        # a bitmap of the keys' top bits, 16 bits per key (at least 2**16): most probes of keys that
        # are absent stop there, in cache, before touching the table
        bits = 1 << max(16, int(16 * max(len(keys), 1) - 1).bit_length())
        self.bitmap = np.zeros(bits // 64, np.uint64)
        self.bitmap_shift = _U64(64 - (bits.bit_length() - 1))
        _set_bits(keys, self.bitmap, self.bitmap_shift)


@numba.njit(cache=True, nogil=True)
def _set_bits(keys, bitmap, shift):
    for i in range(keys.shape[0]):
        bit = _nonzero(keys[i]) >> shift
        bitmap[bit >> _U64(6)] |= _U64(1) << (bit & _U64(63))


@numba.njit(cache=True, nogil=True, inline="always")
def _maybe(key, bitmap, shift):
    bit = _nonzero(key) >> shift
    return (bitmap[bit >> _U64(6)] >> (bit & _U64(63))) & _U64(1)


@numba.njit(cache=True, nogil=True, inline="always")
def _nonzero(key):
    return key if key != _U64(0) else _U64(1)


@numba.njit(cache=True, nogil=True)
def _fill(keys, mask, table_keys, table_rows):
    for i in range(keys.shape[0]):
        key = _nonzero(keys[i])
        s = key & mask
        while table_keys[s] != _U64(0) and table_keys[s] != key:
            s = (s + _U64(1)) & mask
        if table_keys[s] == _U64(0):  # a key seen before keeps its first row
            table_keys[s] = key
            table_rows[s] = i


@numba.njit(cache=True, nogil=True, inline="always")
def _find(key, mask, table_keys, table_rows):
    key = _nonzero(key)
    s = key & mask
    while True:
        k = table_keys[s]
        if k == key:
            return table_rows[s]
        if k == _U64(0):
            return -1
        s = (s + _U64(1)) & mask


@numba.njit(cache=True, nogil=True)
def _match(words, doc_offsets, n, m, long_bitmap, long_shift, long_mask, long_keys, long_rows, short_mask, short_keys,
           short_rows, short_first, short_count, short_len, short_hash, out_doc, out_pos, out_kind, out_row):  # fmt: skip
    """Every n-gram of the texts in the long table, and every run equal to a short item (found by its
    first m words in the short table): writes up to len(out_doc) hits and returns how many there are
    (more than written: call again with room for all). out_kind: 0 long (out_row: its row), 1 short."""
    hits = 0
    cap = out_doc.shape[0]
    top_n = _U64(1)
    for _ in range(n - 1):
        top_n = top_n * _ROLL
    top_m = _U64(1)
    for _ in range(m - 1):
        top_m = top_m * _ROLL
    use_short = short_rows.shape[0] > 0 and m > 0
    for d in range(doc_offsets.shape[0] - 1):
        start, stop = doc_offsets[d], doc_offsets[d + 1]
        hn = _U64(0)
        hm = _U64(0)
        for i in range(start, stop):
            # the n-gram and the m-gram that end at word i
            if i - start >= n:
                hn = hn - words[i - n] * top_n
            hn = hn * _ROLL + words[i]
            if i - start >= m:
                hm = hm - words[i - m] * top_m
            hm = hm * _ROLL + words[i]
            if i - start + 1 >= n:
                key = _mix64(hn ^ _U64(n))
                row = _find(key, long_mask, long_keys, long_rows) if _maybe(key, long_bitmap, long_shift) else -1
                if row >= 0:
                    if hits < cap:
                        out_doc[hits] = d
                        out_pos[hits] = i - n + 1 - start
                        out_kind[hits] = 0
                        out_row[hits] = row
                    hits += 1
            if use_short and i - start + 1 >= m:
                group = _find(_mix64(hm ^ _U64(m)), short_mask, short_keys, short_rows)
                if group >= 0:
                    first = i - m + 1
                    for e in range(short_first[group], short_first[group] + short_count[group]):
                        k = short_len[e]
                        if first + k <= stop and _kgram_hash(words, first, k) == short_hash[e]:
                            if hits < cap:
                                out_doc[hits] = d
                                out_pos[hits] = first - start
                                out_kind[hits] = 1
                                out_row[hits] = e
                            hits += 1
    return hits


class EvalIndex:
    """The eval texts' n-grams (long: hash, text, position) and their short texts (whole: length,
    hash, text, grouped by the hash of their first `min_words` words), with hash tables over both."""

    def __init__(self, ngram: int, min_words: int, long_hash, long_text, long_pos, short_prefix, short_len, short_hash, short_text):
        self.ngram, self.min_words = ngram, min_words
        self.long_hash, self.long_text, self.long_pos = long_hash, long_text, long_pos
        order = np.argsort(short_prefix, kind="stable")
        self.short_prefix, self.short_len = short_prefix[order], short_len[order]
        self.short_hash, self.short_text = short_hash[order], short_text[order]
        self.long_table = Table(long_hash)
        groups, self.short_first, self.short_count = np.unique(self.short_prefix, return_index=True, return_counts=True)
        self.short_table = Table(groups)

    @classmethod
    def build(cls, texts: list[str], ngram: int, min_words: int) -> tuple["EvalIndex", np.ndarray, np.ndarray]:
        """From the eval texts; also returns the words per text, and whether the text is indexed
        (not when under `min_words` words, or numbers only)."""
        words = Words(normalise(texts))
        counts = words.counts()
        lettered = np.concatenate([[0], np.cumsum(words.lettered)])

        # an n-gram with no word holding a letter ("1 2 3 ... 13") says nothing about the item
        long_hash, long_text, long_pos = kgrams(words, ngram)
        first = words.doc_offsets[long_text] + long_pos
        keep = lettered[first + ngram] > lettered[first]
        long_hash, long_text, long_pos = long_hash[keep], long_text[keep], long_pos[keep]
        # the short texts: one hash of all their words, and one of their first min_words words
        short = np.flatnonzero((counts >= min_words) & (counts < ngram))
        starts = words.doc_offsets[short]
        enough = (lettered[starts + counts[short]] - lettered[starts]) * 2 >= counts[short]  # not mostly numbers
        short, starts = short[enough], starts[enough]
        whole, prefix = np.empty(len(short), np.uint64), np.empty(len(short), np.uint64)
        _short_hashes(words.hashes, starts, counts[short], min_words, whole, prefix)
        length, text = counts[short], short
        index = cls(ngram, min_words, long_hash, long_text, long_pos, prefix, length.astype(np.int64), whole, text.astype(np.int64))
        indexed = np.zeros(len(texts), np.bool_)
        indexed[long_text] = True
        indexed[text] = True
        return index, counts, indexed

    def save(self, path) -> None:
        np.savez(path, ngram=np.int64(self.ngram), min_words=np.int64(self.min_words), long_hash=self.long_hash,
                 long_text=self.long_text, long_pos=self.long_pos, short_prefix=self.short_prefix, short_len=self.short_len,
                 short_hash=self.short_hash, short_text=self.short_text)  # fmt: skip

    @classmethod
    def load(cls, path) -> "EvalIndex":
        with np.load(path) as z:
            return cls(int(z["ngram"]), int(z["min_words"]), z["long_hash"], z["long_text"], z["long_pos"], z["short_prefix"],
                       z["short_len"], z["short_hash"], z["short_text"])  # fmt: skip

    def matches(self, words: Words) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every matching run of the texts: (text index, word position, words, eval text, its word position)."""
        room = max(1024, len(words.hashes) // 32)  # hits are rare; a second pass only when they are not
        while True:
            out = [np.empty(room, np.int64) for _ in range(4)]
            n = _match(words.hashes, words.doc_offsets, self.ngram, self.min_words, self.long_table.bitmap,
                       self.long_table.bitmap_shift, self.long_table.mask, self.long_table.keys, self.long_table.rows, self.short_table.mask, self.short_table.keys, self.short_table.rows,
                       self.short_first, self.short_count, self.short_len, self.short_hash, *out)  # fmt: skip
            if n <= room:
                break
            room = n
        doc, pos, kind, row = (o[:n] for o in out)
        long = kind == 0
        length = np.where(long, self.ngram, self.short_len[np.where(long, 0, row)] if len(self.short_len) else self.ngram)
        text = np.where(long, self.long_text[np.where(long, row, 0)] if len(self.long_text) else 0,
                        self.short_text[np.where(long, 0, row)] if len(self.short_text) else 0)  # fmt: skip
        text_pos = np.where(long, self.long_pos[np.where(long, row, 0)] if len(self.long_pos) else 0, 0)
        return doc, pos, length, text, text_pos
