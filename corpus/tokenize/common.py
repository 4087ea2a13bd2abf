"""What the tokenizer trainer and the shard writer share: document hashes, tokenizer folders, fingerprints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from corpus.errors import CorpusError
from corpus.outputs import fingerprint_of, input_identity

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"

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


# ---------------------------------------------------------------- fingerprints: is a finished output up to date?


def stage_fingerprint(kind: str, config: dict, inputs: list[str | Path]) -> str:
    """The fingerprint of a tokenizer, tokenize or classifier run: its kind, its config and what
    its input folders hold (not where they are). A finished output's card keeps it."""
    return fingerprint_of({"stage": kind, "config": config, "inputs": [input_identity(p) for p in inputs]})


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def tokenizer_fingerprint(config: dict, inputs: list[str | Path]) -> str:
    """`corpus tokenizer train` and the pipeline's tokenizer stage: the datasets and, with
    `extend`, the base tokenizer are the inputs."""
    extend = config.get("extend")
    if extend:
        config = {**config, "extend": _resolved(extend)}
    return stage_fingerprint("tokenizer", config, [*inputs, *([extend] if extend else [])])


def tokenize_fingerprint(config: dict, inputs: list[str | Path]) -> str:
    """`corpus tokenize` and the pipeline's tokenize stage: the datasets and the tokenizer are the
    inputs (the number of tasks is not: the shards do not depend on it)."""
    tokdir = config["tokenizer"]
    config = {**config, "tokenizer": _resolved(tokdir)}
    return stage_fingerprint("tokenize", config, [*inputs, tokdir])


def vocab_extent(tokenizer) -> int:
    """One more than the largest token id: what an id dtype must hold (added tokens included)."""
    return max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1
