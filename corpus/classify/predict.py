"""fastText's supervised prediction for our normalised lines, as a numba kernel over a whole batch.

fastText predicts a line by reading it through a C++ stream a character at a time and looking each
word up in a 30-million-slot table (120 MB, a cache miss per word): most of its time on short
documents. Our lines are already tokens separated by single spaces (corpus.classify.text), so this
kernel walks the batch's UTF-8 bytes once, looks words up in a compact table sized to the vocabulary,
and computes what fastText's predict computes: the mean of the input rows of the line's words, then
of its word n-grams (fastText's hashes: 32-bit FNV-1a of a
word's bytes, each byte sign-extended, kept as int32 and sign-extended to 64 bits; an n-gram's hash
h = h * 116049371 + next, row nwords + h % bucket; the
line ends with the `</s>` word, as a newline makes it), times the output matrix, softmax, and
log(p + 1e-5) exponentiated back. The mean of rows times the output matrix is the mean of each row's
product with it, so those products are computed once per model (two numbers a row, in float64) and a
document sums a few bytes per word instead of a whole row: the rows stay in cache. fastText sums in
float32, so the two differ by float32 rounding (at most 2.3e-7 on 25,000 real documents; the test
compares them on real text to 1e-6).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from corpus.text_kernels import string_buffers


@numba.njit(cache=True, nogil=True)
def _fnv32(data, start, end):
    """fastText's word hash: 32-bit FNV-1a over the bytes read as signed chars."""
    h = 2166136261
    for i in range(start, end):
        b = np.int64(data[i])
        if b > 127:
            b |= 0xFFFFFF00  # a signed char, widened to 32 bits
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


@numba.njit(cache=True, nogil=True)
def _widen(h32):
    """fastText keeps word hashes as int32 and widens them, sign and all, to 64 bits for n-grams."""
    return np.uint64(h32 | 0xFFFFFFFF00000000) if h32 & 0x80000000 else np.uint64(h32)


@numba.njit(cache=True, nogil=True)
def _word_id(slots, word_ids, word_bytes, word_offsets, data, start, end, h):
    """The vocabulary id of data[start:end] (hash h), or -1: open addressing on h, the bytes compared."""
    mask = slots.shape[0] - 1
    slot = h & mask
    n = end - start
    while True:
        w = word_ids[slot]
        if w == -1:
            return -1
        if slots[slot] == h:
            a, b = word_offsets[w], word_offsets[w + 1]
            if b - a == n:
                same = True
                for k in range(n):
                    if word_bytes[a + k] != data[start + k]:
                        same = False
                        break
                if same:
                    return w
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def _predict(data, offsets, slots, word_ids, word_bytes, word_offsets, eos_hash, eos_id, nwords, bucket, ngrams,
             row_logits, positive, scores):  # fmt: skip
    n_labels = row_logits.shape[1]
    out = np.empty(n_labels, np.float64)
    recent = np.zeros(8, np.uint64)  # the last ngrams - 1 word hashes, widened
    for d in range(offsets.shape[0] - 1):
        start, end = offsets[d], offsets[d + 1]
        if start == end:
            scores[d] = 0.0
            continue
        for lab in range(n_labels):
            out[lab] = 0.0
        rows = 0
        seen = 0  # words so far (for the n-grams that end at the current one)
        i = start
        while True:
            if i > end:  # past the last word: the `</s>` a newline makes
                wid = eos_id
                h32 = eos_hash
                j = i
            else:
                j = i
                while j < end and data[j] != 32:
                    j += 1
                h32 = _fnv32(data, i, j)
                wid = _word_id(slots, word_ids, word_bytes, word_offsets, data, i, j, h32)
            if wid >= 0:
                for lab in range(n_labels):
                    out[lab] += row_logits[wid, lab]
                rows += 1
            cur = _widen(h32)
            if bucket > 0:
                # the n-grams ending here, each from its first word: h = h * 116049371 + next
                for back in range(1, min(seen, ngrams - 1) + 1):
                    h = recent[(seen - back) % 8]
                    for k in range(back - 1, 0, -1):
                        h = h * np.uint64(116049371) + recent[(seen - k) % 8]
                    h = h * np.uint64(116049371) + cur
                    row = nwords + np.int64(h % np.uint64(bucket))
                    for lab in range(n_labels):
                        out[lab] += row_logits[row, lab]
                    rows += 1
            recent[seen % 8] = cur
            seen += 1
            if i > end:
                break
            i = j + 1
        top = -np.inf
        for lab in range(n_labels):
            out[lab] /= rows
            top = max(top, out[lab])
        z = 0.0
        for lab in range(n_labels):
            out[lab] = np.exp(out[lab] - top)
            z += out[lab]
        p = np.float32(out[positive] / z)
        p = np.exp(np.log(p + np.float32(1e-5)))  # fastText reports exp(log(p + 1e-5))
        scores[d] = min(max(p, np.float32(0.0)), np.float32(1.0))


class FastPredictor:
    """A fastText supervised model's matrices and vocabulary, ready for `_predict`."""

    def __init__(self, model, positive_label: str):
        args = model.f.getArgs()
        words = model.words
        self.nwords = len(words)
        self.bucket = int(args.bucket)
        self.ngrams = int(args.wordNgrams)
        if int(args.maxn) > 0:
            raise ValueError("subword models are not supported by the fast path")
        if self.ngrams > 8:
            raise ValueError("at most 8-grams")
        encoded = [w.encode("utf-8") for w in words]
        self.word_bytes = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)
        self.word_offsets = np.zeros(len(encoded) + 1, np.int64)
        self.word_offsets[1:] = np.cumsum([len(e) for e in encoded])
        size = 1 << max(4, (2 * self.nwords).bit_length())
        self.slots = np.zeros(size, np.int64)
        self.word_ids = np.full(size, -1, np.int64)
        for index, (word, raw) in enumerate(zip(words, encoded)):
            if model.get_word_id(word) != index:
                raise ValueError("the model's word ids are not in the order of its words")
            h = _fnv32(np.frombuffer(raw, np.uint8), 0, len(raw))
            slot = h & (size - 1)
            while self.word_ids[slot] != -1:
                slot = (slot + 1) & (size - 1)
            self.slots[slot] = h
            self.word_ids[slot] = index
        eos = np.frombuffer(b"</s>", np.uint8)
        self.eos_hash = _fnv32(eos, 0, 4)
        self.eos_id = model.get_word_id("</s>")
        # each row's contribution to each label's logit: the mean of rows times the output matrix is
        # the mean of these (8 bytes a row instead of 4 x dim: the rows a batch touches stay in cache)
        inputs = model.get_input_matrix().astype(np.float64)
        self.row_logits = np.ascontiguousarray(inputs @ model.get_output_matrix().astype(np.float64).T)
        self.positive = list(model.labels).index(positive_label)

    def scores(self, lines: pa.Array) -> np.ndarray:
        offsets, data = string_buffers(lines)
        scores = np.empty(len(offsets) - 1, np.float32)
        _predict(data, offsets, self.slots, self.word_ids, self.word_bytes, self.word_offsets, self.eos_hash, self.eos_id,
                 self.nwords, self.bucket, self.ngrams, self.row_logits, self.positive, scores)  # fmt: skip
        return scores
