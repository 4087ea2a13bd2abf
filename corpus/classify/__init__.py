"""The `classify` stage: score every document with a fastText classifier and keep those above a cut.

    corpus classify IN... -o OUT --model CLFDIR [--name NAME] [--threshold T | --keep-top FRACTION] [--score-only]

Every document, kept or rejected, gets a `NAME_score` column: the classifier's probability that it is
of the positive class (NAME: the classifier's name unless given). The cut is, in order of precedence:

- `--keep-top F`: a global cut. A first pass scores every document and keeps only the scores (4 bytes
  a document); the cut is the score of the ceil(F x N)-th best document, and the second pass keeps
  every document at or above it (ties at the cut are all kept, so slightly more than F may be);
- `--threshold T`;
- else the threshold chosen when the classifier was trained (its card says how).

A document scoring below the cut is rejected with reason `NAME_below_threshold`. A document with no
word after normalisation (empty, or whitespace and nothing else) scores 0 and is rejected with reason
`empty_text`: it is not "not of the class", there is nothing to classify. `--score-only` keeps every
document and only adds the score.

Documents are scored a batch at a time: the batch normalised in one pass (corpus.classify.text), then
fastText's prediction for every line in one numba kernel over the model's matrices
(corpus.classify.predict), loaded once per process.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.document import reject_where
from corpus.stage_stats import STATS_DIR, read_task_stats, write_task_stats

STAGE = "classify"
CUT_FILE = "keep_top_cut.json"
NEAR = 5  # examples just above and just below the cut, in the card
OPENING = 200
BINS = 10


class ClassifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a classifier folder made by `corpus classifier train`")
    name: str | None = Field(None, description="the score column is NAME_score; default: the classifier's name")
    threshold: float | None = Field(None, ge=0, le=1, description="keep documents scoring at least this")
    keep_top: float | None = Field(None, gt=0, le=1, description="keep this share of the documents, the best scored")
    score_only: bool = Field(False, description="keep every document; only add the score")

    @model_validator(mode="after")
    def _one_cut(self) -> ClassifyConfig:
        if self.threshold is not None and self.keep_top is not None:
            raise ValueError("give --threshold or --keep-top, not both")
        return self


def score_name(name: str) -> str:
    """A column-safe score name: letters, digits and underscores."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "classifier"


def score_table(table: pa.Table, model_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores, empty) of a table's documents: fastText's P(positive) of their normalised lines, by
    corpus.classify.predict's batch kernel (the same numbers as `model.predict`, to a float32 ulp)."""
    import pyarrow.compute as pc

    from corpus.classify.model import load_predictor
    from corpus.classify.text import normalise

    lines = normalise(table.column("text"))
    empty = pc.equal(pc.binary_length(lines), 0).to_numpy(zero_copy_only=False)
    return load_predictor(model_path).scores(lines), empty


class _Tally:
    """Per (source, domain): documents, score histogram, sum; and the documents nearest the cut."""

    def __init__(self, cut: float | None):
        self.cut = cut
        self.groups: dict[str, dict] = {}
        self.above: list[tuple] = []  # (score, id, source, domain, opening), the lowest at or above the cut
        self.below: list[tuple] = []  # the highest below it

    def add(self, table: pa.Table, scores: np.ndarray, empty: np.ndarray) -> None:
        sources = table.column("source").to_pylist()
        domains = table.column("domain").to_pylist()
        keys = np.array([f"{s or 'unknown'}\t{d or 'unknown'}" for s, d in zip(sources, domains)])
        bins = np.minimum((scores * BINS).astype(int), BINS - 1)
        for key in np.unique(keys):
            mask = keys == key
            g = self.groups.setdefault(str(key), {"docs": 0, "empty": 0, "sum": 0.0, "histogram": [0] * BINS})
            g["docs"] += int(mask.sum())
            g["empty"] += int((mask & empty).sum())
            g["sum"] += float(scores[mask].sum())
            for b, c in zip(*np.unique(bins[mask], return_counts=True)):
                g["histogram"][int(b)] += int(c)
        if self.cut is None:
            return
        ok = ~empty
        above = np.where(ok & (scores >= self.cut))[0]
        below = np.where(ok & (scores < self.cut))[0]
        above = above[np.argsort(scores[above], kind="stable")][:NEAR]
        below = below[np.argsort(-scores[below], kind="stable")][:NEAR]
        ids = table.column("id")
        texts = table.column("text")

        def rows(idx):
            return [(float(scores[i]), ids[int(i)].as_py(), sources[i], domains[i], " ".join((texts[int(i)].as_py() or "")[:OPENING].split()))
                    for i in idx]  # fmt: skip

        self.above = sorted(self.above + rows(above), key=lambda r: (r[0], r[1]))[:NEAR]
        self.below = sorted(self.below + rows(below), key=lambda r: (-r[0], r[1]))[:NEAR]

    def to_json(self) -> dict:
        return {"groups": self.groups, "above": self.above, "below": self.below}


class Classify(PipelineStep):
    name = "classify"
    type = "filter"

    def __init__(self, config: ClassifyConfig, model_path: str, column: str, cut: float | None, work_dir: str):
        super().__init__()
        self.config = config
        self.model_path = model_path
        self.column = column
        self.cut = cut
        self.work_dir = work_dir

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        tally = _Tally(self.cut)
        for table in data:
            scores, empty = score_table(table, self.model_path)
            tally.add(table, scores, empty)
            if not self.config.score_only:
                table = reject_where(table, pa.array(empty), "empty_text",
                                     pa.array(["no words after normalisation"] * table.num_rows, pa.string()))  # fmt: skip
                below = scores < self.cut
                details = pa.array([f"score {s:.4f} < {self.cut:.4f}" if b else None for s, b in zip(scores.tolist(), below)], pa.string())
                table = reject_where(table, pa.array(below), f"{self.column}_below_threshold", details)
            yield table.append_column(pa.field(f"{self.column}_score", pa.float32()), pa.array(scores, pa.float32()))
        write_task_stats(self.work_dir, STAGE, rank, tally.to_json())


class ScoresOnly(PipelineStep):
    """The keep-top first pass: the scores of one task's documents, saved for the global cut."""

    name = "classify scores"
    type = "filter"

    def __init__(self, model_path: str, work_dir: str):
        super().__init__()
        self.model_path = model_path
        self.work_dir = work_dir

    def run(self, data, rank: int = 0, world_size: int = 1):
        parts = [score_table(table, self.model_path)[0] for table in data]
        scores = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        out = Path(self.work_dir) / f"scores-{rank:05d}.npy"
        np.save(out.with_suffix(".tmp.npy"), scores)
        out.with_suffix(".tmp.npy").replace(out)
        return iter(())


def keep_top_cut(scores: np.ndarray, fraction: float) -> float:
    """The score of the ceil(fraction x N)-th best document (1.0 when there are none)."""
    if not len(scores):
        return 1.0
    k = min(len(scores), max(1, math.ceil(fraction * len(scores))))
    return float(np.sort(scores)[::-1][k - 1])


def _merge_tallies(stats: list[dict]) -> dict:
    groups: dict[str, dict] = {}
    above, below = [], []
    for part in stats:
        for key, g in part.get("groups", {}).items():
            into = groups.setdefault(key, {"docs": 0, "empty": 0, "sum": 0.0, "histogram": [0] * BINS})
            for k in ("docs", "empty", "sum"):
                into[k] += g[k]
            into["histogram"] = [a + b for a, b in zip(into["histogram"], g["histogram"])]
        above += [tuple(r) for r in part.get("above", [])]
        below += [tuple(r) for r in part.get("below", [])]
    return {"groups": groups, "above": sorted(above, key=lambda r: (r[0], r[1]))[:NEAR],
            "below": sorted(below, key=lambda r: (-r[0], r[1]))[:NEAR]}  # fmt: skip


def classify_card_facts(folder: Path, work: Path, tasks: int, column: str, cut: float | None, cut_rule: str,
                        classifier: dict) -> dict:  # fmt: skip
    from corpus.cards.readme import table
    from corpus.classify.card import BIN_LABELS, score_plot

    merged = _merge_tallies(read_task_stats(work, STAGE, tasks))
    by = {"source": {}, "domain": {}}
    for key, g in sorted(merged["groups"].items()):
        source, domain = key.split("\t")
        for kind, value in (("source", source), ("domain", domain)):
            into = by[kind].setdefault(value, {"docs": 0, "empty": 0, "sum": 0.0, "histogram": [0] * BINS})
            for k in ("docs", "empty", "sum"):
                into[k] += g[k]
            into["histogram"] = [a + b for a, b in zip(into["histogram"], g["histogram"])]
    for groups in by.values():
        for g in groups.values():
            g["mean_score"] = round(g.pop("sum") / g["docs"], 4) if g["docs"] else None
    example = lambda r: {"score": round(r[0], 4), "id": r[1], "source": r[2], "domain": r[3], "opening": r[4]}
    facts = {
        "column": f"{column}_score",
        "classifier": classifier,
        "cut": None if cut is None else round(cut, 6),
        "cut_rule": cut_rule,
        "histogram_bins": BIN_LABELS,
        "by_source": by["source"],
        "by_domain": by["domain"],
        "just_above": [example(r) for r in merged["above"]],
        "just_below": [example(r) for r in merged["below"]],
    }
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    for kind in ("source", "domain"):
        series = {k: v["histogram"] for k, v in by[kind].items()}
        (plots / f"classify_scores_by_{kind}.svg").write_bytes(score_plot(f"{column}_score by {kind}", series))
    lines = ["## Classifier scores\n",
             f"Column `{column}_score`: the probability the classifier `{classifier['name']}` "
             f"(`{classifier['path']}`) gives the positive class. Cut: "
             + (f"{cut:.4f} ({cut_rule})." if cut is not None else f"none ({cut_rule}).") + "\n"]  # fmt: skip
    for kind in ("source", "domain"):
        rows = [[k, v["docs"], v["mean_score"] if v["mean_score"] is not None else "-", v["empty"], *v["histogram"]] for k, v in by[kind].items()]
        lines.append(table([kind, "documents", "mean score", "empty", *BIN_LABELS], rows) + "\n")
        lines.append(f"![classify_scores_by_{kind}.svg](plots/classify_scores_by_{kind}.svg)\n")
    if cut is not None:
        for title, rows in (("Just above the cut (kept)", facts["just_above"]), ("Just below the cut (rejected)", facts["just_below"])):
            lines.append(f"**{title}**\n")
            lines += [f"- {r['score']:.4f} **{r['domain']}** / {r['source']} `{r['id'][:12]}`: {r['opening']}" for r in rows] or ["- none"]
            lines.append("")
    return {"classify": facts, "readme_sections": ["\n".join(lines)]}


def classify_job(inputs: list[str], name: str, config: ClassifyConfig, progress: bool = True):
    from corpus.classify.model import MODEL_FILE, load_predictor
    from corpus.classify.train import read_classifier
    from corpus.execution import (
        WORK_DIR,
        DatasetReader,
        StageJob,
        dataset_inputs,
    )
    from corpus.executors import build_executor

    files, lineage = dataset_inputs(inputs)
    folder = Path(config.model).resolve()
    card = read_classifier(folder)
    model_path = str(folder / MODEL_FILE)
    load_predictor(model_path)  # a bad model file fails here, before any task; the tasks (threads) share it
    column = score_name(config.name or card.get("name") or folder.name)
    classifier = {"name": card.get("name"), "path": str(folder), "model_sha256": card["model"]["sha256"],
                  "trained_threshold": card["threshold"]["value"]}  # fmt: skip
    if config.keep_top is not None:
        rule = f"keep the top {config.keep_top:g} of documents by score (a first pass over all of them)"
    elif config.threshold is not None:
        rule = "--threshold"
    else:
        rule = f"the classifier's trained threshold ({card['threshold']['rule']})"
    if config.score_only:
        rule = "score only: every document kept; " + rule
    state = {"cut": None if config.keep_top is not None else (config.threshold if config.threshold is not None else card["threshold"]["value"])}

    def prepare(partial: Path, work: Path, executor) -> None:
        if config.keep_top is None:
            return
        cut_file = work / CUT_FILE
        if not cut_file.is_file():
            pre = work / "keep_top_pass"
            pre.mkdir(exist_ok=True)
            steps = [DatasetReader(files, str(pre), STAGE, progress=progress), ScoresOnly(model_path, str(pre))]
            build_executor(executor, steps, str(pre / "logs"), threads=True).run()
            parts = sorted(pre.glob("scores-*.npy"))
            if len(parts) != executor.tasks:
                raise RuntimeError(f"the keep-top pass wrote {len(parts)} of {executor.tasks} score files")
            scores = np.concatenate([np.load(p) for p in parts]) if parts else np.zeros(0, np.float32)
            cut_file.write_text(json.dumps({"cut": keep_top_cut(scores, config.keep_top), "docs": len(scores)}))
        state["cut"] = json.loads(cut_file.read_text())["cut"]

    def make_steps(out_dir: str, work_dir: str):
        return [DatasetReader(files, work_dir, STAGE, progress=progress), Classify(config, model_path, column, state["cut"], work_dir)]

    def facts(partial: Path, known: dict) -> dict:
        work = partial / WORK_DIR
        tasks = max(1, len(list((work / STATS_DIR).glob(f"{STAGE}-*.json"))))
        return classify_card_facts(partial, work, tasks, column, state["cut"], rule, classifier)

    job_config = {**config.model_dump(), "model": str(folder), "model_sha256": card["model"]["sha256"], "column": f"{column}_score"}
    return StageJob(stage=STAGE, name=name, config=job_config, inputs=lineage, make_steps=make_steps, prepare=prepare,
                    finalize_hook=facts, threads=True)  # fmt: skip
