"""The one text normalisation of the classifiers: training lines and prediction lines are made here.

fastText reads one example per line and splits words on whitespace, so a document becomes one line:

- Unicode NFKC (full-width letters, ligatures and compatibility forms become one form), lower case;
- every character that is not a letter, mark, digit or whitespace stands alone as a token
  (`deductible.` and `deductible` are the same word; `$` and `%` are words of their own);
- any run of whitespace, newlines and control characters is one space (a newline would end the
  example for fastText);
- long documents: the first MAX_CHARS characters of the normalised text, cut back to a whole word.
  fastText's document vector is the mean of its word and bigram vectors, so a page's opening
  thousand-odd words already fix its direction; reading past them costs time on megabyte pages and
  lets a long appendix (a licence, a table dump) outweigh what the page is about. The cut is in
  characters so that it runs as one Arrow kernel over a batch, not a Python loop per document.

Everything runs as Arrow compute kernels over a whole batch.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

MAX_CHARS = 10_000  # of normalised text: about 1,500-2,000 words
_RAW_CHARS = 4 * MAX_CHARS  # read at most this much raw text (NFKC and the spacing only grow it a little)
_PUNCTUATION = r"([^\p{L}\p{M}\p{N}\s\x0b\p{Z}\p{Cc}])"
_SPACES = r"[\s\x0b\p{Z}\p{Cc}]+"


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
    arr = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    arr = pc.replace_substring_regex(arr, _PUNCTUATION, r" \1 ")
    arr = pc.replace_substring_regex(arr, _SPACES, " ")
    arr = pc.utf8_trim(arr, " ")
    long = pc.greater(pc.utf8_length(arr), MAX_CHARS)
    if pc.any(long).as_py():
        cut = pc.utf8_slice_codeunits(arr, 0, MAX_CHARS + 1)
        cut = pc.replace_substring_regex(cut, r" ?[^ ]*$", "")  # the last, possibly partial, word
        arr = pc.if_else(long, cut, arr)
    return arr


def fasttext_lines(texts) -> list[str]:
    """normalise() as Python strings, what fastText's train and predict take."""
    return normalise(texts).to_pylist()
