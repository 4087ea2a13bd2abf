"""`corpus classifier train`: a fastText domain or quality classifier from positive and negative seeds.

    corpus classifier train --positive DS... --negative DS... -o CLFDIR [--holdout 0.1] [--seed 0]
                            [--min-precision P] [--rounds N --pool DS...]

Seeds are read (corpus.classify.seeds), normalised (corpus.classify.text), deduplicated and split:
a share of each class (`holdout`) is never trained on; the threshold is chosen and the metrics are
measured on it. The training split is balanced by repeating the smaller class's documents (a few
hundred seeds are too few to throw the larger class's away); past MAX_REPEAT repeats, the larger class
is sampled down instead. Recall rounds score a pool of unlabelled documents and add those the model
is sure of to the positives, then retrain; the held-out split stays the seeds' own, so every round is
measured on the same documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from corpus.classify.model import (
    MODEL_FILE,
    choose_threshold,
    histogram,
    metrics_at,
    positive_scores,
    roc_auc,
    top_ngrams,
    train_fasttext,
)
from corpus.classify.text import MAX_CHARS, fasttext_lines
from corpus.errors import CorpusError
from corpus.progress import say

STAGE = "classifier"
CLASSIFIER_FORMAT = 1  # bump when model.bin's labels or the normalisation change: old folders are refused
MAX_REPEAT = 10  # at most this many copies of a seed when balancing; beyond it the larger class is sampled
MIN_PER_CLASS = 2  # one to train on and one to hold out


class FastTextParams(BaseModel):
    """Chosen by measurement on a few hundred seeds (benchmarks/bench_classify.py, docs/classify.md)."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(0.5, gt=0, le=2)
    epoch: int = Field(25, ge=1, le=1000)
    dim: int = Field(64, ge=2, le=1024)
    wordNgrams: int = Field(2, ge=1, le=5)
    minCount: int = Field(1, ge=1)
    bucket: int = Field(100_000, ge=1_000, description="hashed n-gram rows: bucket x dim x 4 bytes of model.bin")
    loss: str = Field("softmax", pattern="^(softmax|hs|ova)$")


class ClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout: float = Field(0.1, gt=0, lt=0.5, description="share of each class held out for the threshold and metrics")
    seed: int = 0
    min_precision: float | None = Field(None, gt=0, le=1, description="pick the lowest threshold reaching this held-out precision")
    positive_domains: list[str] = Field(default_factory=list, description="read only these domains of positive dataset folders")
    negative_domains: list[str] = Field(default_factory=list, description="read only these domains of negative dataset folders")
    rounds: int = Field(0, ge=0, le=20, description="recall rounds over the pool")
    round_threshold: float = Field(0.9, gt=0, le=1, description="a pool document joins the positives at this score or above "
                                   "(and never below the chosen threshold)")  # fmt: skip
    fasttext: FastTextParams = Field(default_factory=FastTextParams)


@dataclass
class Seeds:
    lines: list[str]
    counts: dict = field(default_factory=dict)


def prepare_seeds(texts: list[str]) -> Seeds:
    """Normalised, non-empty, distinct lines, and what was dropped on the way."""
    lines = fasttext_lines(texts)
    non_empty = [line for line in lines if line]
    distinct = list(dict.fromkeys(non_empty))
    return Seeds(distinct, {"read": len(lines), "empty": len(lines) - len(non_empty), "duplicates": len(non_empty) - len(distinct)})


def _split(n: int, holdout: float, seed: int, salt: int) -> np.ndarray:
    """A boolean mask of the held-out documents: round(holdout * n), at least 1, at most n - 1."""
    k = min(max(1, round(holdout * n)), n - 1)
    mask = np.zeros(n, bool)
    mask[np.random.default_rng([seed, salt]).permutation(n)[:k]] = True
    return mask


def balanced(pos: list[str], neg: list[str], seed: int) -> tuple[list[str], list[int], dict]:
    """Training lines and labels with both classes equally often, shuffled."""
    rng = np.random.default_rng([seed, 2])
    small, large, small_label = (pos, neg, 1) if len(pos) <= len(neg) else (neg, pos, 0)
    sampled = large
    if len(large) > MAX_REPEAT * len(small):
        sampled = [large[i] for i in sorted(rng.choice(len(large), MAX_REPEAT * len(small), replace=False))]
    copies = len(sampled) // len(small)
    extra = rng.choice(len(small), len(sampled) - copies * len(small), replace=False)
    repeated = small * copies + [small[i] for i in sorted(extra)]
    lines = repeated + sampled
    labels = [small_label] * len(repeated) + [1 - small_label] * len(sampled)
    order = rng.permutation(len(lines))
    info = {"method": "oversample the smaller class by repeating its documents"
                      + (f"; the larger class sampled down to {MAX_REPEAT}x the smaller" if sampled is not large else ""),
            "positive_train_rows": labels.count(1), "negative_train_rows": labels.count(0)}  # fmt: skip
    return [lines[i] for i in order], [labels[i] for i in order], info


def _train(lines, labels, work: Path, params: FastTextParams, seed: int):
    """fastText, with the learning rate halved (up to three times) if training diverges."""
    lr = params.lr
    for _ in range(4):
        try:
            model = train_fasttext(lines, labels, work, {**params.model_dump(), "lr": lr}, seed)
            if np.isfinite(model.get_output_matrix()).all():
                return model, lr
        except RuntimeError as e:
            if "NaN" not in str(e):
                raise
        lr /= 2
    raise CorpusError(f"fastText training diverged even at lr {lr * 2:g}: the seeds may be too few or too alike")


def _evaluate(model, lines: list[str], truth: np.ndarray, min_precision: float | None) -> dict:
    scores = positive_scores(model, lines).astype(np.float64)
    threshold, rule = choose_threshold(scores, truth, min_precision)
    return {
        "threshold": round(threshold, 6),
        "threshold_rule": rule,
        "metrics": {**metrics_at(scores, truth, threshold), "roc_auc": _round(roc_auc(scores, truth))},
        "histogram": {"positive": histogram(scores[truth]), "negative": histogram(scores[~truth])},
        "_scores": scores,
    }


def _round(x):
    return None if x is None else round(x, 4)


def fit(pos_texts: list[str], neg_texts: list[str], config: ClassifierConfig, work: Path,
        pool_texts: list[str] | None = None, describe=lambda what: what) -> dict:  # fmt: skip
    """Train (and run the recall rounds); returns the model and every fact the card reports."""
    pos, neg = prepare_seeds(pos_texts), prepare_seeds(neg_texts)
    both = set(pos.lines) & set(neg.lines)
    if both:  # the same text labelled both ways teaches nothing: it stays a positive only
        neg.lines = [line for line in neg.lines if line not in both]
    neg.counts["also_positive"] = len(both)
    for name, seeds in (("positive", pos), ("negative", neg)):
        if len(seeds.lines) < MIN_PER_CLASS:
            raise CorpusError(f"{describe(name)}: {len(seeds.lines)} usable {name} documents (non-empty, distinct); "
                              f"a classifier needs at least {MIN_PER_CLASS} of each class")  # fmt: skip
    pos_test = _split(len(pos.lines), config.holdout, config.seed, 0)
    neg_test = _split(len(neg.lines), config.holdout, config.seed, 1)
    pos_train = [line for line, t in zip(pos.lines, pos_test) if not t]
    neg_train = [line for line, t in zip(neg.lines, neg_test) if not t]
    test_lines = [line for line, t in zip(pos.lines, pos_test) if t] + [line for line, t in zip(neg.lines, neg_test) if t]
    truth = np.array([True] * int(pos_test.sum()) + [False] * int(neg_test.sum()))
    pos.counts.update(train=len(pos_train), held_out=int(pos_test.sum()))
    neg.counts.update(train=len(neg_train), held_out=int(neg_test.sum()))

    pool = list(dict.fromkeys(line for line in fasttext_lines(pool_texts or []) if line))
    known = set(pos.lines) | set(neg.lines)
    pool = [line for line in pool if line not in known]
    rounds, joined_all = [], []
    model = None
    for r in range(config.rounds + 1):
        lines, labels, balance = balanced(pos_train + joined_all, neg_train, config.seed)
        model, lr_used = _train(lines, labels, work, config.fasttext, config.seed)
        result = _evaluate(model, test_lines, truth, config.min_precision)
        row = {"round": r, "joined": 0 if r == 0 else rounds[-1]["next_joined"], "train_positives": len(pos_train) + len(joined_all),
               "threshold": result["threshold"], **result["metrics"], "lr_used": lr_used}  # fmt: skip
        next_joined = []
        if r < config.rounds and pool:
            cut = max(config.round_threshold, result["threshold"])
            scores = positive_scores(model, pool)
            next_joined = [line for line, s in zip(pool, scores) if s >= cut]
            joined_set = set(next_joined)
            pool = [line for line in pool if line not in joined_set]
            joined_all += next_joined
            row["join_cut"] = round(cut, 6)
        row["next_joined"] = len(next_joined)
        rounds.append(row)
        say(f"{STAGE}: round {r}: {row['train_positives']:,} positives, held-out F1 {row['f1']:.3f}, "
            f"precision {row['precision']:.3f}, recall {row['recall']:.3f}")  # fmt: skip
    for row in rounds:
        row.pop("next_joined", None)
    scores = result.pop("_scores")
    return {
        "model": model,
        "seeds": {"positive": pos.counts, "negative": neg.counts, "pool": {"candidates": len(pool) + len(joined_all),
                                                                         "joined": len(joined_all)}},  # fmt: skip
        "balance": balance,
        "lr_used": lr_used,
        "held_out": result,
        "held_out_scores": scores.tolist(),
        "rounds": rounds,
        "top_ngrams": top_ngrams(model, pos_train + joined_all + neg_train),
    }


# ---------------------------------------------------------------- the classifier folder


def is_classifier_folder(path: Path) -> bool:
    return (Path(path) / MODEL_FILE).is_file() and (Path(path) / "card.json").is_file()


def read_classifier(folder: str | Path) -> dict:
    """The card of a classifier folder, checked: a CorpusError names a folder that is not one, or one
    made by an incompatible version."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no such classifier folder")
    card_path = folder / "card.json"
    if not card_path.is_file() or not (folder / MODEL_FILE).is_file():
        raise CorpusError(f"{folder}: not a classifier folder (no card.json and {MODEL_FILE}; make one with `corpus classifier train`)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CorpusError(f"{card_path}: unreadable card ({' '.join(str(e).split())[:100]})") from None
    if card.get("stage") != STAGE:
        raise CorpusError(f"{folder}: not a classifier folder (its card is of stage {card.get('stage')!r})")
    version = card.get("classifier_format")
    if version != CLASSIFIER_FORMAT:
        raise CorpusError(f"{folder}: classifier format {version} was made by another version of corpus "
                          f"(this one reads format {CLASSIFIER_FORMAT}); retrain it with `corpus classifier train`")  # fmt: skip
    return card


def classifier_fingerprint(config: ClassifierConfig, positive: list[str], negative: list[str], pool: list[str] | None) -> str:
    """`corpus classifier train` and the pipeline's classifier stage: the config, the seed sources
    and what the seed folders hold."""
    from corpus.outputs import stage_fingerprint

    def resolved(refs) -> list[str]:
        return [str(Path(p).expanduser().resolve()) for p in refs or []]

    positive, negative, pool = resolved(positive), resolved(negative), resolved(pool)
    return stage_fingerprint("classifier", {**config.model_dump(), "positive": positive, "negative": negative, "pool": pool},
                             [Path(p) for p in positive + negative + pool if Path(p).is_dir()])  # fmt: skip


def train_classifier(positive: list[str], negative: list[str], output: str | Path, config: ClassifierConfig,
                     pool: list[str] | None = None, name: str | None = None, overwrite: bool = False,
                     command: list[str] | None = None, fingerprint: str | None = None) -> dict:  # fmt: skip
    from corpus.classify.seeds import read_seeds, seeds_digest
    from corpus.document import file_sha256
    from corpus.outputs import OutputFolder, card_header

    fingerprint = fingerprint or classifier_fingerprint(config, positive, negative, pool)
    target = OutputFolder(output, overwrite, is_classifier_folder, [*positive, *negative, *(pool or [])], fingerprint)
    if target.up_to_date():
        say(f"{STAGE}: {output} is up to date (same seeds and config); nothing to do")
        return json.loads((target.final / "card.json").read_text(encoding="utf-8"))
    target.check()
    if config.rounds and not pool:
        raise CorpusError("--rounds needs --pool: the documents a recall round may add to the positives")
    pos_texts, pos_lineage = read_seeds(positive, config.positive_domains, "--positive")
    neg_texts, neg_lineage = read_seeds(negative, config.negative_domains, "--negative")
    pool_texts, pool_lineage = read_seeds(pool or [], [], "--pool", allow_empty=True)
    if not pos_texts:
        raise CorpusError(f"{', '.join(positive)}: no positive documents" + _domains_note(config.positive_domains))
    if not neg_texts:
        raise CorpusError(f"{', '.join(negative)}: no negative documents" + _domains_note(config.negative_domains))
    partial = target.start()
    try:
        say(f"{STAGE}: training on {len(pos_texts):,} positive and {len(neg_texts):,} negative seeds")
        result = fit(pos_texts, neg_texts, config, partial / "_work", pool_texts,
                     describe=lambda cls: ", ".join(positive if cls == "positive" else negative))  # fmt: skip
        result["model"].save_model(str(partial / MODEL_FILE))
        (partial / "_work").rmdir() if (partial / "_work").is_dir() and not any((partial / "_work").iterdir()) else None
        card = {
            **card_header(name or Path(output).name, STAGE, command),
            "classifier_format": CLASSIFIER_FORMAT,
            "fingerprint": fingerprint,
            "config": config.model_dump(),
            "inputs": {"positive": pos_lineage, "negative": neg_lineage, "pool": pool_lineage},
            "seeds_digest": {"positive": seeds_digest(pos_texts), "negative": seeds_digest(neg_texts)},
            "model": {"file": MODEL_FILE, "sha256": file_sha256(partial / MODEL_FILE), "labels": ["__label__positive", "__label__negative"],
                      "score": "P(__label__positive) of the normalised text", "lr_used": result["lr_used"],
                      "normalisation": f"NFKC, lower case, punctuation split, whitespace and newlines to one space, "
                                       f"first {MAX_CHARS:,} characters (corpus.classify.text)"},  # fmt: skip
            "seeds": result["seeds"],
            "balance": result["balance"],
            "threshold": {"value": result["held_out"]["threshold"], "rule": result["held_out"]["threshold_rule"]},
            "held_out": {**result["held_out"]["metrics"], "docs": {"positive": result["seeds"]["positive"]["held_out"],
                                                                   "negative": result["seeds"]["negative"]["held_out"]},
                         "histogram_bins": [round(i / 10, 1) for i in range(11)], "histogram": result["held_out"]["histogram"]},  # fmt: skip
            "rounds": result["rounds"],
            "top_ngrams": result["top_ngrams"],
        }
        from corpus.classify.card import write_classifier_card

        write_classifier_card(partial, card)
    except BaseException:
        target.abandon()
        raise
    final = target.finish()
    m = card["held_out"]
    say(f"{STAGE}: threshold {card['threshold']['value']:.3f}; held-out precision {m['precision']:.3f}, recall "
        f"{m['recall']:.3f}, F1 {m['f1']:.3f}, ROC AUC {m['roc_auc']} -> {final}")  # fmt: skip
    return card


def _domains_note(domains: list[str]) -> str:
    return f" of domain {', '.join(domains)}" if domains else ""

