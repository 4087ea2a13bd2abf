"""Five kinds of real text with junk pages and copies injected, for the filter-defaults ablation.

    .venv/bin/python benchmarks/ablation_kinds.py OUT [--kinds web docs wrapped insurance qa] [--seed 0]

For each kind, OUT/KIND/ holds:
  raw.jsonl    the training pool: genuine pages, junk pages (35% of the characters) and copies of a
               third of the genuine pages (half exact, half with a cookie banner); every record has a
               `record` number, a `label` (genuine, copy, junk-spam, junk-menu, junk-symbols, junk-repeated) and `page`
               (the genuine page a copy copies), which ingest keeps in `metadata`
  eval.jsonl   held-out genuine pages of the same kind (whole source documents held out)
  facts.json   counts and characters per label

The kinds (all real text from ../shared/data, nothing written by this project):
  web        C4 documents and English pages extracted from trafilatura's evaluation HTML
  docs       the Python 3.11 documentation (reStructuredText) cut into pages of about 2 KB
  wrapped    Wikipedia articles hard-wrapped at 64-80 columns with words hyphenated across line
             breaks, as text extracted from a PDF or a plain-text manual, in pages of about 2 KB
  insurance  healthcare.gov pages, English and Spanish (Markdown)
  qa         instruction/answer pairs (Alpaca, self-instruct's user-oriented set) and the preferred
             dialogues of Anthropic's hh-rlhf harmless-base test set

The junk is generated from each kind's own vocabulary and lines, so a rule cannot tell it apart by
language or topic: keyword spam, navigation menus, symbol noise and repeated lines.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import textwrap
from collections import Counter
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KINDS = ("web", "docs", "wrapped", "insurance", "qa")
JUNK_SHARE = 0.35  # of all characters of the pool
COPY_SHARE = 1 / 3  # of the genuine pages
EVAL_SHARE = 0.15  # of the source documents
PAGE_CHARS = 2000

COOKIE_BANNERS = [
    "We use cookies to improve your experience on our site. By continuing to browse you agree to our use of cookies. Accept all | Manage settings",
    "This website uses cookies. Cookies help us deliver our services. Learn more in our Cookie Policy. OK",
    "Cookie notice: we and our partners store and access information on your device. [Accept] [Reject] [Preferences]",
    "By using this site, you accept our Privacy Policy and Terms of Use. Got it!",
]
NAV_WORDS = ["Home", "About us", "Contact", "Login", "Sign up", "Search", "Products", "Services", "Blog", "News",
             "Careers", "Help", "FAQ", "Support", "Cart", "My account", "Privacy Policy", "Terms of Use", "Sitemap",
             "Subscribe", "Follow us", "Facebook", "Twitter", "LinkedIn", "Instagram", "YouTube", "Español", "English",
             "Resources", "Downloads", "Pricing", "Partners", "Events", "Community", "Press", "Log out", "Menu",
             "Skip to content", "Back to top", "Next", "Previous", "More", "Share", "Print", "Email"]  # fmt: skip
SYMBOLS = "!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~§±©®°•¶™€£¥"
STOP = set("the be to of and a in that have i it for not on with he as you do at this but his by from they we say her "
           "she or an will my one all would there their what so up out if about who get which go me when make can "
           "like time no just him know take people into year your good some could them see other than then now "
           "look only come its over think also back after use two how our work first well way even new want "
           "because any these give day most us is are was were been has had el la de que y en los las del por un "
           "una para con se es al lo".split())  # fmt: skip


# ---------------------------------------------------------------- genuine text of each kind


def pages_of(text: str, size: int = PAGE_CHARS) -> list[str]:
    """Consecutive paragraphs (blank-line separated) packed into pages of about `size` characters."""
    pages, current = [], []
    for para in re.split(r"\n\s*\n", text):
        if not para.strip():
            continue
        current.append(para.rstrip())
        if sum(len(p) for p in current) >= size:
            pages.append("\n\n".join(current))
            current = []
    if current and sum(len(p) for p in current) >= size / 4:
        pages.append("\n\n".join(current))
    return pages


def hard_wrap(paragraph: str, rng: random.Random) -> str:
    """Wrap at 64-80 columns; a long word at a line end is sometimes hyphenated across the break."""
    width = rng.randint(64, 80)
    out = []
    for line in textwrap.wrap(paragraph, width=width, break_long_words=False, break_on_hyphens=False):
        out.append(line)
    # hyphenate: move the first half of the next line's first long word to this line's end
    for i in range(len(out) - 1):
        words = out[i + 1].split(" ", 1)
        if len(words[0]) >= 8 and words[0].isalpha() and rng.random() < 0.3:
            cut = len(words[0]) // 2
            out[i] += " " + words[0][:cut] + "-"
            out[i + 1] = words[0][cut:] + (" " + words[1] if len(words) > 1 else "")
    return "\n".join(out)


def _ingested_texts(paths: list[Path], work: Path, fmt: str = "auto") -> list[tuple[str, str]]:
    """(text, lang) of every kept document of `corpus ingest PATHS` (front matter, HTML extraction)."""
    import polars as pl

    from corpus.cli import main

    out = work / "ingested"
    if not (out / "card.json").is_file():
        code = main(["-q", "ingest", *map(str, paths), "-o", str(out), "--source", "s", "--domain", "d", "--format", fmt, "--overwrite"])
        if code:
            sys.exit(f"ingest of {paths} failed")
    frame = pl.read_parquet(str(out / "data" / "*.parquet"))
    return list(zip(frame["text"].to_list(), frame["lang"].to_list()))


def _english(texts: list[str]) -> list[str]:
    from corpus.filter.langid import identify
    import polars as pl

    langs, scores = identify(pl.Series(texts), 10_000)
    return [t for t, lang, score in zip(texts, langs.to_list(), scores.to_list()) if lang == "en" and (score or 0) >= 0.65]


def genuine_documents(kind: str, work: Path, rng: random.Random) -> list[list[str]]:
    """Source documents, each a list of pages (a page is what is injected, copied and held out)."""
    if kind == "web":
        c4 = [json.loads(line)["text"] for line in (SHARED / "sft/llama-factory/c4_demo.jsonl").open(encoding="utf-8")]
        html = [t for t, _ in _ingested_texts([SHARED / "web/trafilatura-eval/pages"], work, "html")]
        return [[t] for t in _english(c4 + html) if len(t) >= 200]
    if kind == "docs":
        files = sorted((SHARED / "general/python-3.11-docs").rglob("*.rst.txt"))
        return [p for p in (pages_of(f.read_text(encoding="utf-8")) for f in files) if p]
    if kind == "wrapped":
        docs = []
        for article in (SHARED / "sft/llama-factory/wiki_demo.txt").read_text(encoding="utf-8").splitlines():
            # the dump glues paragraphs ("socialism.Humans"): split them back at such joins
            paras = re.split(r"(?<=[a-z.)][.!?])(?=[A-Z])", article)
            text = "\n\n".join(hard_wrap(p.strip(), rng) for p in paras if p.strip())
            docs.append(pages_of(text))
        return [d for d in docs if d]
    if kind == "insurance":
        texts = _ingested_texts([SHARED / "insurance/healthcare-gov-2013"], work, "md")
        return [[t] for t, _ in texts if len(t.strip()) >= 100]
    if kind == "qa":
        docs = []
        for row in json.loads((SHARED / "sft/llama-factory/alpaca_en_demo.json").read_text(encoding="utf-8")):
            question = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
            docs.append([f"{question}\n\n{row['output']}"])
        import gzip

        with gzip.open(SHARED / "sft/hh-rlhf/harmless-base/test.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:  # "Human: ... Assistant: ..." dialogues (the preferred answer)
                docs.append([json.loads(line)["chosen"].strip()])
        for line in (SHARED / "sft/self-instruct/human_eval/user_oriented_instructions.jsonl").open(encoding="utf-8"):
            row = json.loads(line)
            for inst in row.get("instances", [])[:1]:
                q = row["instruction"] + (f"\n{inst['input']}" if inst.get("input") else "")
                docs.append([f"Question: {q}\nAnswer: {inst['output']}"])
        return docs
    raise ValueError(kind)


# ---------------------------------------------------------------- junk made from the kind's own words


class JunkMaker:
    def __init__(self, pages: list[str], rng: random.Random):
        self.rng = rng
        words = Counter(w.lower() for p in pages for w in re.findall(r"[^\W\d_]{4,}", p))
        self.keywords = [w for w, _ in words.most_common(400) if w not in STOP] or ["insurance", "plan", "health"]
        self.lines = [l.strip() for p in pages for l in p.splitlines() if 40 <= len(l.strip()) <= 160]
        self.sentences = [s for p in pages for s in re.findall(r"[A-Z][^.!?\n]{30,150}[.!?]", p)] or self.lines or ["Click here."]

    def _size(self) -> int:
        return self.rng.randint(600, 3000)

    def spam(self) -> str:
        r, pick = self.rng, self.rng.sample(self.keywords, k=min(len(self.keywords), self.rng.randint(4, 12)))
        out, target = [], self._size()
        while sum(map(len, out)) < target:
            n = r.randint(3, 12)
            words = [r.choice(pick) for _ in range(n)]
            if r.random() < 0.4:
                words = [w.title() for w in words]
            sep = r.choice([" ", ", ", " | ", " - "])
            out.append(sep.join(words) + r.choice(["", "", ".", "!"]))
        return r.choice(["\n", " ", "\n\n"]).join(out)

    def menu(self) -> str:
        r = self.rng
        items = NAV_WORDS + [w.title() for w in r.sample(self.keywords, k=min(30, len(self.keywords)))]
        out, target = [], self._size() // 2
        while sum(map(len, out)) < target:
            row = r.sample(items, k=r.randint(1, 6))
            out.append(r.choice([" | ", " > ", " · ", "  ", "\n"]).join(row))
        if r.random() < 0.5:
            out.append(f"© {r.randint(1998, 2024)} {r.choice(self.keywords).title()} Inc. All rights reserved.")
        return "\n".join(out)

    def symbols(self) -> str:
        r = self.rng
        out, target = [], self._size()
        while sum(map(len, out)) < target:
            choice = r.random()
            if choice < 0.35:
                out.append("".join(r.choice(SYMBOLS) for _ in range(r.randint(5, 60))))
            elif choice < 0.55:
                out.append("".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(r.randint(40, 120))))
            elif choice < 0.7:
                out.append(" ".join(f"{r.randint(0, 255):02x}" for _ in range(r.randint(8, 24))))
            elif choice < 0.85:
                out.append(r.choice(["=", "-", "*", "#", "~", "_"]) * r.randint(10, 70))
            else:
                out.append(r.choice(self.keywords) + " " + "".join(r.choice(SYMBOLS) for _ in range(r.randint(3, 20))))
        return "\n".join(out)

    def repeated(self) -> str:
        r = self.rng
        pool = [r.choice(self.sentences) for _ in range(r.randint(1, 3))]
        out, target = [], self._size()
        while sum(map(len, out)) < target:
            out.append(r.choice(pool))
        return r.choice(["\n", " ", "\n\n"]).join(out)


def _shingles(text: str, n: int = 5) -> set[int]:
    words = re.findall(r"\w+", text.lower())
    return {hash(tuple(words[i : i + n])) for i in range(max(1, len(words) - n + 1))} if words else set()


def distinct_documents(docs: list[list[str]], threshold: float = 0.7) -> tuple[list[list[str]], int]:
    """Drop source documents with a page whose word 5-gram Jaccard similarity to a page of an earlier
    document is at least `threshold` (computed exactly; candidates share one of the 16 smallest
    shingle hashes). The real sets hold such pages (templated state pages, one dataset reformatted
    in another): they are duplicates before anything is injected, not genuine distinct pages."""
    sets = [[_shingles(p) for p in d] for d in docs]
    owner: dict[int, list[int]] = {}
    dropped = set()
    for i, doc_sets in enumerate(sets):
        candidates = {j for s in doc_sets for h in sorted(s)[:16] for j in owner.get(h, ())}
        if any(len(a & b) / max(1, len(a | b)) >= threshold for j in candidates for a in doc_sets for b in sets[j]):
            dropped.add(i)
            continue
        for s in doc_sets:
            for h in sorted(s)[:16]:
                owner.setdefault(h, []).append(i)
    return [d for i, d in enumerate(docs) if i not in dropped], len(dropped)


def build(kind: str, out: Path, seed: int) -> dict:
    rng = random.Random(f"{kind}-{seed}")
    work = out / kind
    work.mkdir(parents=True, exist_ok=True)
    docs, near_copies = distinct_documents(genuine_documents(kind, work, rng))
    rng.shuffle(docs)
    n_eval = max(1, round(EVAL_SHARE * len(docs)))
    eval_pages = [p for d in docs[:n_eval] for p in d]
    train_pages = [p for d in docs[n_eval:] for p in d]
    records = [{"text": t, "label": "genuine", "page": i} for i, t in enumerate(train_pages)]
    for i in rng.sample(range(len(train_pages)), k=round(COPY_SHARE * len(train_pages))):
        text = train_pages[i]
        if rng.random() < 0.5:
            banner = rng.choice(COOKIE_BANNERS)
            text = f"{banner}\n\n{text}" if rng.random() < 0.5 else f"{text}\n\n{banner}"
        records.append({"text": text, "label": "copy", "page": i})
    maker = JunkMaker(train_pages, rng)
    genuine_chars = sum(len(r["text"]) for r in records)
    junk_chars, kinds = 0, ("spam", "menu", "symbols", "repeated")
    while junk_chars < JUNK_SHARE / (1 - JUNK_SHARE) * genuine_chars:
        which = kinds[len([r for r in records if r["label"].startswith("junk")]) % len(kinds)]
        text = getattr(maker, which)()
        junk_chars += len(text)
        records.append({"text": text, "label": f"junk-{which}", "page": None})
    rng.shuffle(records)
    with open(work / "raw.jsonl", "w", encoding="utf-8") as f:
        for i, r in enumerate(records):  # `record` tells apart identical texts (an exact copy, a repeated junk page)
            f.write(json.dumps({**r, "record": i}, ensure_ascii=False) + "\n")
    with open(work / "eval.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(eval_pages):
            f.write(json.dumps({"text": t, "label": "eval", "page": i}, ensure_ascii=False) + "\n")
    by_label: dict = {}
    for r in records:
        entry = by_label.setdefault(r["label"], {"docs": 0, "chars": 0})
        entry["docs"] += 1
        entry["chars"] += len(r["text"])
    facts = {"kind": kind, "seed": seed, "source_documents": len(docs), "near_copies_dropped": near_copies, "eval_pages": len(eval_pages),
             "eval_chars": sum(map(len, eval_pages)), "by_label": by_label}  # fmt: skip
    (work / "facts.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED}: not found (the real data lives in ../shared/data beside the checkout)")
    for kind in args.kinds:
        facts = build(kind, args.out, args.seed)
        labels = ", ".join(f"{k} {v['docs']}" for k, v in sorted(facts["by_label"].items()))
        print(f"{kind}: {facts['source_documents']} source documents, {facts['eval_pages']} eval pages; {labels}")


if __name__ == "__main__":
    main()
