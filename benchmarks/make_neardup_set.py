"""Build a labelled near-duplicate set from real documents with controlled edits.

    .venv/bin/python benchmarks/make_neardup_set.py --out benchmarks/out/neardup.jsonl

Base documents are the real insurance pages and Python 3.11 docs in ../shared/data. Each chosen
base gets 1-4 edited copies; an edit is a mix of: a boilerplate paragraph inserted (real text from
another page), sentences deleted, sentences reordered, words substituted, typos; the strength of
each is drawn so the copies' Jaccard with their base spreads from about 0.2 to 1. Every row records
its family (the base it came from) and the edits made. The ground truth (true Jaccard of the word
5-gram shingles of each candidate pair) is computed by dedup_quality.py for every pair any method
proposes and every pair within a family.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_common import SHARED, words  # noqa: E402

SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def base_documents(min_words: int = 80, max_words: int = 1500) -> list[tuple[str, str]]:
    docs = []
    for folder in (SHARED / "insurance", SHARED / "general"):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in (".md", ".txt", ".rst"):
                text = path.read_text(encoding="utf-8", errors="replace")
                n = len(words(text))
                if n >= min_words:
                    if n > max_words:  # keep the Jaccard computation quick: the opening of long pages
                        text = " ".join(text.split(" ")[:max_words])
                    docs.append((str(path.relative_to(SHARED)), text))
    return docs


def edit(text: str, rng: random.Random, boilerplate: list[str], vocab: list[str]) -> tuple[str, list[str]]:
    sentences = [s for s in SENTENCE.split(text) if s.strip()]
    done = []
    ops = rng.sample(["boilerplate", "delete", "reorder", "substitute", "typos"], rng.randint(1, 3))
    if "delete" in ops and len(sentences) > 3:
        share = rng.uniform(0.02, 0.3)
        keep = [s for s in sentences if rng.random() >= share]
        done.append(f"deleted {len(sentences) - len(keep)} of {len(sentences)} sentences")
        sentences = keep or sentences[:1]
    if "reorder" in ops and len(sentences) > 3:
        swaps = rng.randint(1, max(1, len(sentences) // 4))
        for _ in range(swaps):
            i, j = rng.randrange(len(sentences)), rng.randrange(len(sentences))
            sentences[i], sentences[j] = sentences[j], sentences[i]
        done.append(f"{swaps} sentence swaps")
    if "boilerplate" in ops:
        block = rng.choice(boilerplate)
        at = rng.choice([0, len(sentences)])
        sentences.insert(at, block)
        done.append(f"boilerplate of {len(block.split())} words at the {'start' if at == 0 else 'end'}")
    tokens = " ".join(sentences).split(" ")
    if "substitute" in ops:
        share = rng.uniform(0.005, 0.08)
        n = max(1, int(len(tokens) * share))
        for _ in range(n):
            tokens[rng.randrange(len(tokens))] = rng.choice(vocab)
        done.append(f"{n} words substituted")
    if "typos" in ops:
        share = rng.uniform(0.005, 0.08)
        n = max(1, int(len(tokens) * share))
        for _ in range(n):
            i = rng.randrange(len(tokens))
            w = tokens[i]
            if len(w) > 2:
                k = rng.randrange(len(w) - 1)
                tokens[i] = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
        done.append(f"{n} typos")
    return " ".join(tokens), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--bases", type=int, default=800, help="base documents to edit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    docs = base_documents()
    vocab = sorted({w for _, t in docs[:300] for w in t.split() if w.isalpha()})
    boilerplate = [t[:600] for _, t in docs if 40 <= len(t.split()) <= 2000][:50]
    chosen = set(rng.sample(range(len(docs)), min(args.bases, len(docs))))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with open(out, "w", encoding="utf-8") as f:
        for i, (name, text) in enumerate(docs):  # every real document, edited or not
            f.write(json.dumps({"url": f"{i:05d}-base", "text": text, "family": i, "edits": [], "origin": name}) + "\n")
            rows += 1
            if i in chosen:
                for v in range(rng.randint(1, 4)):
                    edited, done = edit(text, rng, boilerplate, vocab)
                    f.write(json.dumps({"url": f"{i:05d}-v{v}", "text": edited, "family": i, "edits": done, "origin": name}) + "\n")
                    rows += 1
    print(f"{rows} documents ({len(docs)} real, {rows - len(docs)} edited copies of {len(chosen)}) -> {out}")


if __name__ == "__main__":
    main()
