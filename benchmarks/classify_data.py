"""Labelled text for the classifier benchmarks, from ../shared/data, with whole sources held out.

Two pairs, each: positive seeds, negative seeds, and test documents from folders or sources the seeds
never saw (so a classifier that memorised a source's boilerplate gains nothing):

- insurance: seeds = healthcare.gov `articles/` + `questions/` + the top-level pages (English) against Python docs `library/`
  and the first 150 C4 documents; test = healthcare.gov glossary/ states/ topics/ blog/ help/
  quick-answers/ (English) against Python docs c-api/ reference/ whatsnew/ tutorial/, the 30
  Wikipedia articles and the English trafilatura eval pages.
- python: seeds = Python docs `library/` against C4 (all 300) and healthcare.gov articles/; test =
  Python docs c-api/ reference/ tutorial/ howto/ faq/ whatsnew/ extending/ using/ against Wikipedia,
  trafilatura pages and healthcare.gov glossary/ questions/ states/.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HC = DATA / "insurance" / "healthcare-gov-2013"
PY = DATA / "general" / "python-3.11-docs"
_FRONT = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def _md(folder: str) -> list[str]:
    """English pages of a healthcare.gov folder ("" for the top-level pages only)."""
    out = []
    for f in sorted((HC / folder).rglob("*.md") if folder else HC.glob("*.md")):
        raw = f.read_text(encoding="utf-8", errors="replace")
        if re.search(r"^lang:\s*es", raw[:2000], re.MULTILINE):
            continue  # English only: the seeds are English
        text = _FRONT.sub("", raw).strip()
        if len(text) >= 50:
            out.append(text)
    return out


def _rst(folder: str) -> list[str]:
    return [t for f in sorted((PY / folder).rglob("*.txt")) if len(t := f.read_text(encoding="utf-8", errors="replace").strip()) >= 50]


def _c4() -> list[str]:
    lines = (DATA / "sft" / "llama-factory" / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def _wiki() -> list[str]:
    return [line for line in (DATA / "sft" / "llama-factory" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


_STOPWORDS = {"the", "and", "of", "to", "is", "in", "that", "for", "it", "with"}


def _english(text: str) -> bool:
    """A crude check (English function words are at least 5% of the words): the seeds are English,
    and in a pipeline the filter stage's language identification runs before any classifier."""
    words = text.lower().split()
    return bool(words) and sum(w in _STOPWORDS for w in words) / len(words) >= 0.05


@lru_cache(maxsize=1)
def _web_pages() -> list[str]:
    import trafilatura

    out = []
    for f in sorted((DATA / "web" / "trafilatura-eval" / "pages").iterdir()):
        text = trafilatura.extract(f.read_bytes().decode("utf-8", errors="replace")) or ""
        if len(text) >= 200 and _english(text):
            out.append(text)
    return out


def pair(name: str, positives: int = 200, seed: int = 0) -> dict:
    """{"pos", "neg", "test_pos", "test_neg"}: lists of texts."""
    rng = random.Random(seed)
    if name == "insurance":
        pos = _md("articles") + _md("questions") + _md("")
        neg = _rst("library")[:150] + _c4()[:150]
        test_pos = sum((_md(d) for d in ("glossary", "states", "topics", "blog", "help", "quick-answers")), [])
        test_neg = sum((_rst(d) for d in ("c-api", "reference", "whatsnew", "tutorial")), []) + _wiki() + _web_pages()
    elif name == "python":
        pos = _rst("library")
        neg = _c4() + _md("articles")
        test_pos = sum((_rst(d) for d in ("c-api", "reference", "tutorial", "howto", "faq", "whatsnew", "extending", "using")), [])
        test_neg = _wiki() + _web_pages() + _md("glossary") + _md("questions") + _md("states")
    else:
        raise ValueError(name)
    rng.shuffle(pos)
    return {"pos": pos[:positives], "neg": neg, "test_pos": test_pos, "test_neg": test_neg}
