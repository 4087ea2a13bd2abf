"""The one text normalisation of the classifiers: training lines and prediction lines are made here.

fastText reads one example per line and splits words on whitespace, so a document becomes one line:

- Unicode NFKC (full-width letters, ligatures and compatibility forms become one form), lower case;
- letters, marks and digits (Unicode categories L, M, N) make words; every other visible character
  (punctuation, symbols) stands alone as a token, so `deductible.` and `deductible` are the same word
  and `$` and `%` are words of their own; format characters (category Cf: soft hyphens, zero-width
  joiners) are dropped;
- any run of whitespace, separators (Z) and control characters (Cc), newlines included, is one space
  (a newline would end the example for fastText);
- long documents: the first MAX_CHARS characters of the normalised text, cut back to a whole word.
  fastText's document vector is the mean of its word and bigram vectors, so a page's opening
  thousands of words already fix its direction; reading past them costs time on megabyte pages and
  lets a long appendix (a licence, a table dump) outweigh what the page is about. Measured on the
  benchmark pairs (docs/classify.md): a cut at 1,000 or 2,000 characters loses recall; 20,000 did
  a little better than 5,000 and 10,000.

NFKC and lower case are Arrow kernels, run only on the texts that are not plain ASCII (NFKC leaves ASCII
as it is; its lower case is done in the pass that follows); the rest is one pass of a numba kernel over the batch's UTF-8
bytes, with a table of the character classes (built once per process from `unicodedata`, for code
points below U+30000; above, a character counts as a letter).
"""

from __future__ import annotations

import threading
import unicodedata

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.text_kernels import string_buffers

MAX_CHARS = 20_000  # of normalised text: about 3,000-4,000 words
_RAW_CHARS = 4 * MAX_CHARS  # read at most this much raw text (NFKC and the spacing only grow it a little)
_TABLE_SIZE = 0x30000
SPACE, WORD, OTHER, DROP = 0, 1, 2, 3

_TABLE: np.ndarray | None = None
_TABLE_LOCK = threading.Lock()


def _class_of(cp: int) -> int:
    c = chr(cp)
    cat = unicodedata.category(c)
    if c.isspace() or cat[0] == "Z" or cat == "Cc":
        return SPACE
    if cat[0] in "LMN":
        return WORD
    if cat == "Cf":
        return DROP
    return OTHER


def char_classes() -> np.ndarray:
    global _TABLE
    with _TABLE_LOCK:
        if _TABLE is None:
            _TABLE = np.fromiter((_class_of(cp) for cp in range(_TABLE_SIZE)), dtype=np.uint8, count=_TABLE_SIZE)
        return _TABLE


@numba.njit(cache=True, nogil=True)
def _tokens(data, offsets, table, max_chars, out, out_offsets):
    """Space out each text's tokens into `out` (see the module's rules); out_offsets[d + 1] = its end."""
    pos = 0
    for d in range(offsets.shape[0] - 1):
        start_out = pos
        last_space = -1  # position in `out` of the last space written
        chars = 0
        pending = False  # a space is due before the next visible character
        truncated = False
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            b = data[i]
            if b < 0x80:
                if 65 <= b <= 90:  # A-Z
                    b += 32
                cp = b
                n = 1
            elif b < 0xE0:
                cp = ((b & 0x1F) << 6) | (data[i + 1] & 0x3F) if i + 1 < end else 0xFFFD
                n = 2
            elif b < 0xF0:
                cp = ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F) if i + 2 < end else 0xFFFD
                n = 3
            else:
                cp = ((b & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F) if i + 3 < end else 0xFFFD
                n = 4
            cls = table[cp] if cp < table.shape[0] else 1
            if cls == 3:
                i += n
                continue
            if cls == 0:
                pending = True
                i += n
                continue
            need_space = (pending or cls == 2) and pos > start_out
            if chars + (2 if need_space else 1) > max_chars:
                truncated = True
                break
            if need_space:
                out[pos] = 32
                last_space = pos
                pos += 1
                chars += 1
            if n == 1:
                out[pos] = b  # lowered
            else:
                for k in range(n):
                    out[pos + k] = data[i + k]
            pos += n
            chars += 1
            pending = cls == 2  # a punctuation character stands alone
            i += n
        if truncated and last_space >= 0:
            pos = last_space  # drop the last, possibly partial, word
        out_offsets[d + 1] = pos


def normalise(texts) -> pa.Array:
    """The fastText line of each text (a list, an Arrow array or chunked array; nulls become "")."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    elif not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.large_string())
    if not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.large_string())
    arr = pc.fill_null(texts, "")
    arr = pc.utf8_slice_codeunits(arr, 0, _RAW_CHARS)
    ascii_rows = pc.string_is_ascii(arr)
    if not pc.all(ascii_rows).as_py():  # NFKC and Unicode lower case for the others; ASCII is lowered in _tokens
        others = pc.invert(ascii_rows)
        arr = pc.replace_with_mask(arr, others, pc.utf8_lower(pc.utf8_normalize(arr.filter(others), "NFKC")))
    offsets, data = string_buffers(arr)
    out = np.empty(3 * (int(offsets[-1]) - int(offsets[0])) + 1, np.uint8)  # a character at most doubles its spaces
    out_offsets = np.zeros(len(offsets), np.int64)
    _tokens(data, offsets, char_classes(), MAX_CHARS, out, out_offsets)
    return pa.LargeStringArray.from_buffers(len(arr), pa.py_buffer(out_offsets), pa.py_buffer(out[: out_offsets[-1]]))


def fasttext_lines(texts) -> list[str]:
    """normalise() as Python strings, what fastText's train and predict take."""
    return normalise(texts).to_pylist()
