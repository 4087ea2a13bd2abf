"""The `decontaminate` stage: no evaluation item leaks into training data.

    corpus decontaminate IN... -o OUT --against EVAL... [--ngram 13] [--min-words 6] [--mode drop|redact]

Before any task runs, every eval source (corpus.decontaminate.items) is read and its texts' word
n-grams are indexed once (corpus.decontaminate.index), into the work folder; each task then hashes
its documents' n-grams the same way and looks them up. A document holding any n-gram of an eval
item (or the whole of an item shorter than the n-gram) is contaminated by it:

- `drop` (default): rejected with reason `contaminated`; the detail names the eval source, the item
  and the matching words;
- `redact`: the matching spans are cut out of the text, the document is kept, and its
  `decontamination` column records what was cut (eval source, items, characters).

The card lists, per eval source, the documents matched and every item found in the training data,
so the owner of an eval set knows which of its items are compromised.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import polars as pl
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field

from corpus.document import reject_where
from corpus.stage_stats import STATS_DIR, write_task_stats
from corpus.stages import Stage, declare

STAGE = "decontaminate"
INDEX_FILE = "eval_index.npz"
TEXTS_FILE = "eval_texts.parquet"
DECONTAMINATION_COLUMN = "decontamination"


class DecontaminateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    against: list[str] = Field(min_length=1, description="eval sources: dataset folders, train sft run folders, .json/.jsonl/.txt files")
    ngram: int = Field(13, ge=3, le=64, description="words per n-gram (GPT-3's decontamination used 13)")
    min_words: int = Field(6, ge=1, description="items with fewer words are too short to match without false alarms: listed, not matched")
    mode: Literal["drop", "redact"] = "drop"


def build_index(config: DecontaminateConfig, work: Path) -> None:
    """Read every eval source, index its n-grams, and write the index and the texts' table to `work`."""
    from corpus.decontaminate.index import EvalIndex
    from corpus.decontaminate.items import read_eval_items

    rows = []
    for source in config.against:
        for item in read_eval_items(source):
            rows += [(item.source, item.name, text) for text in item.texts]
    texts = pl.DataFrame(rows, schema={"source": pl.String, "item": pl.String, "text": pl.String}, orient="row")
    index, counts, indexed = EvalIndex.build(texts["text"].to_list(), config.ngram, config.min_words)
    texts = texts.with_columns(pl.Series("words", counts, dtype=pl.Int64), pl.Series("indexed", indexed))
    tmp = work / (INDEX_FILE + ".tmp.npz")
    index.save(tmp)
    tmp.replace(work / INDEX_FILE)
    texts.write_parquet(work / (TEXTS_FILE + ".tmp"))
    (work / (TEXTS_FILE + ".tmp")).replace(work / TEXTS_FILE)


def _ngram_text(text: str, position: int, length: int) -> str:
    """The words [position, position + length) of an eval text, as the index saw them."""
    from corpus.decontaminate.index import Words, normalise

    words = Words(normalise([text]))
    normal = normalise([text])[0].as_py()
    if position + length > len(words.start):
        return ""
    return " ".join(normal[words.start[i] : words.end[i]] for i in range(position, position + length))


def _cut(text: str, spans: list[tuple[int, int]]) -> tuple[str, int]:
    """`text` without the (merged) spans, each replaced by one space; and the characters removed."""
    out, removed, last = [], 0, 0
    for start, end in sorted(spans):
        if start < last:  # overlapping or adjacent runs of one item
            start = last
        if end <= start:
            continue
        out.append(text[last:start])
        removed += end - start
        last = end
    out.append(text[last:])
    return " ".join(part.strip(" ") for part in out if part.strip(" ")), removed


class Decontaminate(PipelineStep):
    name = "decontaminate"
    type = "filter"

    def __init__(self, config: DecontaminateConfig, work_dir: str):
        super().__init__()
        self.config = config
        self.work_dir = work_dir

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        from corpus.decontaminate.index import Words, normalise

        index, sources, items, item_texts = _loaded(self.work_dir)
        docs_by_source: Counter = Counter()
        docs_by_item: Counter = Counter()
        removed_chars = 0
        for table in data:
            normal = normalise(table.column("text"))
            words = Words(normal)
            doc, pos, length, text_idx, text_pos = index.matches(words)
            matched = np.unique(doc)
            details: list[str | None] = [None] * table.num_rows
            notes: list[str | None] = [None] * table.num_rows
            new_texts: dict[int, str] = {}
            order = np.lexsort((pos, doc))
            doc, pos, length, text_idx, text_pos = doc[order], pos[order], length[order], text_idx[order], text_pos[order]
            bounds = np.searchsorted(doc, matched), np.searchsorted(doc, matched, side="right")
            for d, lo, hi in zip(matched.tolist(), *bounds):
                hits = range(lo, hi)
                found = list(dict.fromkeys((sources[text_idx[i]], items[text_idx[i]]) for i in hits))
                for source in dict.fromkeys(s for s, _ in found):
                    docs_by_source[source] += 1
                for key in found:
                    docs_by_item[key] += 1
                first = lo
                phrase = _ngram_text(item_texts[text_idx[first]], int(text_pos[first]), int(length[first]))
                more = f" (and {len(found) - 1} more items)" if len(found) > 1 else ""
                details[d] = f'{sources[text_idx[first]]}: item {items[text_idx[first]]}: "{phrase}"{more}'
                if self.config.mode == "redact":
                    offset = words.doc_offsets[d]
                    spans = [(int(words.start[offset + pos[i]]), int(words.end[offset + pos[i] + length[i] - 1])) for i in hits]
                    new_texts[d], removed = _cut(normal[d].as_py(), spans)
                    removed_chars += removed
                    notes[d] = json.dumps({"removed_chars": removed, "spans": len(spans), "first": details[d],
                                           "items": [f"{s}: {n}" for s, n in found]}, ensure_ascii=False)  # fmt: skip
            if self.config.mode == "drop":
                mask = np.zeros(table.num_rows, bool)
                mask[matched] = True
                table = reject_where(table, pa.array(mask), "contaminated", pa.array(details, pa.string()))
            else:
                if new_texts:
                    column = table.column("text").to_pylist()
                    for d, text in new_texts.items():
                        column[d] = text
                    table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(column, pa.string()))
                table = table.append_column(DECONTAMINATION_COLUMN, pa.array(notes, pa.string()))
            yield table
        write_task_stats(self.work_dir, STAGE, rank, {
            "docs_by_source": dict(docs_by_source), "removed_chars": removed_chars,
            "docs_by_item": [[s, n, c] for (s, n), c in sorted(docs_by_item.items())],
        })  # fmt: skip


_LOADED: dict[str, tuple] = {}
_LOADED_LOCK = threading.Lock()


def _loaded(work_dir: str) -> tuple:
    """The index and the eval texts, read once per process: the tasks of a local run are threads and
    share them (read only)."""
    from corpus.decontaminate.index import EvalIndex

    key = str(Path(work_dir) / INDEX_FILE)
    with _LOADED_LOCK:
        stamp = (key, Path(key).stat().st_mtime_ns)
        if _LOADED.get("stamp") != stamp:
            texts = pl.read_parquet(Path(work_dir) / TEXTS_FILE)
            _LOADED.clear()
            _LOADED["stamp"] = stamp
            _LOADED["value"] = (EvalIndex.load(key), texts["source"].to_list(), texts["item"].to_list(), texts["text"].to_list())
        return _LOADED["value"]


def decontaminate_card_facts(work: Path, config: DecontaminateConfig, tasks: int) -> dict:
    """Per eval source: items, items too short to match, documents matched, and every item found."""
    from corpus.stage_stats import read_task_stats

    texts = pl.read_parquet(work / TEXTS_FILE)
    stats = read_task_stats(work, STAGE, tasks)
    docs_by_source: Counter = Counter()
    docs_by_item: dict[tuple[str, str], int] = defaultdict(int)
    for part in stats:
        docs_by_source.update(part.get("docs_by_source", {}))
        for source, item, count in part.get("docs_by_item", []):
            docs_by_item[(source, item)] += count
    per_item = texts.group_by("source", "item", maintain_order=True).agg(pl.col("indexed").any())
    out = {}
    for source in config.against:
        mine = per_item.filter(pl.col("source") == source)
        unmatchable = mine.filter(~pl.col("indexed"))["item"].to_list()
        found = sorted(((item, c) for (s, item), c in docs_by_item.items() if s == source), key=lambda x: (-x[1], x[0]))
        out[source] = {
            "items": mine.height,
            "items_unmatchable": len(unmatchable),  # every text under min_words words, or numbers only
            "unmatchable_examples": unmatchable[:20],
            "items_found": len(found),
            "docs_matched": int(docs_by_source.get(source, 0)),
            "found": [{"item": item, "docs": c} for item, c in found],
        }
    return {"decontamination": {"ngram": config.ngram, "min_words": config.min_words, "mode": config.mode,
                                "removed_chars": sum(p.get("removed_chars", 0) for p in stats), "by_eval_set": out}}  # fmt: skip


def decontaminate_job(inputs: list[str], name: str, config: DecontaminateConfig, progress: bool = True):
    from corpus.decontaminate.items import read_eval_items
    from corpus.execution import DatasetReader, StageJob, dataset_inputs

    files, lineage = dataset_inputs(inputs)
    # a bad or empty eval source fails before anything runs; the digests of the items go in the
    # config, so a changed eval set redoes the stage (and nothing else about its files does)
    digests = [items_digest(read_eval_items(source)) for source in config.against]

    def prepare(partial: Path, work: Path, executor) -> None:
        if not ((work / INDEX_FILE).is_file() and (work / TEXTS_FILE).is_file()):
            build_index(config, work)

    def make_steps(out_dir: str, work_dir: str):
        return [DatasetReader(files, work_dir, STAGE, progress=progress), Decontaminate(config, work_dir)]

    def facts(folder: Path, known: dict) -> dict:
        from corpus.execution import WORK_DIR

        return decontaminate_card_facts(folder / WORK_DIR, config, _tasks(folder / WORK_DIR))

    return StageJob(stage=STAGE, name=name, config={**config.model_dump(), "against_digests": digests}, inputs=lineage,
                    make_steps=make_steps, prepare=prepare, finalize_hook=facts, threads=True)  # fmt: skip


def _tasks(work: Path) -> int:
    return max(1, len(list((work / STATS_DIR).glob(f"{STAGE}-*.json"))))


def items_digest(items) -> str:
    """The identity of an eval set: its items' texts, in order (not their names, which hold the
    file's path: a copy of the file is the same eval set)."""
    import hashlib

    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item.texts, ensure_ascii=False).encode())
    return digest.hexdigest()


def _run(run):
    """Reads the latest dataset folder; `against` names eval files (relative to the pipeline) or earlier stages."""
    source = run.latest_dataset()
    options = run.options.model_copy(update={"against": [run.earlier_or_path(r) for r in run.options.against]})
    return run.publish(decontaminate_job([source], run.name, options, progress=run.progress))


declare(Stage("decontaminate", DecontaminateConfig, _run, "drop (or redact) documents that hold evaluation items"))
