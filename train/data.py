"""Token shards -> training batches, memory-mapped and resumable.

A shard (see corpus/shard_format.py) is one Arrow record batch whose `input_ids` column is a
list array: its values are the shard's flat token stream, its offsets the document boundaries.
Both are viewed as numpy arrays straight from the memory map, with no copy.

Windows: each shard's stream is cut into consecutive `seq_len + 1`-token windows that overlap by one
token (the last target of a window is the first input of the next), so every token is a target once
per epoch. Windows never cross a shard; a shard's tail shorter than a window is unused.

Order: windows are numbered across all shards; each epoch visits them in a permutation seeded by
(seed, epoch). A global micro-batch is the next `batch_size * world_size` windows of the permutation,
and rank r takes every world_size-th of them starting at r, so ranks never read the same window.
The loader's state is just (epoch, position in the permutation): saved in every checkpoint, it
makes a resumed run read exactly the batch the interrupted one would have read next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from corpus.shard_format import read_index
from train.errors import TrainError

IGNORE_INDEX = -100  # targets with this id add nothing to the loss (F.cross_entropy's default)


class TokenShard:
    """One memory-mapped shard: its flat tokens, document offsets and per-document domain."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._source = pa.memory_map(str(path))
            reader = pa.ipc.open_file(self._source)
            if reader.num_record_batches != 1:
                raise TrainError(f"{path}: {reader.num_record_batches} record batches; a shard holds exactly one")
            batch = reader.get_batch(0)
        except (OSError, pa.ArrowException) as e:
            raise TrainError(f"{path}: not a readable token shard ({' '.join(str(e).split())[:120]})") from None
        names = batch.schema.names
        if "domain" not in names or "input_ids" not in names or not pa.types.is_list(batch.schema.field("input_ids").type):
            raise TrainError(f"{path}: not a token shard (needs a list column input_ids and a domain column)")
        input_ids = batch.column("input_ids")
        # Views into the mapped file: nothing is read until a window touches it.
        self.offsets = input_ids.offsets.to_numpy()  # (docs + 1,) int32
        self.tokens = input_ids.values.to_numpy(zero_copy_only=True)  # (tokens,) uint16 or uint32
        domains = batch.column("domain").fill_null("unknown").dictionary_encode()
        self.domain_names: list[str] = domains.dictionary.to_pylist()
        self.doc_domain = domains.indices.to_numpy(zero_copy_only=False)  # (docs,) index into domain_names
        self.base = int(self.offsets[0])  # a batch written whole starts at 0; kept general

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    def num_windows(self, seq_len: int) -> int:
        return max(0, (self.num_tokens - 1) // seq_len)

    def window(self, index: int, seq_len: int) -> np.ndarray:
        start = self.base + index * seq_len
        return self.tokens[start : start + seq_len + 1]  # (seq_len + 1,) a view

    def doc_starts(self, index: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """For each of the window's seq_len + 1 tokens: where its document starts, and the document's row."""
        start = self.base + index * seq_len
        positions = np.arange(start, start + seq_len + 1)
        doc = np.searchsorted(self.offsets, positions, side="right") - 1
        return self.offsets[doc], doc


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) int64
    labels: torch.Tensor  # (B, T) int64, IGNORE_INDEX where a target is not trained on
    position_ids: torch.Tensor | None  # (B, T) reset at each document start, with doc_mask
    window_ids: np.ndarray  # (B,) global window numbers, for checks and for per-domain validation
    target_domains: torch.Tensor | None = None  # (B, T) domain index of each target token (validation)

    def to(self, device: torch.device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.labels), move(self.position_ids), self.window_ids, move(self.target_domains))


class WindowLoader:
    """Batches of (seq_len + 1)-token windows from one split's shards, in a seeded per-epoch order."""

    def __init__(self, folder: str | Path, split: str, seq_len: int, batch_size: int, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1, doc_mask: bool = False, shuffle: bool = True):  # fmt: skip
        self.folder = Path(folder)
        self.split = split
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.doc_mask = doc_mask
        self.shuffle = shuffle
        index = read_index(self.folder)
        self.shards = [TokenShard(self.folder / s["file"]) for s in index["shards"] if s.get("split") == split]
        # Domains are numbered across shards so per-domain sums can be accumulated in one tensor.
        self.domain_names = sorted({d for s in self.shards for d in s.domain_names})
        code = {d: i for i, d in enumerate(self.domain_names)}
        self._domain_maps = [np.array([code[d] for d in s.domain_names], np.int64) for s in self.shards]
        per_shard = np.array([s.num_windows(seq_len) for s in self.shards], np.int64)
        self.first_window = np.concatenate([[0], np.cumsum(per_shard)])  # (shards + 1,)
        self.num_windows = int(self.first_window[-1])
        self.epoch = 0
        self.position = 0  # windows of this epoch's order already consumed, by all ranks together
        self._order: np.ndarray | None = None
        self._order_epoch = -1

    # ---------------------------------------------------------------- order and state

    @property
    def windows_per_batch(self) -> int:
        """Windows one micro-batch consumes across all ranks."""
        return self.batch_size * self.world_size

    def batches_per_epoch(self) -> int:
        return self.num_windows // self.windows_per_batch

    def order(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            dtype = np.int32 if self.num_windows < 2**31 else np.int64
            if self.shuffle:
                rng = np.random.Generator(np.random.PCG64([self.seed, epoch]))
                self._order = rng.permutation(self.num_windows).astype(dtype)
            else:
                self._order = np.arange(self.num_windows, dtype=dtype)
            self._order_epoch = epoch
        return self._order

    def state_dict(self) -> dict:
        return {"split": self.split, "epoch": self.epoch, "position": self.position, "seed": self.seed,
                "seq_len": self.seq_len, "num_windows": self.num_windows, "windows_per_batch": self.windows_per_batch}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "seq_len", "num_windows", "windows_per_batch"):
            if state[key] != getattr(self, key):
                raise TrainError(
                    f"the checkpoint's data loader had {key}={state[key]}, this run has {getattr(self, key)}; "
                    "resume with the same data, --seq-len, --batch-size, --seed and number of processes"
                )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    # ---------------------------------------------------------------- batches

    def next_window_ids(self) -> np.ndarray:
        """This rank's windows of the next micro-batch; moves to the next epoch when one is used up."""
        if self.position + self.windows_per_batch > self.num_windows:
            self.epoch, self.position = self.epoch + 1, 0  # the incomplete last batch is dropped
        chunk = self.order(self.epoch)[self.position : self.position + self.windows_per_batch]
        self.position += self.windows_per_batch
        return chunk[self.rank :: self.world_size]  # (B,) strided: ranks never share a window

    def next_batch(self) -> Batch:
        return self.make_batch(self.next_window_ids())

    def make_batch(self, window_ids: np.ndarray, with_domains: bool = False) -> Batch:
        T = self.seq_len
        shard_of = np.searchsorted(self.first_window, window_ids, side="right") - 1
        local = window_ids - self.first_window[shard_of]
        tokens = np.empty((len(window_ids), T + 1), np.int64)  # (B, T+1)
        positions = np.empty((len(window_ids), T), np.int64) if self.doc_mask else None
        keep = np.ones((len(window_ids), T), bool)  # (B, T) which targets count
        domains = np.empty((len(window_ids), T), np.int64) if with_domains else None
        for row, (s, w) in enumerate(zip(shard_of.tolist(), local.tolist())):
            shard = self.shards[s]
            tokens[row] = shard.window(w, T)
            if self.doc_mask or with_domains:
                starts, doc = shard.doc_starts(w, T)  # (T+1,) each token's document start and number
                window_start = shard.base + w * T
                if self.doc_mask:
                    # Positions restart at each document, so transformers attends within documents only
                    # (block-diagonal causal mask) and RoPE sees each document from position 0.
                    positions[row] = np.arange(window_start, window_start + T) - np.maximum(starts[:T], window_start)
                    # A document's first token would be predicted from the previous document, which the
                    # mask hides: it is no target.
                    keep[row] = starts[1:] != np.arange(window_start + 1, window_start + T + 1)
                if with_domains:
                    domains[row] = self._domain_maps[s][shard.doc_domain[doc[1:]]]  # the target's document
        inputs = torch.from_numpy(tokens[:, :-1])  # (B, T)
        labels = torch.from_numpy(np.where(keep, tokens[:, 1:], IGNORE_INDEX))  # (B, T)
        return Batch(
            input_ids=inputs.contiguous(),
            labels=labels,
            position_ids=None if positions is None else torch.from_numpy(positions),
            window_ids=np.asarray(window_ids),
            target_domains=None if domains is None else torch.from_numpy(domains),
        )

    def eval_windows(self, max_windows: int | None = None) -> np.ndarray:
        """A fixed set of windows spread evenly over the split (all when `max_windows` is 0 or None).

        Spread, not the first ones: shards are in a seeded document order, and the first windows
        would be a handful of long documents, often of one domain.
        """
        if not max_windows or max_windows >= self.num_windows:
            return np.arange(self.num_windows)
        return np.unique(np.linspace(0, self.num_windows - 1, max_windows).round().astype(np.int64))

    def eval_batches(self, max_windows: int | None = None):
        """This rank's share of the evaluation windows, in batches: the same number on every rank, since
        a sharded (FSDP) model's forward pass is a collective."""
        ids = self.eval_windows(max_windows)
        ids = ids[: len(ids) - len(ids) % self.world_size]
        mine = ids[self.rank :: self.world_size]
        for start in range(0, len(mine), self.batch_size):
            yield self.make_batch(mine[start : start + self.batch_size], with_domains=True)
