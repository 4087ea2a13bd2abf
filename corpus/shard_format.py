"""The token-shard format: what `corpus tokenize` writes and the trainer reads, defined once.

    SHARDS/
      train-00000.arrow ...  val-00000.arrow ...   Arrow IPC, one record batch each, SHARD_COLUMNS
      index.json            format, tokenizer {path, sha256, vocab_size}, dtype, eos_id, bos_id,
                            shards [{file, split, docs, tokens, by_domain, bytes, sha256}], totals

Both sides agree here on the shard schema and id dtypes, the index's name and how it is read,
what a shard's counts are and how a folder is verified against its index, how a tokenizer is
identified (the sha256 of its tokenizer.json) and loaded, the seeded per-document hash that both
splits and orders (the engine's train/val split and the trainer's SFT split use the same one), and
the chat template that corpus tokenizers carry.

Importing this module is light: numpy, pyarrow and tokenizers are imported where they are used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from corpus.errors import CorpusError

INDEX_JSON = "index.json"
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SHARD_COLUMNS = ("input_ids", "domain", "source", "id")
ID_DTYPES = ("uint16", "uint32")  # token id types a shard may hold; index.json names one

# One turn per message: role marker, content, end marker. Generation starts after `<|assistant|>`.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_MASK64 = 0xFFFFFFFFFFFFFFFF


class ShardsCorrupt(CorpusError):
    """A shard is missing, altered or unreadable: exit code 1, like a failed check."""

    exit_code = 1


# ---------------------------------------------------------------- schema and index


def arrow_dtype(name: str):
    """The pyarrow type of a token id dtype named in index.json ("uint16" or "uint32")."""
    import pyarrow as pa

    return {"uint16": pa.uint16(), "uint32": pa.uint32()}[name]


def shard_schema(dtype):
    """The schema of every shard: one row per document, its token ids a list of `dtype`."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("input_ids", pa.list_(pa.field("item", dtype, nullable=False)), nullable=False),
            pa.field("domain", pa.string()),
            pa.field("source", pa.string()),
            pa.field("id", pa.string(), nullable=False),
        ]
    )


def shard_stats(table) -> dict:
    """A shard's counts as index.json records them: docs, tokens, and both per domain."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tokens = pc.list_value_length(table.column("input_ids"))
    by = pa.table({"domain": pc.fill_null(table.column("domain"), "unknown"), "tokens": tokens})
    grouped = by.group_by("domain").aggregate([("tokens", "sum"), ("tokens", "count")]).sort_by("domain")
    by_domain = {
        d: {"docs": int(c), "tokens": int(t)}
        for d, t, c in zip(grouped["domain"].to_pylist(), grouped["tokens_sum"].to_pylist(), grouped["tokens_count"].to_pylist())
    }
    return {"docs": table.num_rows, "tokens": int(pc.sum(tokens).as_py() or 0), "by_domain": by_domain}


def _index_path(folder: Path) -> Path:
    path = folder / INDEX_JSON
    if not path.is_file():
        raise CorpusError(f"{folder}: not a token-shards folder (no {INDEX_JSON}; make one with `corpus tokenize`)")
    return path


def read_index(folder: str | Path) -> dict:
    """A shards folder's index.json; a one-line error when there is none or it is not JSON."""
    path = _index_path(Path(folder))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: not valid JSON ({e})") from None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_shards(folder: str | Path) -> dict:
    """Check checksums, schema and counts; return the index totals. Raises ShardsCorrupt naming the file."""
    import pyarrow as pa

    folder = Path(folder)
    index_path = _index_path(folder)
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        shards = index["shards"]
        dtype = arrow_dtype(index["dtype"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ShardsCorrupt(f"{index_path}: not a valid shard index ({type(e).__name__}: {e})") from None
    schema = shard_schema(dtype)
    problems = []
    for entry in shards:
        path = folder / entry["file"]
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        if file_sha256(path) != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from {INDEX_JSON} (the file was changed or truncated)")
            continue
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowException) as e:
            problems.append(f"{path}: not a readable Arrow IPC file ({' '.join(str(e).split())[:120]})")
            continue
        if not table.schema.equals(schema):
            problems.append(f"{path}: schema {table.schema.types} differs from the {index['dtype']} shard schema")
            continue
        stats = shard_stats(table)
        for key in ("docs", "tokens", "by_domain"):
            if stats[key] != entry[key]:
                problems.append(f"{path}: {key} is {stats[key]}, {INDEX_JSON} says {entry[key]}")
                break
    listed = {e["file"] for e in shards}
    strays = sorted(p.name for p in folder.glob("*.arrow") if p.name not in listed)
    problems += [f"{folder / name}: a shard not listed in {INDEX_JSON}" for name in strays]
    if problems:
        if len(problems) == 1:
            raise ShardsCorrupt(problems[0])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ShardsCorrupt(f"{len(problems)} problems: " + "; ".join(problems[:5]) + more)
    totals = index.get("totals", {})
    if sum(e["docs"] for e in shards) != totals.get("docs") or sum(e["tokens"] for e in shards) != totals.get("tokens"):
        raise ShardsCorrupt(f"{index_path}: shard counts do not add up to the totals")
    return totals


# ---------------------------------------------------------------- the tokenizer


def tokenizer_sha256(tokdir: str | Path) -> str:
    """A tokenizer's identity, as index.json records it: the sha256 of its tokenizer.json."""
    return file_sha256(Path(tokdir) / TOKENIZER_JSON)


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


# ---------------------------------------------------------------- the seeded document hash: splits and order


def id_hashes(ids: list[str]):
    """A 64-bit hash of each document id (a uint64 array), the same on every machine and Python version.

    The train/val split and the shuffle order both derive from it, so they depend only on the ids,
    not on how the input was split into files or tasks.
    """
    import numpy as np

    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little") for i in ids),
        dtype=np.uint64,
        count=len(ids),
    )


def mix_seed(hashes, seed: int):
    """splitmix64 of (hash xor seed) over a uint64 array: an order key that changes completely with the seed."""
    import numpy as np

    mask = np.uint64(_MASK64)
    with np.errstate(over="ignore"):
        z = hashes ^ np.uint64((seed * 0x9E3779B97F4A7C15) & _MASK64)
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & mask
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & mask
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & mask
        return z ^ (z >> np.uint64(31))


def unit_interval(hashes):
    """Map 64-bit hashes (a uint64 array) to floats in [0, 1)."""
    import numpy as np

    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
