"""What the tokenizer trainer and the shard writer share: document hashes, tokenizer folders, outputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from corpus.errors import CorpusError
from corpus.outputs import OutputLock, check_output, made_by_us, mark, remove_ours, replace_hint

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
RESUME_FILE = "_work/fingerprint"  # in a partial folder: which attempt its finished tasks belong to

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def id_hashes(ids: list[str]) -> np.ndarray:
    """A 64-bit hash of each document id, the same on every machine and Python version.

    The train/val split and the shuffle order both derive from it, so they depend only on the ids,
    not on how the input was split into files or tasks.
    """
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") for i in ids),
        dtype=np.uint64,
        count=len(ids),
    )


def mix_seed(hashes: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (hash xor seed): an order key that changes completely with the seed."""
    with np.errstate(over="ignore"):
        z = hashes ^ np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def unit_interval(hashes: np.ndarray) -> np.ndarray:
    """Map 64-bit hashes to floats in [0, 1)."""
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def tokenizer_sha256(tokdir: Path) -> str:
    digest = hashlib.sha256()
    with open(Path(tokdir) / TOKENIZER_JSON, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _token_text(value) -> str | None:
    if isinstance(value, dict):  # AddedToken serialised by transformers
        return value.get("content")
    return value if isinstance(value, str) else None


def load_tokenizer(tokdir: str | Path):
    """The `tokenizers.Tokenizer` of a Hugging Face tokenizer folder and its named special tokens.

    Returns (tokenizer, specials) where specials maps bos/eos/pad/unk to (text, id) when defined.
    A folder without a readable tokenizer.json is a clear error, not a traceback.
    """
    from tokenizers import Tokenizer

    tokdir = Path(tokdir)
    if not tokdir.is_dir():
        raise CorpusError(f"{tokdir}: no such tokenizer folder")
    path = tokdir / TOKENIZER_JSON
    if not path.is_file():
        raise CorpusError(f"{tokdir}: not a tokenizer folder (no {TOKENIZER_JSON}; make one with `corpus tokenizer train`)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust side raises a bare Exception on malformed JSON
        first = " ".join(str(e).split())[:160]
        raise CorpusError(f"{path}: not a valid tokenizer file ({first})") from None
    specials: dict[str, tuple[str, int]] = {}
    config_path = tokdir / TOKENIZER_CONFIG
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CorpusError(f"{config_path}: not valid JSON ({e})") from None
        for role in ("bos", "eos", "pad", "unk"):
            text = _token_text(config.get(f"{role}_token"))
            if text is not None:
                token_id = tokenizer.token_to_id(text)
                if token_id is None:
                    raise CorpusError(f"{config_path}: {role}_token {text!r} is not in the vocabulary")
                specials[role] = (text, token_id)
    return tokenizer, specials


def vocab_extent(tokenizer) -> int:
    """One more than the largest token id: what an id dtype must hold (added tokens included)."""
    return max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1


class PartialOutput:
    """An output folder written under `OUT.partial` and renamed to `OUT` only when complete; the
    output's lock is held from start() to finish() or abandon()."""

    def __init__(self, output: str | Path, overwrite: bool, is_finished, inputs: list[str | Path] = ()):
        self.final = check_output(output, inputs)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.overwrite = overwrite
        self.is_finished = is_finished
        self.lock = OutputLock(self.final)

    def start(self, resume: str | None = None) -> Path:
        """The partial folder, emptied unless `resume` names the attempt it holds (its
        `_work/fingerprint`): then an interrupted run's finished tasks are kept."""
        self.lock.acquire()
        if self.final.exists() and not (self.overwrite and made_by_us(self.final)):
            what = "already exists" if self.is_finished(self.final) else "exists and is not a finished output"
            self.lock.release()
            raise CorpusError(f"{self.final}: {what}; {replace_hint(self.final)}")
        saved = self.partial / RESUME_FILE
        if resume is None or not saved.is_file() or saved.read_text().strip() != resume:
            remove_ours(self.partial)  # a half-written attempt of something else: nothing in it is trusted
        mark(self.partial)
        if resume is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(resume)
        return self.partial

    def release(self) -> None:
        """Keep the partial folder for a rerun to resume, and let go of the output."""
        self.lock.release()

    def abandon(self) -> None:
        """Remove the partial folder: these outputs cannot be resumed, so a failed run leaves nothing."""
        remove_ours(self.partial)
        self.lock.release()

    def finish(self) -> Path:
        remove_ours(self.final)
        os.replace(self.partial, self.final)
        self.lock.release()
        return self.final
