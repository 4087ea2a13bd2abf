"""Evaluation items from the files users keep them in, each with where it came from.

An eval source is one of:
- a dataset folder (card.json + data/): one item per document, named by its `id`;
- a `train sft` run folder (its `data/test.jsonl`, the held-out split), or a `corpus instruct
  --test-split` folder (its `test.jsonl`);
- a JSON file (an array of records) or a JSON Lines file (.jsonl, .jsonl.gz): one item per record,
  named by its `id` field or FILE:LINE. Its texts are the fields it has of: text, content, prompt,
  question, instruction, input, response, answer, output, completion, chosen, rejected (a string or
  a list of messages), messages / conversations (a list of {role|from, content|value}; content may
  be a list of text parts). Each field's text is matched on its own, so an n-gram never spans two
  fields;
- a plain text file (.txt): one item per non-empty line, named FILE:LINE.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from corpus.errors import CorpusError

TEXT_FIELDS = ("text", "content", "prompt", "question", "instruction", "input", "response", "answer", "output",
               "completion", "chosen", "rejected")  # fmt: skip
MESSAGE_FIELDS = ("messages", "conversations")


@dataclass
class EvalItem:
    source: str  # the eval file or folder, as given
    name: str  # the record's id, or FILE:LINE
    texts: list[str] = field(default_factory=list)


def _message_text(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    content = message.get("content", message.get("value"))
    if isinstance(content, list):  # text parts
        content = "".join(str(p.get("text", p.get("value", ""))) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


def record_texts(record: Any) -> list[str]:
    """The texts of one eval record, field by field (empty when it has no recognisable field)."""
    if isinstance(record, str):
        return [record]
    if not isinstance(record, dict):
        return []
    texts = []
    for key in TEXT_FIELDS:
        value = record.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):  # chosen/rejected as messages
            texts += [t for t in map(_message_text, value) if t]
    for key in MESSAGE_FIELDS:
        value = record.get(key)
        if isinstance(value, list):
            texts += [t for t in map(_message_text, value) if t]
    return [t for t in texts if t.strip()]


def _read_text(path: Path) -> str:
    """An eval file's text, decompressed within ingest's limits (a gzip bomb stops with one line)."""
    from corpus.ingest.formats import IngestLimits
    from corpus.ingest.readers import DecompressionLimit, open_binary

    if not path.is_file():
        raise CorpusError(f"{path}: not a regular file")
    chunks = []
    try:
        with open_binary(str(path), IngestLimits()) as f:
            while chunk := f.read(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8")
    except DecompressionLimit as e:
        raise CorpusError(f"{path}: {e}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise CorpusError(f"{path}: cannot read the eval file ({' '.join(str(e).split())[:120]})") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, record) of a JSON array file or a JSON Lines file."""
    text = _read_text(path)
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        for i, row in enumerate(rows, start=1):
            yield i, row  # element number: a JSON array has no line per record
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno})") from None


def _json_items(path: Path, shown: str, source: str | None = None) -> Iterator[EvalItem]:
    array = _read_text(path).lstrip().startswith("[")
    for number, record in _records(path):
        texts = record_texts(record)
        where = f"{shown}:{'record ' if array else ''}{number}"
        if not texts:
            keys = ", ".join(sorted(record)[:8]) if isinstance(record, dict) else type(record).__name__
            raise CorpusError(f"{where}: no eval text in the record (fields: {keys}); expected one of "
                              f"{', '.join(TEXT_FIELDS + MESSAGE_FIELDS)}")  # fmt: skip
        name = str(record["id"]) if isinstance(record, dict) and isinstance(record.get("id"), (str, int)) else where
        yield EvalItem(source or shown, name, texts)


def _txt_items(path: Path, shown: str) -> Iterator[EvalItem]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            yield EvalItem(shown, f"{shown}:{number}", [line])


def _dataset_items(folder: Path) -> Iterator[EvalItem]:
    import pyarrow.parquet as pq

    from corpus.document import data_files

    for f in data_files(folder):
        table = pq.read_table(f, columns=["id", "text"])
        for doc_id, text in zip(table.column("id").to_pylist(), table.column("text").to_pylist()):
            if text and text.strip():
                yield EvalItem(str(folder), doc_id, [text])


def read_eval_items(path: str | Path) -> list[EvalItem]:
    """Every item of one eval source; a CorpusError names a bad file (and line) or an empty source."""
    from corpus.document import is_dataset

    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such eval file or folder")
    if path.is_dir():
        if is_dataset(path):
            items = list(_dataset_items(path))
        elif (path / "data" / "test.jsonl").is_file():  # a `train sft` run: its held-out split
            items = list(_json_items(path / "data" / "test.jsonl", str(path / "data" / "test.jsonl"), shown))
        elif (path / "test.jsonl").is_file():  # a `corpus instruct --test-split` folder: its held-out pairs
            items = list(_json_items(path / "test.jsonl", str(path / "test.jsonl"), shown))
        else:
            raise CorpusError(f"{path}: not a dataset folder, a `train sft` run folder (data/test.jsonl) or an instruct "
                              "folder with a held-out split (test.jsonl)")  # fmt: skip
    elif not path.is_file():
        raise CorpusError(f"{path}: not a regular file")
    elif path.name.endswith((".json", ".jsonl", ".jsonl.gz", ".json.gz")):
        items = list(_json_items(path, shown))
    elif path.suffix == ".txt":
        items = list(_txt_items(path, shown))
    else:
        raise CorpusError(f"{path}: an eval file is .json, .jsonl(.gz) or .txt, or a dataset or `train sft` run folder")
    if not items:
        raise CorpusError(f"{path}: the eval set holds no items; a decontamination against nothing would find nothing")
    return items
