"""Duplicate paragraphs and lines of each text, counted in numba kernels over the batch's Arrow
string buffer: Gopher repetition's paragraphs (the stripped text split on runs of two or more
newlines) and lines (split on runs of newlines), and FineWeb's lines (split on each newline, blank
ones left out). A piece repeats an earlier piece of the same text when their bytes are equal: the
kernels find candidates by a 64-bit hash and compare the bytes, so a hash collision cannot count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from corpus.filter.word_stats import _SPACE, char_classes
from corpus.text_kernels import FNV_OFFSET as _FNV_OFFSET
from corpus.text_kernels import FNV_PRIME as _FNV_PRIME
from corpus.text_kernels import mix64 as _mix64
from corpus.text_kernels import next_code_point, same_bytes, string_buffers

_U64 = np.uint64


@numba.njit(cache=True, inline="always")
def _piece_table(table_bits):
    """An open-addressing table of 2**table_bits pieces: (mask, hash keys, (start, end) of each piece,
    stamps). A slot belongs to the current document and kind of piece only while its stamp is theirs,
    so the table is never cleared between documents."""
    mask = (1 << table_bits) - 1
    return mask, np.empty(mask + 1, np.uint64), np.empty((mask + 1, 2), np.int64), np.full(mask + 1, -1, np.int64)


@numba.njit(cache=True, inline="always")
def _repeats(data, a, z, stamp, keys, starts, stamps, mask):
    """Whether data[a:z] equals a piece seen under this stamp; if not, it is remembered. Returns
    (repeats, characters of the piece)."""
    h = _FNV_OFFSET
    chars = 0
    for j in range(a, z):
        b = data[j]
        h = (h ^ _U64(b)) * _FNV_PRIME
        chars += (b & 0xC0) != 0x80
    h = _mix64(h ^ _U64(z - a))
    slot = np.int64(h & _U64(mask))
    while stamps[slot] == stamp:
        if keys[slot] == h:
            other = starts[slot, 0]
            if starts[slot, 1] - other == z - a and same_bytes(data, other, data, a, z - a):
                return True, chars
        slot = (slot + 1) & mask
    stamps[slot] = stamp
    keys[slot] = h
    starts[slot, 0] = a
    starts[slot, 1] = z
    return False, chars


@numba.njit(cache=True, inline="always")
def _is_space(data, i, end, classes):
    """(White_Space?, byte width) of the character at data[i]."""
    cp, width = next_code_point(data, i, end)
    return (classes[cp] & _SPACE) != 0, width


@numba.njit(cache=True, nogil=True)
def _gopher_pieces(data, offsets, classes, table_bits, out):
    """out[d] = (paragraphs, duplicated paragraphs, their characters, lines, duplicated lines, their
    characters, characters of the text)."""
    mask, keys, starts, stamps = _piece_table(table_bits)
    for d in range(offsets.shape[0] - 1):
        start, end = offsets[d], offsets[d + 1]
        chars = 0
        for i in range(start, end):
            chars += (data[i] & 0xC0) != 0x80
        # the text stripped of White_Space at both ends
        s = start
        while s < end:
            space, width = _is_space(data, s, end, classes)
            if not space:
                break
            s += width
        e = end
        while e > s:
            c = e - 1
            while c > s and (data[c] & 0xC0) == 0x80:  # back to the first byte of the last character
                c -= 1
            space, width = _is_space(data, c, end, classes)
            if not space:
                break
            e = c
        out[d, 6] = chars
        # paragraphs: split on runs of 2+ newlines (the stripped text neither starts nor ends with one)
        stamp = 2 * d
        n = dups = dup_chars = 0
        piece = s
        i = s
        while i <= e:
            if i < e and data[i] != 10:
                i += 1
                continue
            j = i
            while j < e and data[j] == 10:
                j += 1
            if i == e or j - i >= 2:
                repeats, piece_chars = _repeats(data, piece, i, stamp, keys, starts, stamps, mask)
                n += 1
                if repeats:
                    dups += 1
                    dup_chars += piece_chars
                piece = j
            i = j if j > i else i + 1
        out[d, 0], out[d, 1], out[d, 2] = n, dups, dup_chars
        # lines: split on runs of newlines, the empty piece before a leading / after a trailing run
        # included (an empty text has none)
        stamp = 2 * d + 1
        n = dups = dup_chars = 0
        if end > start:
            piece = start
            i = start
            while i <= end:
                if i < end and data[i] != 10:
                    i += 1
                    continue
                repeats, piece_chars = _repeats(data, piece, i, stamp, keys, starts, stamps, mask)
                n += 1
                if repeats:
                    dups += 1
                    dup_chars += piece_chars
                j = i
                while j < end and data[j] == 10:
                    j += 1
                piece = j
                i = j if j > i else i + 1
        out[d, 3], out[d, 4], out[d, 5] = n, dups, dup_chars


@numba.njit(cache=True, nogil=True)
def _fineweb_lines(data, offsets, classes, stop, short_length, table_bits, out):
    """out[d] = (non-blank lines, ending in a stop character, at most short_length characters,
    duplicated, their characters, newlines, characters of the text); lines split on each newline."""
    mask, keys, starts, stamps = _piece_table(table_bits)
    for d in range(offsets.shape[0] - 1):
        start, end = offsets[d], offsets[d + 1]
        n = punct = short = dups = dup_chars = newlines = chars = 0
        piece = start
        blank = True
        last = -1  # the last code point of the line
        line_chars = 0
        i = start
        while i <= end:
            if i == end or data[i] == 10:
                if not blank:
                    repeats, _ = _repeats(data, piece, i, d, keys, starts, stamps, mask)
                    n += 1
                    punct += last >= 0 and last < stop.shape[0] and stop[last]
                    short += line_chars <= short_length
                    if repeats:
                        dups += 1
                        dup_chars += line_chars
                if i == end:
                    break
                newlines += 1
                chars += 1
                i += 1
                piece = i
                blank = True
                last = -1
                line_chars = 0
                continue
            cp, width = next_code_point(data, i, end)
            if not classes[cp] & _SPACE:
                blank = False
            last = cp
            line_chars += 1
            chars += 1
            i += width
        out[d, 0], out[d, 1], out[d, 2], out[d, 3], out[d, 4], out[d, 5], out[d, 6] = n, punct, short, dups, dup_chars, newlines, chars


def _table_bits(offsets: np.ndarray, data: np.ndarray) -> int:
    """Bits of a hash table with room for twice the pieces of the text with the most newlines."""
    newline_docs = np.searchsorted(offsets, np.flatnonzero(data == 10), side="right") - 1
    most = int(np.bincount(newline_docs).max()) if newline_docs.size else 0
    return max(4, int(2 * (most + 2)).bit_length())


@dataclass
class GopherPieces:
    paragraphs: np.ndarray
    para_dups: np.ndarray
    para_dup_chars: np.ndarray
    lines: np.ndarray
    line_dups: np.ndarray
    line_dup_chars: np.ndarray
    chars: np.ndarray


def gopher_pieces(texts) -> GopherPieces:
    """Gopher repetition's paragraph and line duplicates of each text (pyarrow strings or a polars Series)."""
    offsets, data = string_buffers(texts.to_arrow() if hasattr(texts, "to_arrow") else texts)
    out = np.zeros((len(offsets) - 1, 7), np.int64)
    _gopher_pieces(data, offsets, char_classes(), _table_bits(offsets, data), out)
    return GopherPieces(*out.T)


@dataclass
class FinewebLines:
    lines: np.ndarray  # non-blank lines
    punct: np.ndarray  # of those, ending in a stop character
    short: np.ndarray  # at most short_length characters
    dups: np.ndarray  # repeating an earlier line exactly
    dup_chars: np.ndarray
    newlines: np.ndarray
    chars: np.ndarray


def fineweb_lines(texts, stop_chars: str, short_length: int) -> FinewebLines:
    offsets, data = string_buffers(texts.to_arrow() if hasattr(texts, "to_arrow") else texts)
    stop = np.zeros(max(map(ord, stop_chars), default=0) + 1, np.bool_)
    stop[[ord(c) for c in stop_chars]] = True
    out = np.zeros((len(offsets) - 1, 7), np.int64)
    _fineweb_lines(data, offsets, char_classes(), stop, short_length, _table_bits(offsets, data), out)
    return FinewebLines(*out.T)
