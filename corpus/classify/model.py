"""fastText training and scoring for the classifiers, and what a card needs to explain a model.

The model is a plain fastText supervised model with two labels, `__label__positive` and
`__label__negative`; a document's score is the probability fastText gives `__label__positive` for its
normalised line (corpus.classify.text), so `fasttext.load_model(model.bin).predict(line, k=2)` gives
the same number, and datatrove's FastTextClassifierFilter can use the file with
`keep_labels=("positive", threshold)` (given lines normalised the same way).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from corpus.errors import CorpusError

POSITIVE, NEGATIVE = "__label__positive", "__label__negative"
MODEL_FILE = "model.bin"


_TRAIN_CHILD = (
    "import json, sys\n"
    "from corpus.lifetime import die_with_parent\n"
    "die_with_parent()\n"  # killed with the command that waits for it
    "import fasttext\n"
    "args = json.loads(sys.argv[1])\n"
    "fasttext.train_supervised(**args).save_model(sys.argv[2])\n"
)


def train_fasttext(lines: list[str], labels: list[int], work: Path, params: dict, seed: int):
    """A fastText supervised model trained on `lines` (normalised) with 1 = positive, 0 = negative.

    fastText reads its training examples from a file: it is written in `work` (the partial output
    folder) and removed afterwards. One thread: fastText's Hogwild updates make a multi-threaded
    run depend on scheduling; with one thread and a seed, the same input gives the same model.

    Training runs in a fresh Python process. fastText 0.9.2 initialises only a tenth of its input
    matrix per training thread and leaves the rest as the allocator hands it over: zeros in a fresh
    process (glibc maps large blocks from fresh pages, and MALLOC_MMAP_THRESHOLD_ keeps it doing so),
    but in a process that has allocated and freed much before (a pipeline that trained a language
    model, or an earlier classifier) leftover bytes, which make the model differ from run to run or
    diverge ("Encountered NaN")."""
    import os
    import subprocess
    import sys

    import fasttext

    work.mkdir(parents=True, exist_ok=True)
    path = work / "fasttext-train.txt"
    model_path = work / "fasttext-model.bin"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{POSITIVE if label else NEGATIVE} {line}\n" for line, label in zip(lines, labels))
    args = {"input": str(path), "thread": 1, "seed": seed, "verbose": 0, **params}
    try:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
        done = subprocess.run([sys.executable, "-c", _TRAIN_CHILD, json.dumps(args), str(model_path)],
                              capture_output=True, text=True, env=env)  # fmt: skip
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"fastText training failed: {last}")
        return fasttext.load_model(str(model_path))
    finally:
        path.unlink(missing_ok=True)
        model_path.unlink(missing_ok=True)


def positive_scores(model, lines: list[str]) -> np.ndarray:
    """P(positive) of each line, exactly as `model.predict(line, k=2)` gives it; "" scores 0."""
    scores = np.zeros(len(lines), np.float32)
    present = [i for i, line in enumerate(lines) if line]
    if not present:
        return scores
    all_labels, all_probs = model.f.multilinePredict([lines[i] + "\n" for i in present], 2, 0.0, "strict")
    for i, labels, probs in zip(present, all_labels, all_probs):
        if labels and labels[0] == POSITIVE:
            scores[i] = probs[0]
        elif len(labels) > 1:
            scores[i] = probs[1]
    return np.clip(scores, 0.0, 1.0)


_MODELS: dict[str, tuple] = {}
_MODELS_LOCK = threading.Lock()


def load_model(path: str | Path):
    """The fastText model at `path`, loaded once per process (and again if the file changes)."""
    path = Path(path)
    key = str(path.resolve())
    with _MODELS_LOCK:
        stamp = (path.stat().st_mtime_ns, path.stat().st_size)
        cached = _MODELS.get(key)
        if cached is None or cached[0] != stamp:
            _MODELS[key] = (stamp, read_fasttext_model(path))
        return _MODELS[key][1]


_PREDICTORS: dict[str, tuple] = {}


def load_predictor(path: str | Path):
    """The model at `path` as a FastPredictor (corpus.classify.predict), built once per process."""
    from corpus.classify.predict import FastPredictor

    model = load_model(path)
    key = str(Path(path).resolve())
    with _MODELS_LOCK:
        cached = _PREDICTORS.get(key)
        if cached is None or cached[0] is not model:
            _PREDICTORS[key] = (model, FastPredictor(model, POSITIVE))
        return _PREDICTORS[key][1]


def read_fasttext_model(path: Path):
    import fasttext

    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CorpusError(f"{path}: cannot read the model ({e.strerror})") from None
    # fastText's binary format starts with its magic number 793712314 (little-endian int32), then a version
    if len(head) < 8 or int.from_bytes(head[:4], "little") != 793712314:
        raise CorpusError(f"{path}: not a fastText model file")
    try:
        model = fasttext.load_model(str(path))
    except (ValueError, RuntimeError, MemoryError) as e:
        raise CorpusError(f"{path}: not a readable fastText model ({' '.join(str(e).split())[:120]})") from None
    labels = set(model.get_labels()) if model.get_labels() else set()
    if labels != {POSITIVE, NEGATIVE}:
        raise CorpusError(f"{path}: a fastText model with labels {sorted(labels)[:4]}, not a corpus classifier "
                          f"({POSITIVE}, {NEGATIVE})")  # fmt: skip
    return model


# ---------------------------------------------------------------- held-out metrics and the threshold


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties half)."""
    pos, neg = int(truth.sum()), int((~truth).sum())
    if not pos or not neg:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


def metrics_at(scores: np.ndarray, truth: np.ndarray, threshold: float) -> dict:
    predicted = scores >= threshold
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "true_positives": tp, "false_positives": fp, "false_negatives": fn}  # fmt: skip


def choose_threshold(scores: np.ndarray, truth: np.ndarray, min_precision: float | None = None) -> tuple[float, str]:
    """The cut on held-out scores: a document is positive when its score >= the threshold.

    Without `min_precision`: best F1. With it: the lowest cut whose precision reaches `min_precision`
    (the most recall at that precision); if none does, the cut of the highest precision, and the
    rule says so. A cut between two held-out scores classifies the held-out documents the same
    anywhere in the gap, so it is put halfway between the lowest score it accepts and the next
    lower one: a small held-out split (often perfectly separated) then does not push the cut to
    the top of the range, where new documents of a slightly different kind would fall below it."""
    candidates = np.unique(scores)[::-1]  # every distinct score, high to low
    if not len(candidates):
        return 0.5, "no held-out documents: 0.5"
    rows = [(i, metrics_at(scores, truth, float(t))) for i, t in enumerate(candidates)]

    def cut(i: int) -> float:
        below = candidates[i + 1] if i + 1 < len(candidates) else 0.0
        return float((candidates[i] + below) / 2)

    if min_precision is None:
        i, m = max(rows, key=lambda r: (r[1]["f1"], -r[0]))
        return cut(i), f"best F1 on the held-out split ({m['f1']:.4f}), halfway to the next lower held-out score"
    reaching = [r for r in rows if r[1]["precision"] >= min_precision]
    if reaching:
        i, m = reaching[-1]
        return cut(i), (f"lowest cut with held-out precision >= {min_precision:g} (precision {m['precision']:.4f}, "
                        f"recall {m['recall']:.4f}), halfway to the next lower held-out score")  # fmt: skip
    i, m = max(rows, key=lambda r: (r[1]["precision"], -r[0]))
    return cut(i), f"no cut reaches precision {min_precision:g} on the held-out split; the most precise one ({m['precision']:.4f})"


def histogram(scores: np.ndarray, bins: int = 10) -> list[int]:
    counts, _ = np.histogram(np.clip(scores, 0, 1), bins=bins, range=(0.0, 1.0))
    return counts.astype(int).tolist()


# ---------------------------------------------------------------- what the model learned


def _fnv1a(word: str) -> int:
    """fastText's word hash: 32-bit FNV-1a over the UTF-8 bytes, each byte sign-extended first."""
    h = 2166136261
    for byte in word.encode("utf-8"):
        h ^= (byte - 256 if byte > 127 else byte) & 0xFFFFFFFF
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def bigram_row(model, first: str, second: str) -> int | None:
    """The input-matrix row of the bigram (first, second) as fastText's dictionary hashes it, or None."""
    bucket = model.f.getArgs().bucket if hasattr(model.f, "getArgs") else None
    if not bucket:
        return None
    widen = lambda x: x | 0xFFFFFFFF00000000 if x & 0x80000000 else x  # int32, sign-extended to 64 bits
    h = widen(_fnv1a(first))
    h = (h * 116049371 + widen(_fnv1a(second))) & 0xFFFFFFFFFFFFFFFF
    return len(model.words) + h % bucket


def top_ngrams(model, lines: list[str], per_class: int = 20, min_count: int = 3) -> dict:
    """The words and bigrams that push a document most towards each label.

    A document's logit difference (positive - negative) is the mean of its n-grams' input vectors
    times the difference of the two output vectors; so each n-gram's weight is its input vector's
    dot product with (output[positive] - output[negative]). Words come from the dictionary; bigrams
    from the training lines (seen at least `min_count` times), mapped to their hashed rows."""
    from collections import Counter

    inputs = model.get_input_matrix()  # (words + buckets, dim)
    outputs = model.get_output_matrix()  # (labels, dim)
    labels = list(model.labels)
    direction = outputs[labels.index(POSITIVE)] - outputs[labels.index(NEGATIVE)]
    counts: Counter = Counter()
    bigrams: Counter = Counter()
    for line in lines:
        words = line.split()
        counts.update(words)
        bigrams.update(zip(words, words[1:]))
    rows: list[tuple[str, int]] = [(w, model.get_word_id(w)) for w, c in counts.items() if c >= min_count]
    rows = [(w, i) for w, i in rows if i >= 0]
    for (a, b), c in bigrams.items():
        if c >= min_count:
            row = bigram_row(model, a, b)
            if row is not None:
                rows.append((f"{a} {b}", row))
    if not rows:
        return {"positive": [], "negative": []}
    weights = inputs[np.array([i for _, i in rows])] @ direction
    order = np.argsort(weights)
    pick = lambda idx: [{"ngram": rows[i][0], "weight": round(float(weights[i]), 4)} for i in idx]
    return {"positive": pick(order[::-1][:per_class]), "negative": pick(order[:per_class])}
