"""Seed documents of a classifier, from the places people keep them, with their lineage.

A seed source is one of:
- a dataset folder: its kept documents (optionally only some domains);
- a `corpus instruct` folder: each pair of its pairs.jsonl (all pairs, train and test) as one text,
  question and answer joined by a newline; a `train sft` run folder: its data/train.jsonl likewise;
- a JSON array or JSON Lines file (.json, .jsonl, .jsonl.gz): one text per record, its text fields
  (text, prompt, instruction, input, output, messages, ... as `corpus decontaminate` reads them) joined;
- a .txt file: one text per non-empty line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from corpus.errors import CorpusError


def _dataset_texts(folder: Path, domains: list[str]) -> list[str]:
    from corpus.document import data_files

    files = [str(f) for f in data_files(folder)]
    if not files:
        return []
    frame = pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore")
    if domains:
        frame = frame.filter(pl.col("domain").is_in(domains))
    return frame.select("text").collect()["text"].to_list()


def _record_file_texts(path: Path) -> list[str]:
    from corpus.decontaminate.items import _json_items, _txt_items

    items = _txt_items(path, str(path)) if path.suffix == ".txt" else _json_items(path, str(path))
    return ["\n".join(item.texts) for item in items]


def read_seeds(paths: list[str], domains: list[str], flag: str, allow_empty: bool = False) -> tuple[list[str], list[dict]]:
    """(texts, lineage) of the seed sources in `paths`; a CorpusError names a bad one."""
    from corpus.document import file_sha256, is_dataset, read_card

    texts: list[str] = []
    lineage: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CorpusError(f"{path}: no such dataset folder or seed file ({flag})")
        if path.is_dir() and is_dataset(path):
            found = _dataset_texts(path, domains)
            card = read_card(path)
            lineage.append({"kind": "dataset", "path": str(path.resolve()), "name": card.get("name"), "stage": card.get("stage"),
                            "fingerprint": card.get("fingerprint"), "card_sha256": card.get("card_sha256"),
                            "domains": domains or None, "docs": len(found)})  # fmt: skip
        elif path.is_dir():
            pairs = next((p for p in (path / "pairs.jsonl", path / "data" / "train.jsonl") if p.is_file()), None)
            if pairs is None:
                raise CorpusError(f"{path}: not a dataset folder, a `corpus instruct` folder (pairs.jsonl) or a `train sft` "
                                  f"run folder (data/train.jsonl) ({flag})")  # fmt: skip
            found = _record_file_texts(pairs)
            lineage.append({"kind": "pairs", "path": str(pairs.resolve()), "sha256": file_sha256(pairs), "docs": len(found)})
        elif path.name.endswith((".json", ".jsonl", ".jsonl.gz", ".json.gz", ".txt")):
            found = _record_file_texts(path)
            lineage.append({"kind": "file", "path": str(path.resolve()), "sha256": file_sha256(path), "docs": len(found)})
        else:
            raise CorpusError(f"{path}: a seed source is a dataset folder, an instruct or sft run folder, or a "
                              f".json/.jsonl(.gz)/.txt file ({flag})")  # fmt: skip
        if not found and not allow_empty:
            raise CorpusError(f"{path}: no documents to use as seeds" + (f" of domain {', '.join(domains)}" if domains else "")
                              + f" ({flag})")  # fmt: skip
        texts += found
    return texts, lineage


def seeds_digest(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256((text or "").encode("utf-8", "surrogatepass")).digest())
    return digest.hexdigest()
