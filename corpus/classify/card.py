"""The classifier folder's card (card.json + README.md + plots/) and the classify stage's card sections."""

from __future__ import annotations

from pathlib import Path

import yaml

from corpus.cards.plots import columns
from corpus.cards.readme import table
from corpus.tokenize.report import _write

LIMITATIONS = "## Known limitations\n\n_Write here what a user of this classifier should know._\n"
BIN_LABELS = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)]


def score_plot(title: str, series: dict[str, list[int]], ylabel: str = "documents") -> bytes:
    return columns(title, BIN_LABELS, {k: [float(x) for x in v] for k, v in series.items()}, ylabel)


def write_classifier_card(folder: Path, card: dict) -> dict:
    folder = Path(folder)
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    (plots / "held_out_scores.svg").write_bytes(score_plot("Held-out scores by class", card["held_out"]["histogram"]))
    card["plots"] = ["plots/held_out_scores.svg"]
    from corpus.document import file_sha256

    card["files"] = [{"path": p.relative_to(folder).as_posix(), "sha256": file_sha256(p)}
                     for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in ("card.json", "README.md")]  # fmt: skip
    m, t = card["held_out"], card["threshold"]
    front = {"library_name": "fasttext", "tags": ["text-classification", "fasttext", "data-filtering"], "pretty_name": card["name"]}
    parts = ["---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n", f"# Classifier {card['name']}\n"]
    parts.append(
        f"A fastText supervised classifier (`{card['model']['file']}`, labels `__label__positive` / `__label__negative`), "
        f"made by corpus {card['tool']['version']} on {card['created']} with `{' '.join(card['command'])}`. "
        f"A document's score is {card['model']['score']}. Use it with `corpus classify IN... -o OUT --model "
        f"path/to/this/folder`; the file also loads with `fasttext.load_model`, given text normalised as "
        f"`corpus.classify.text.normalise` does ({card['model']['normalisation']}).\n"
    )
    parts.append("## Held-out quality\n")
    parts.append(f"Measured on {m['docs']['positive']:,} positive and {m['docs']['negative']:,} negative seeds held out of training "
                 f"(the threshold is chosen on the same documents, so these figures are a little optimistic).\n")  # fmt: skip
    parts.append(table(["threshold", "precision", "recall", "F1", "ROC AUC"],
                       [[t["value"], m["precision"], m["recall"], m["f1"], m["roc_auc"] if m["roc_auc"] is not None else "-"]]) + "\n")  # fmt: skip
    parts.append(f"Threshold: {t['rule']}.\n")
    parts.append("![held_out_scores.svg](plots/held_out_scores.svg)\n")
    parts.append("## Seeds\n")
    rows = []
    for cls in ("positive", "negative"):
        c = card["seeds"][cls]
        rows.append([cls, c["read"], c["empty"], c["duplicates"], c.get("also_positive", 0), c["train"], c["held_out"]])
    parts.append(table(["class", "read", "empty", "duplicates", "also a positive (dropped)", "train", "held out"], rows) + "\n")
    b = card["balance"]
    parts.append(f"Balance: {b['method']} ({b['positive_train_rows']:,} positive and {b['negative_train_rows']:,} negative "
                 f"training rows in the last round).\n")  # fmt: skip
    rows = []
    for cls, items in card["inputs"].items():
        for i in items:
            rows.append([cls, i["kind"], f"`{i['path']}`", (i.get("fingerprint") or i.get("sha256") or "")[:16],
                         ", ".join(i.get("domains") or []) or "all", i.get("docs")])  # fmt: skip
    parts.append(table(["role", "kind", "path", "fingerprint / sha256", "domains", "documents"], rows) + "\n")
    if len(card["rounds"]) > 1:
        parts.append("## Recall rounds\n")
        parts.append("Each round adds the pool documents scoring at or above its cut to the positives and retrains; "
                     "the held-out seeds stay the same.\n")  # fmt: skip
        cols = ["round", "joined", "train_positives", "join_cut", "threshold", "precision", "recall", "f1", "roc_auc"]
        parts.append(table(cols, [[r.get(c, "-") for c in cols] for r in card["rounds"]]) + "\n")
    parts.append("## What the model learned\n")
    parts.append("The words and bigrams that weigh most towards each class: an n-gram's input vector times the "
                 "difference of the two labels' output vectors (seen at least 3 times in training).\n")  # fmt: skip
    pos, neg = card["top_ngrams"]["positive"], card["top_ngrams"]["negative"]
    rows = [[f"`{p['ngram']}`" if p else "", p["weight"] if p else "", f"`{n['ngram']}`" if n else "", n["weight"] if n else ""]
            for p, n in zip(pos + [None] * (len(neg) - len(pos)), neg + [None] * (len(pos) - len(neg)))]  # fmt: skip
    parts.append(table(["towards positive", "weight", "towards negative", "weight"], rows) + "\n")
    parts.append("## Training\n")
    parts.append("```yaml\n" + yaml.safe_dump(card["config"], sort_keys=False) + "```\n")
    parts.append(LIMITATIONS)
    return _write(folder, card, "\n".join(parts))
