"""`corpus shards verify DIR`: every shard in index.json is there, unchanged, and holds what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from corpus.document import file_sha256
from corpus.errors import CorpusError
from corpus.tokenize.shards import INDEX_JSON, shard_schema, shard_stats


class ShardsCorrupt(CorpusError):
    """A shard is missing, altered or unreadable: exit code 1, like a failed check."""

    exit_code = 1


def verify_shards(folder: str | Path) -> dict:
    """Check checksums, schema and counts; return the index totals. Raises ShardsCorrupt naming the file."""
    folder = Path(folder)
    index_path = folder / INDEX_JSON
    if not index_path.is_file():
        raise CorpusError(f"{folder}: not a token-shards folder (no {INDEX_JSON}; make one with `corpus tokenize`)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        shards = index["shards"]
        dtype = {"uint16": pa.uint16(), "uint32": pa.uint32()}[index["dtype"]]
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
