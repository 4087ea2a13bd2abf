"""Decontamination: recall on planted eval items, false positives on clean text, speed, memory.

    .venv/bin/python benchmarks/bench_decontaminate.py [--docs 20000] [--items 1000] [--work /tmp/bench-decontam]
    .venv/bin/python benchmarks/bench_decontaminate.py --memory-items 100000

Real text from ../shared/data: the clean documents are Wikipedia articles (LLaMA-Factory's
wiki_demo.txt), C4 documents and Python documentation pages, cut into pages; the eval set is
Alpaca's instruction/answer rows plus self-instruct's user-oriented instructions. Planted, each in
its own clean page, an eval item's answer:
  verbatim     as it is;
  reformatted  upper- or title-cased, punctuation stripped or changed, re-wrapped at 40-70 columns;
  partial      a 25-word window of it, inside a long page;
  near miss    a 6-to-10-word window of it (below the n-gram: must NOT match).
Recall per form, and false positives on every clean and near-miss page (any match there counts).

Speed, side by side on the same pages and eval set: `corpus decontaminate` (whole process, 2
tasks), the same matching in process, a plain-Python n-gram set lookup (regex words, NFKC, lower
case, a set of 13-gram tuples), and `corpus filter` (whole process, 2 tasks) for scale.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

from summary import load_average, median, record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BIN = Path(sys.executable).parent


def clean_pages(limit: int, rng: random.Random) -> list[str]:
    pages = []
    for article in (SHARED / "sft/llama-factory/wiki_demo.txt").read_text(encoding="utf-8").splitlines():
        words = article.split()
        pages += [" ".join(words[i : i + 300]) for i in range(0, len(words), 300)]
    pages += [json.loads(line)["text"] for line in (SHARED / "sft/llama-factory/c4_demo.jsonl").open(encoding="utf-8")]
    for f in sorted((SHARED / "general/python-3.11-docs").rglob("*.rst.txt")):
        text = f.read_text(encoding="utf-8")
        pages += [text[i : i + 2500] for i in range(0, len(text), 2500)]
    rng.shuffle(pages)
    while len(pages) < limit:  # more pages than the sources hold: other cuts of the same text
        pages += [p[len(p) // 3 :] + " " + p[: len(p) // 3] for p in pages[: limit - len(pages)]]
    return pages[:limit]


def eval_rows() -> list[dict]:
    rows = json.loads((SHARED / "sft/llama-factory/alpaca_en_demo.json").read_text(encoding="utf-8"))
    items = [{"id": f"alpaca-{i}", "instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]} for i, r in enumerate(rows)]
    for i, line in enumerate((SHARED / "sft/self-instruct/human_eval/user_oriented_instructions.jsonl").open(encoding="utf-8")):
        r = json.loads(line)
        inst = r["instances"][0]
        items.append({"id": f"self-instruct-{i}", "instruction": r["instruction"], "input": inst.get("input", ""), "output": inst["output"]})
    return items


def reformat(text: str, rng: random.Random) -> str:
    text = text.upper() if rng.random() < 0.5 else text.title()
    text = re.sub(r"[.,;:!?\"'()]", lambda m: rng.choice(["", " - ", "...", ";"]), text)
    words, lines, line = text.split(), [], []
    width = rng.randint(40, 70)
    for w in words:
        if sum(len(x) + 1 for x in line) + len(w) > width:
            lines.append(" ".join(line))
            line = []
        line.append(w)
    lines.append(" ".join(line))
    return "\n".join(lines)


def plant(pages: list[str], items: list[dict], rng: random.Random, per_form: int) -> tuple[list[dict], list[str]]:
    """Documents with their form and the item planted; the eval items whose answer is long enough."""
    usable = [it for it in items if len(it["output"].split()) >= 30]
    chosen = rng.sample(usable, min(len(usable), 4 * per_form))
    docs = [{"text": p, "form": "clean", "item": None} for p in pages]
    forms = ["verbatim", "reformatted", "partial", "near_miss"]
    for n, item in enumerate(chosen):
        form, host = forms[n % 4], rng.choice(pages)
        words = item["output"].split()
        if form == "verbatim":
            planted = item["output"]
        elif form == "reformatted":
            planted = reformat(item["output"], rng)
        elif form == "partial":
            start = rng.randrange(0, len(words) - 25 + 1)
            planted = " ".join(words[start : start + 25])
        else:
            size = rng.randint(6, 10)
            start = rng.randrange(0, len(words) - size + 1)
            planted = " ".join(words[start : start + size])
        cut = rng.randrange(len(host) // 2 + 1)
        docs.append({"text": host[:cut] + "\n" + planted + "\n" + host[cut:] + ("\n" + host if form == "partial" else ""),
                     "form": form, "item": item["id"]})  # fmt: skip
    return docs, [it["id"] for it in chosen]


def plain_python(docs: list[str], items: list[dict], n: int = 13) -> tuple[float, set[int]]:
    """The baseline: regex words, NFKC, lower case, a set of n-gram tuples."""
    word = re.compile(r"\w+")

    def words(text: str) -> list[str]:
        return word.findall(unicodedata.normalize("NFKC", text).lower())

    started = time.perf_counter()
    grams = set()
    for it in items:
        for field in ("instruction", "input", "output"):
            w = words(it[field])
            grams.update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    hits = set()
    for d, text in enumerate(docs):
        w = words(text)
        if any(tuple(w[i : i + n]) in grams for i in range(len(w) - n + 1)):
            hits.add(d)
    return time.perf_counter() - started, hits


def in_process(docs: list[str], eval_file: Path, work: Path) -> tuple[float, set[int]]:
    import numpy as np
    import pyarrow as pa

    from corpus.decontaminate import DecontaminateConfig, build_index
    from corpus.decontaminate.index import EvalIndex, Words, normalise

    work.mkdir(parents=True, exist_ok=True)
    Words(normalise(["warm up the kernels"]))
    started = time.perf_counter()
    build_index(DecontaminateConfig(against=[str(eval_file)]), work)
    index = EvalIndex.load(work / "eval_index.npz")
    hits = set()
    for start in range(0, len(docs), 8192):
        batch = pa.array(docs[start : start + 8192])
        doc, *_ = index.matches(Words(normalise(batch)))
        hits.update((np.unique(doc) + start).tolist())
    return time.perf_counter() - started, hits


def run_cli(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "corpus"), "-q", *args], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--per-form", type=int, default=100, help="planted documents per form")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-decontam"))
    parser.add_argument("--memory-items", type=int, help="only measure memory: index this many eval items and match the pages")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the speed comparison (the median is reported)")
    args = parser.parse_args()
    rng = random.Random(0)
    args.work.mkdir(parents=True, exist_ok=True)
    items = eval_rows()
    pages = clean_pages(args.docs, rng)
    if args.memory_items:
        return memory(args, pages, rng)
    docs, _ = plant(pages, items, rng, args.per_form)
    eval_file = args.work / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
    train_file = args.work / "train.jsonl"
    train_file.write_text("".join(json.dumps({"text": d["text"], "form": d["form"], "row": i}) + "\n" for i, d in enumerate(docs)), encoding="utf-8")
    ingested = args.work / "in"
    if not (ingested / "card.json").is_file():
        run_cli(["ingest", str(train_file), "-o", str(ingested), "--source", "bench", "--domain", "web", "--overwrite"])
    out = args.work / "out"
    ours_cli = run_cli(["decontaminate", str(ingested), "-o", str(out), "--against", str(eval_file), "--overwrite", "--tasks", "2"])
    import polars as pl

    rejected = pl.read_parquet(out / "rejected" / "*.parquet") if list((out / "rejected").glob("*.parquet")) else pl.DataFrame()
    hit_rows = set()
    if rejected.height:
        hit_rows = {json.loads(m)["row"] for m in rejected["metadata"].to_list()}
    by_form: dict[str, list[bool]] = {}
    for i, d in enumerate(docs):
        by_form.setdefault(d["form"], []).append(i in hit_rows)
    print(f"{len(docs):,} documents ({len(pages):,} clean pages), {len(items):,} eval items (Alpaca + self-instruct), 13-grams")
    for form in ("verbatim", "reformatted", "partial"):
        hits = by_form.get(form, [])
        print(f"  recall {form:12s} {sum(hits) / max(1, len(hits)):.3f} ({sum(hits)}/{len(hits)})")
    clean = by_form["clean"] + by_form.get("near_miss", [])
    print(f"  false positives  {sum(clean) / len(clean):.4%} ({sum(clean)}/{len(clean)}; near misses matched: "
          f"{sum(by_form.get('near_miss', []))}/{len(by_form.get('near_miss', []))})")  # fmt: skip
    texts = [d["text"] for d in docs]
    ours_runs, python_runs = [], []
    for _ in range(args.rounds):  # interleaved, so both see the same machine load
        ours_s, ours_hits = in_process(texts, eval_file, args.work / "index")
        python_s, python_hits = plain_python(texts, items)
        ours_runs.append(ours_s)
        python_runs.append(python_s)
    ours_s, python_s = median(ours_runs), median(python_runs)
    filter_s = run_cli(["filter", str(ingested), "-o", str(args.work / "filter"), "--overwrite", "--tasks", "2"])
    print(f"  speed, median of {args.rounds} (load average {load_average():.1f}): ours in process {len(texts) / ours_s:,.0f} docs/s ({ours_s:.2f} s, index included); plain Python "
          f"{len(texts) / python_s:,.0f} docs/s ({python_s:.2f} s): {python_s / ours_s:.1f}x")  # fmt: skip
    print(f"  whole process, 2 tasks: corpus decontaminate {len(texts) / ours_cli:,.0f} docs/s ({ours_cli:.2f} s); "
          f"corpus filter {len(texts) / filter_s:,.0f} docs/s ({filter_s:.2f} s): {filter_s / ours_cli:.1f}x")  # fmt: skip
    record("decontaminate", f"documents/s in process, {len(texts):,} documents", len(texts) / ours_s, len(texts) / python_s,
           "plain-Python 13-gram set", "docs/s", target=5, rounds=args.rounds)
    print(f"  plain Python matched {len(python_hits)} documents, ours {len(ours_hits)} (ours also matches short items whole, "
          f"Unicode and re-wrapped forms)")  # fmt: skip


def memory(args, pages: list[str], rng: random.Random) -> None:
    """Peak memory of indexing N eval items (sentences of the pages) and matching every page."""
    sentences = [s.strip() for p in pages for s in re.split(r"(?<=[.!?])\s+", p) if len(s.split()) >= 8]
    while len(sentences) < args.memory_items:
        sentences += sentences[: args.memory_items - len(sentences)]
    items = args.work / "memory-items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "text": s}) + "\n" for i, s in enumerate(sentences[: args.memory_items])), encoding="utf-8")
    train = args.work / "memory-train.jsonl"
    train.write_text("".join(json.dumps({"text": p}) + "\n" for p in pages), encoding="utf-8")
    ingested = args.work / "memory-in"
    run_cli(["ingest", str(train), "-o", str(ingested), "--source", "bench", "--domain", "web", "--overwrite"])
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(BIN / "corpus"), "-q", "decontaminate", str(ingested), "-o",
                           str(args.work / "memory-out"), "--against", str(items), "--overwrite", "--tasks", "2"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    card = json.loads((args.work / "memory-out" / "card.json").read_text())
    facts = card["stage_facts"]["decontamination"]["by_eval_set"][str(items)]
    print(f"{args.memory_items:,} eval items, {len(pages):,} pages: peak RSS {peak_kb / 1024:.0f} MiB, "
          f"{time.perf_counter() - started:.1f} s; {facts['docs_matched']:,} pages matched {facts['items_found']:,} items "
          f"(the items are sentences of these pages)")  # fmt: skip


if __name__ == "__main__":
    main()
