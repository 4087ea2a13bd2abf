"""Verification of MinHash candidate pairs: the Jaccard of the two documents' real shingle sets.

MinHash LSH proposes a pair when one band of the signatures collides; dissimilar documents do
that now and then (the S-curve's tail). Before a candidate pair links two documents, the texts of
the documents that appear in candidate pairs (and only those) are read again from the input files,
one record batch at a time; each is tokenised and shingled by the same kernels as the signatures
(`corpus.dedup.minhash`) and kept as its sorted, distinct 32-bit shingle hashes in one flat buffer.
A compiled merge of two sorted arrays then gives each pair's Jaccard `|A & B| / |A | B|`.

Memory: 4 bytes per distinct shingle of the documents in candidate pairs (a shingle per word: about
two thirds of their text's bytes in English), no Python object per document; documents in no
candidate pair are never kept.
A 32-bit hash of a 64-bit shingle hash can make two different shingles of a pair equal with
probability about `|A| * |B| / 2**32` (3e-5 for two documents of 400 shingles), far below any
threshold's resolution.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.dedup import minhash
from corpus.errors import CorpusError
from corpus.execution import batch_rows, damaged_parquet


@numba.njit(cache=True, nogil=True)
def _radix_sort(a, tmp, counts):
    """Sort the uint32 array `a` in place: four stable passes of 8 bits (`tmp`: scratch of a's size;
    `counts`: 256 int64). For the few hundred values of a document, several times quicker than a
    comparison sort."""
    src, dst = a, tmp
    for shift in range(0, 32, 8):
        counts[:] = 0
        for i in range(src.shape[0]):
            counts[(src[i] >> shift) & 255] += 1
        total = 0
        for k in range(256):
            c = counts[k]
            counts[k] = total
            total += c
        for i in range(src.shape[0]):
            digit = (src[i] >> shift) & 255
            dst[counts[digit]] = src[i]
            counts[digit] += 1
        src, dst = dst, src  # after an even number of passes the result is back in `a`


@numba.njit(cache=True, nogil=True)
def _shingle_sets(tokens, doc_offsets, ngram, out, out_offsets):
    """Each document's shingle hashes (as `minhash._signatures` computes them; the high 32 bits),
    sorted and distinct, written one document after another; returns the number written."""
    n_docs = doc_offsets.shape[0] - 1
    scratch = np.empty(out.shape[0], dtype=np.uint32)
    counts = np.empty(256, dtype=np.int64)
    w = 0
    for d in range(n_docs):
        out_offsets[d] = w
        start = doc_offsets[d]
        n = doc_offsets[d + 1] - start
        n_shingles = 0 if n == 0 else max(1, n - ngram + 1)
        width = min(ngram, n)
        first = w
        for s in range(n_shingles):
            out[w] = np.uint32(minhash.shingle_hash(tokens, start + s, width) >> np.uint64(32))
            w += 1
        if w - first > 1:
            _radix_sort(out[first:w], scratch[: w - first], counts)
            last = first
            for i in range(first + 1, w):
                if out[i] != out[last]:
                    last += 1
                    out[last] = out[i]
            w = last + 1
    out_offsets[n_docs] = w
    return w


@numba.njit(cache=True, nogil=True)
def pair_jaccard(values, offsets, a, b, out):
    """Jaccard of the sorted distinct sets values[offsets[a[e]]:offsets[a[e]+1]] and the same for
    b[e], for every pair e; two empty sets have Jaccard 0 (an empty document is nobody's near copy)."""
    for e in range(a.shape[0]):
        i, i_end = offsets[a[e]], offsets[a[e] + 1]
        j, j_end = offsets[b[e]], offsets[b[e] + 1]
        size = (i_end - i) + (j_end - j)
        common = 0
        while i < i_end and j < j_end:
            x = values[i]
            y = values[j]
            if x == y:
                common += 1
                i += 1
                j += 1
            elif x < y:
                i += 1
            else:
                j += 1
        union = size - common
        out[e] = common / union if union > 0 else 0.0


def shingle_sets(texts: pa.Array, ngram: int, normalisation: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 values, int64 offsets): the sorted distinct shingle hashes of each text."""
    tokens, doc_offsets, _, _ = minhash.token_hashes(texts, normalisation)
    out = np.empty(max(len(tokens), 1), dtype=np.uint32)  # a document has at most one shingle per word
    offsets = np.empty(len(texts) + 1, dtype=np.int64)
    n = _shingle_sets(tokens, doc_offsets, ngram, out, offsets)
    return out[:n].copy(), offsets


def _file_sets(path: str, wanted: np.ndarray, ngram: int, normalisation: str) -> tuple[np.ndarray, np.ndarray]:
    """Shingle sets of the rows `wanted` (sorted positions in the file), read batch by batch."""
    values, counts = [], []
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        group_start = 0
        for g in range(meta.num_row_groups):
            group_rows = meta.row_group(g).num_rows
            lo, hi = np.searchsorted(wanted, [group_start, group_start + group_rows])
            if hi > lo:  # this row group holds wanted rows: read its texts in batches
                row = group_start
                for batch in parquet.iter_batches(batch_size=batch_rows(parquet), row_groups=[g], columns=["text"]):
                    blo, bhi = np.searchsorted(wanted, [row, row + batch.num_rows])
                    if bhi > blo:
                        texts = batch.column(0).take(pa.array(wanted[blo:bhi] - row))
                        v, off = shingle_sets(texts, ngram, normalisation)
                        values.append(v)
                        counts.append(np.diff(off))
                    row += batch.num_rows
            group_start += group_rows
    except (OSError, pa.ArrowException) as e:
        raise damaged_parquet(path, e) from None
    empty = np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.int64)
    return (np.concatenate(values), np.concatenate(counts)) if values else empty


class ShingleSets:
    """The sorted distinct shingle hashes of some of this run's documents (`nodes`: sorted row keys)."""

    def __init__(self, nodes: np.ndarray, values: np.ndarray, offsets: np.ndarray):
        self.nodes, self.values, self.offsets = nodes, values, offsets

    def jaccard(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """The Jaccard of each pair of row keys (src[e], dst[e]); NaN where one is not held (a saved
        index's document: its text is not here)."""
        out = np.full(len(src), np.nan)
        if len(self.nodes) == 0 or len(src) == 0:
            return out
        a = np.minimum(np.searchsorted(self.nodes, src), len(self.nodes) - 1)
        b = np.minimum(np.searchsorted(self.nodes, dst), len(self.nodes) - 1)
        held = (self.nodes[a] == src) & (self.nodes[b] == dst)
        found = np.empty(int(held.sum()), dtype=np.float64)
        pair_jaccard(self.values, self.offsets, a[held].astype(np.int64), b[held].astype(np.int64), found)
        out[held] = found
        return out


def read_shingle_sets(nodes: np.ndarray, files: list[str], row_starts: list[int], total_rows: int, ngram: int,
                      normalisation: str, workers: int = 1) -> ShingleSets:  # fmt: skip
    """The shingle sets of the rows `nodes` (row keys; those beyond `total_rows` are skipped), read
    again from the data files one record batch at a time."""
    nodes = np.unique(nodes[nodes < total_rows])
    bounds = list(row_starts) + [total_rows]
    jobs = []
    for f, path in enumerate(files):
        lo, hi = np.searchsorted(nodes, [bounds[f], bounds[f + 1]])
        if hi > lo:
            jobs.append((path, nodes[lo:hi] - bounds[f]))
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # Parquet and the kernels release the GIL
            parts = list(pool.map(lambda job: _file_sets(job[0], job[1], ngram, normalisation), jobs))
    else:
        parts = [_file_sets(path, wanted, ngram, normalisation) for path, wanted in jobs]
    values = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.uint32)
    counts = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    if len(counts) != len(nodes):
        raise CorpusError(f"{', '.join(files)}: the data files changed while the stage ran (rows missing); rerun")
    offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ShingleSets(nodes, values, offsets)
