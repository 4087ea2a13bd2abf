"""Per-document text counts over Arrow string buffers, in numba kernels that release the GIL.

`string_buffers` hands a string array's offsets and UTF-8 bytes to a kernel without copying;
`chars_and_words` counts each text's code points and its words, a word being a run of characters
that are not Unicode White_Space (what the regex `\\S+` matches), so the card's word counts and a
regex count agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def save_table(cache: Path, table: np.ndarray) -> None:
    """Keep a built lookup table beside the code for the next process (written whole, then renamed,
    so a process reading it never sees half a file); a read-only install builds it each time."""
    try:
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, table)
        os.replace(tmp, cache)
    except OSError:
        pass


def string_buffers(strings: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets, uint8 bytes) of a string array, zero-copy where Arrow allows."""
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks() if strings.num_chunks != 1 else strings.chunk(0)
    if strings.null_count:
        strings = pc.fill_null(strings, "")
    if pa.types.is_string(strings.type):
        strings = strings.cast(pa.large_string())
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


@numba.njit(cache=True, inline="always")
def next_code_point(data, i, end):
    """(code point, byte width) of the UTF-8 sequence at data[i]; a truncated one is its first byte."""
    b0 = np.int64(data[i])
    width = 1 if b0 < 0x80 else (2 if b0 < 0xE0 else (3 if b0 < 0xF0 else 4))
    if width == 1 or i + width > end:
        return b0, min(width, end - i)
    if width == 2:
        return ((b0 & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    if width == 3:
        return ((b0 & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F), 3
    cp = (
        ((b0 & 0x07) << 18)
        | ((np.int64(data[i + 1]) & 0x3F) << 12)
        | ((np.int64(data[i + 2]) & 0x3F) << 6)
        | (np.int64(data[i + 3]) & 0x3F)
    )
    return cp, 4


@numba.njit(cache=True, inline="always")
def same_bytes(a_data, a, b_data, b, n):
    """Whether a_data[a:a+n] and b_data[b:b+n] hold the same bytes."""
    for j in range(n):
        if a_data[a + j] != b_data[b + j]:
            return False
    return True


FNV_OFFSET = np.uint64(0xCBF29CE484222325)  # FNV-1a, 64 bits
FNV_PRIME = np.uint64(0x100000001B3)


@numba.njit(cache=True, inline="always")
def mix64(x):
    """splitmix64's finaliser: a bijection that spreads every input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_ASCII_SPACE = np.zeros(128, dtype=np.int64)
_ASCII_SPACE[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = 1


@numba.njit(cache=True, nogil=True)
def _multibyte_space(data, i, end):
    """Is the character starting at data[i] (a lead byte) White_Space? U+0085, U+00A0, U+1680,
    U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000."""
    b = data[i]
    b1 = data[i + 1] if i + 1 < end else 0
    if b == 0xC2:
        return b1 == 0x85 or b1 == 0xA0
    b2 = data[i + 2] if i + 2 < end else 0
    if b == 0xE1:
        return b1 == 0x9A and b2 == 0x80
    if b == 0xE2:
        return (b1 == 0x80 and (b2 <= 0x8A or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF)) or (b1 == 0x81 and b2 == 0x9F)
    return b == 0xE3 and b1 == 0x80 and b2 == 0x80


@numba.njit(cache=True, nogil=True)
def _chars_and_words(data, offsets, ascii_space, chars, words):
    for d in range(offsets.shape[0] - 1):
        n_chars = 0
        n_words = 0
        after_space = 1  # a word starts at a non-space character that follows a space or the start
        end = offsets[d + 1]
        for i in range(offsets[d], end):
            b = data[i]
            if b < 0x80:
                space = ascii_space[b]
            elif b < 0xC0:  # continuation byte: inside a character already counted
                continue
            else:
                space = 1 if (b == 0xC2 or b == 0xE1 or b == 0xE2 or b == 0xE3) and _multibyte_space(data, i, end) else 0
            n_chars += 1
            n_words += after_space & (1 - space)
            after_space = space
        chars[d] = n_chars
        words[d] = n_words


def chars_and_words(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(code points, words) of each text as int64 arrays; a null text counts as empty."""
    offsets, data = string_buffers(texts)
    chars = np.empty(len(offsets) - 1, dtype=np.int64)
    words = np.empty(len(offsets) - 1, dtype=np.int64)
    _chars_and_words(data, offsets, _ASCII_SPACE, chars, words)
    return chars, words
