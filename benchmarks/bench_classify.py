"""Classifiers: quality against plain fastText, `corpus classify` speed against datatrove, memory.

    .venv/bin/python benchmarks/bench_classify.py quality [--positives 200]
    .venv/bin/python benchmarks/bench_classify.py speed [--docs 50000] [--work /tmp/bench-classify]
    .venv/bin/python benchmarks/bench_classify.py memory [--docs 1000000] [--work /tmp/bench-classify]

quality: two labelled pairs from ../shared/data (benchmarks/classify_data.py): insurance pages against
general text, and Python documentation against web, Wikipedia and insurance text. Seeds and test
documents come from different folders or sources. Ours: `corpus.classify.train.fit` with its default
options (what `corpus classifier train` runs), cut at the threshold it picks on its held-out seeds.
Peer: `fasttext.train_supervised` with its defaults on the same seeds (newlines as spaces, nothing
else), cut where its label flips (P >= 0.5). Both are scored on the test documents.

speed: a dataset folder of DOCS documents resampled from real text (C4, Wikipedia paragraphs, Python
docs and healthcare.gov pages); `corpus classify --tasks 2 --workers 2` (whole process, from the
command to the finished card) against datatrove's FastTextClassifierFilter with the same model file,
read and written with datatrove's Parquet reader and writer on its LocalPipelineExecutor, 2 tasks,
2 workers (whole process). The filter is given the model as a local file (no download), and does
not save its scores (save_labels_in_metadata=False: its labels come back in varying order, which its
Parquet writer refuses as a schema change); ours writes the score column.

memory: `corpus classify --tasks 2 --score-only` on DOCS synthetic documents; the peak resident
memory of the command's processes (summed over the process tree, sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from summary import load_average, record  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))

BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- quality


def _fresh_pages() -> None:
    """Large blocks from fresh (zeroed) pages, as in a new process: fastText 0.9.2 leaves most of its
    input matrix uninitialised, and after other allocations in this process it can start from
    leftover bytes and diverge ("Encountered NaN"). corpus trains in a fresh process; the peer,
    trained in this one, gets the same start this way."""
    import ctypes
    import ctypes.util

    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def _peer_scores(pos: list[str], neg: list[str], test: list[str], work: Path):
    import fasttext
    import numpy as np

    _fresh_pages()
    path = work / "peer-train.txt"
    rows = [f"__label__positive {t}" for t in pos] + [f"__label__negative {t}" for t in neg]
    random.Random(0).shuffle(rows)
    path.write_text("\n".join(" ".join(r.split()) for r in rows) + "\n", encoding="utf-8")
    try:
        model = fasttext.train_supervised(input=str(path), verbose=0)
    except RuntimeError as e:
        return None, str(e)
    labels, probs = model.predict([" ".join(t.split()) for t in test], k=2)
    return np.array([dict(zip(l, p)).get("__label__positive", 0.0) for l, p in zip(labels, probs)]), None


def quality(args) -> None:
    import numpy as np
    from classify_data import pair

    import corpus.progress
    from corpus.classify.model import metrics_at, positive_scores, roc_auc
    from corpus.classify.text import fasttext_lines
    from corpus.classify.train import ClassifierConfig, fit

    corpus.progress.set_quiet(True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print("| pair | seeds (pos / neg) | test (pos / neg) | method | threshold | precision | recall | F1 | ROC AUC | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("insurance", "python"):
        d = pair(name, positives=args.positives)
        test = d["test_pos"] + d["test_neg"]
        truth = np.array([True] * len(d["test_pos"]) + [False] * len(d["test_neg"]))
        head = f"| {name} | {len(d['pos'])} / {len(d['neg'])} | {len(d['test_pos'])} / {len(d['test_neg'])} |"
        t0 = time.perf_counter()
        result = fit(d["pos"], d["neg"], ClassifierConfig(), work / "ours")
        seconds = time.perf_counter() - t0
        scores = positive_scores(result["model"], fasttext_lines(test))
        t = result["held_out"]["threshold"]
        m = metrics_at(scores, truth, t)
        print(f"{head} ours, defaults | {t:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {roc_auc(scores, truth):.3f} | {seconds:.1f} |")
        t0 = time.perf_counter()
        peer, error = _peer_scores(d["pos"], d["neg"], test, work)
        seconds = time.perf_counter() - t0
        if peer is None:
            print(f"{head} fasttext.train_supervised defaults | - | failed: {error} | | | | {seconds:.1f} |")
        else:
            m = metrics_at(peer, truth, 0.5)
            print(f"{head} fasttext.train_supervised defaults | 0.5 | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {roc_auc(peer, truth):.3f} | {seconds:.1f} |")
        sys.stdout.flush()


# ---------------------------------------------------------------- a synthetic dataset folder


def _paragraphs() -> list[str]:
    from classify_data import DATA, HC, PY

    out = [json.loads(line)["text"] for line in (DATA / "sft/llama-factory/c4_demo.jsonl").open(encoding="utf-8")]
    for article in (DATA / "sft/llama-factory/wiki_demo.txt").read_text(encoding="utf-8").splitlines():
        words = article.split()
        out += [" ".join(words[i : i + 250]) for i in range(0, len(words), 250)]
    for root, glob in ((PY, "*.txt"), (HC, "*.md")):
        for f in sorted(root.rglob(glob)):
            text = f.read_text(encoding="utf-8", errors="replace")
            out += [text[i : i + 2000] for i in range(0, len(text), 2000)]
    return [p for p in out if p.strip()]


def make_dataset(folder: Path, docs: int, seed: int = 0) -> None:
    """DOCS documents, each a real paragraph or page cut, drawn with replacement; in at least four files."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.document import DOCUMENT_SCHEMA

    if (folder / "card.json").is_file() and json.loads((folder / "card.json").read_text()).get("docs") == docs and len(list((folder / "data").glob("*.parquet"))) >= 4:
        return
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    pool = pa.array(_paragraphs(), pa.large_string())
    sources = pa.array(["web", "wiki", "docs", "insurance"])
    rng = np.random.default_rng(seed)
    per_file = max(1, min(100_000, docs // 4))  # at least four files: both tasks have files to read
    for part, start in enumerate(range(0, docs, per_file)):
        n = min(per_file, docs - start)
        texts = pool.take(pa.array(rng.integers(0, len(pool), n)))
        ids = pa.array([f"{start + i:012d}" for i in range(n)])
        src = sources.take(pa.array(rng.integers(0, 4, n)))
        nulls = pa.nulls(n, pa.string())
        table = pa.table([ids, texts, src, src, nulls, pa.array(["en"] * n), pa.nulls(n, pa.float32()), pa.array(["{}"] * n)],
                         schema=DOCUMENT_SCHEMA)  # fmt: skip
        pq.write_table(table, folder / "data" / f"part-{part:05d}.parquet", compression="zstd")
    (folder / "card.json").write_text(json.dumps({"name": folder.name, "stage": "ingest", "docs": docs}))


def _classifier(work: Path) -> Path:
    """An insurance classifier trained on the insurance pair's seeds (once)."""
    from classify_data import pair

    from corpus.classify.train import is_classifier_folder

    clf = work / "clf"
    if is_classifier_folder(clf):
        return clf
    d = pair("insurance")
    seeds = work / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for cls in ("pos", "neg"):
        (seeds / f"{cls}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in d[cls]), encoding="utf-8")
    subprocess.run([str(BIN / "corpus"), "-q", "classifier", "train", "--positive", str(seeds / "pos.jsonl"), "--negative",
                    str(seeds / "neg.jsonl"), "-o", str(clf), "--name", "insurance", "--overwrite"], check=True)  # fmt: skip
    return clf


# ---------------------------------------------------------------- speed


PEER = r'''
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import FastTextClassifierFilter
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter

class LocalModelFilter(FastTextClassifierFilter):
    """The same filter, its model read from a local file (datatrove would copy it into its cache)."""

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.model_url)
        return self._model


if __name__ == "__main__":  # the executor's worker processes import this file again
    data, out, model_path, threshold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    LocalPipelineExecutor(
        [ParquetReader(data, glob_pattern="*.parquet"),
         LocalModelFilter(model_path, keep_labels=("positive", threshold), newline_replacement=" ", save_labels_in_metadata=False),
         ParquetWriter(out)],
        tasks=2, workers=2, logging_dir=out + "-logs",
    ).run()
'''


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Seconds, and the peak RSS (bytes) of the process tree summed, sampled every 0.1 s."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, peak


def speed(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clf = _classifier(work)
    threshold = json.loads((clf / "card.json").read_text())["threshold"]["value"]
    data = work / f"docs-{args.docs}"
    make_dataset(data, args.docs)
    (work / "peer.py").write_text(PEER)
    rows = []
    for r in range(args.rounds):
        for who in ("ours", "datatrove"):
            out = work / f"out-{who}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(str(out) + "-logs", ignore_errors=True)
            if who == "ours":
                cmd = [str(BIN / "corpus"), "-q", "classify", str(data), "-o", str(out), "--model", str(clf), "--tasks", "2", "--workers", "2"]
            else:
                cmd = [sys.executable, str(work / "peer.py"), str(data / "data"), str(out), str(clf / "model.bin"), str(threshold)]
            seconds, peak = _timed(cmd)
            rows.append((r, who, seconds, peak))
            print(f"round {r} {who}: {seconds:.2f} s, {args.docs / seconds:,.0f} docs/s, peak RSS {peak / 2**20:,.0f} MiB", flush=True)
    ours = sorted(s for _, w, s, _ in rows if w == "ours")[len(rows) // 4]
    peer = sorted(s for _, w, s, _ in rows if w == "datatrove")[len(rows) // 4]
    print(f"\nmedian of {args.rounds} (load average {load_average():.1f}): ours {args.docs / ours:,.0f} docs/s, datatrove "
          f"FastTextClassifierFilter {args.docs / peer:,.0f} docs/s: ratio {peer / ours:.2f}x")
    record("classify", f"documents/s whole process, {args.docs:,} documents, 2 workers", args.docs / ours, args.docs / peer,
           "datatrove FastTextClassifierFilter", "docs/s", target=2, rounds=args.rounds)


def memory(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clf = _classifier(work)
    data = work / f"docs-{args.docs}"
    t0 = time.perf_counter()
    make_dataset(data, args.docs)
    print(f"dataset of {args.docs:,} documents ready in {time.perf_counter() - t0:.1f} s", flush=True)
    out = work / "out-memory"
    shutil.rmtree(out, ignore_errors=True)
    seconds, peak = _timed([str(BIN / "corpus"), "-q", "classify", str(data), "-o", str(out), "--model", str(clf),
                            "--tasks", "2", "--workers", "2", "--score-only"])  # fmt: skip
    size = sum(f.stat().st_size for f in (data / "data").glob("*.parquet"))
    print(f"corpus classify --score-only, {args.docs:,} documents ({size / 2**20:,.0f} MiB of Parquet): {seconds:.1f} s, "
          f"{args.docs / seconds:,.0f} docs/s, peak RSS of the process tree {peak / 2**20:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["quality", "speed", "memory"])
    parser.add_argument("--positives", type=int, default=200)
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default="/tmp/bench-classify")
    args = parser.parse_args()
    if args.docs is None:
        args.docs = 1_000_000 if args.what == "memory" else 50_000
    {"quality": quality, "speed": speed, "memory": memory}[args.what](args)


if __name__ == "__main__":
    main()
