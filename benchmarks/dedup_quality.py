"""Precision, recall and F1 of duplicate pairs: ours, datatrove 0.10.1 MinHash, datasketch MinHashLSH.

    .venv/bin/python benchmarks/make_neardup_set.py --out benchmarks/out/neardup.jsonl
    .venv/bin/python benchmarks/dedup_quality.py --set benchmarks/out/neardup.jsonl

Needs datasketch and psutil in the venv (benchmark-only: `.venv/bin/pip install datasketch psutil`).

A predicted pair is two documents in the same cluster. The truth of a pair is "true Jaccard of its
word 5-gram shingles >= --truth" (default 0.7, about the 14x8 S-curve's midpoint 0.72), computed
for every pair within a generated family and every pair any method predicts; pairs nobody proposes
and outside a family are taken as negatives. The same is run on the Clough & Stevenson corpus,
where the labels say which answers were cut/lightly/heavily edited from the Wikipedia original.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_common import (  # noqa: E402
    SHARED,
    cluster_pairs,
    datatrove_clusters,
    jaccard,
    ours_clusters,
    prf,
    run_datasketch,
    run_datatrove,
    run_ours,
    shingles,
    write_dataset,
)
from summary import record  # noqa: E402


def evaluate(name: str, keys: list[str], texts: list[str], families: dict[str, object], args, work: Path) -> dict:
    dataset = write_dataset(work / f"{name}-in", keys, texts)
    common = ["--ngram", str(args.ngram), "--bands", str(args.bands), "--rows", str(args.rows)]
    methods: dict[str, dict[str, str]] = {}
    run_ours(dataset, work / f"{name}-ours", ["--mode", "minhash", *common])
    methods["ours (minhash, verified: default)"] = ours_clusters(work / f"{name}-ours")
    run_ours(dataset, work / f"{name}-ours-nv", ["--mode", "minhash", "--no-verify", *common])
    methods["ours (minhash, --no-verify)"] = ours_clusters(work / f"{name}-ours-nv")
    for t in args.sweep:
        run_ours(dataset, work / f"{name}-ours-{t}", ["--mode", "minhash", "--threshold", str(t), *common])
        methods[f"ours --threshold {t}"] = ours_clusters(work / f"{name}-ours-{t}")
    if not args.ours_only:
        run_datatrove(dataset, work / f"{name}-datatrove", args.ngram, args.bands, args.rows)
        methods["datatrove 0.10.1"] = datatrove_clusters(work / f"{name}-datatrove")
        methods["datasketch MinHashLSH"], _ = run_datasketch(keys, texts, args.ngram, args.bands, args.rows)

    predicted = {m: cluster_pairs(c) for m, c in methods.items()}
    by_family = defaultdict(list)
    for key in keys:
        by_family[families[key]].append(key)
    candidates = set().union(*predicted.values())
    for members in by_family.values():
        candidates |= {tuple(sorted(p)) for p in itertools.combinations(members, 2)}
    text_of = dict(zip(keys, texts))
    cache: dict[str, set] = {}

    def sh(key):
        if key not in cache:
            cache[key] = shingles(text_of[key], args.ngram)
        return cache[key]

    truth = {p for p in candidates if jaccard(sh(p[0]), sh(p[1])) >= args.truth}
    results = {m: prf(pairs, truth) for m, pairs in predicted.items()}
    return {"docs": len(keys), "candidate_pairs": len(candidates), "true_pairs": len(truth), "methods": results, "clusters": methods}


def print_table(title: str, report: dict) -> None:
    print(f"\n### {title}: {report['docs']} documents, {report['true_pairs']} true pairs of {report['candidate_pairs']} candidates\n")
    print("| method | predicted pairs | precision | recall | F1 |")
    print("|---|---:|---:|---:|---:|")
    for m, r in report["methods"].items():
        print(f"| {m} | {r['pairs']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")


def record_quality(name: str, report: dict) -> None:
    """For `make bench`: our default's F1 against datatrove's (precision alongside, in the measure)."""
    methods = report["methods"]
    ours, peer = methods["ours (minhash, verified: default)"], methods.get("datatrove 0.10.1")
    if peer:
        record("dedup quality", f"F1 of duplicate pairs, {name} (precision ours {ours['precision']:.3f}, datatrove {peer['precision']:.3f})",
               ours["f1"], peer["f1"], "datatrove MinHash", "F1")


def clough_stevenson(args, work: Path) -> None:
    folder = SHARED / "neardup" / "clough-stevenson"
    labels = {}
    with open(folder / "file_information.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            labels[row["File"]] = (row["Task"], row["Category"])
    keys, texts, families = [], [], {}
    for path in sorted(folder.glob("*.txt")):
        keys.append(path.name)
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
        families[path.name] = path.name.split("_")[1].split(".")[0][-1] if path.name.startswith("orig") else labels[path.name][0]
    report = evaluate("clough", keys, texts, families, args, work)
    print_table(f"Clough & Stevenson (truth: true Jaccard >= {args.truth})", report)
    record_quality("Clough-Stevenson", report)
    # the corpus's own labels: is each answer clustered with its task's original?
    print("\nShare of answers put in the same cluster as their original, by the corpus's label:\n")
    categories = ["cut", "light", "heavy", "non"]
    print("| method | " + " | ".join(categories) + " |")
    print("|---|" + "---:|" * len(categories))
    for m, clusters in report["clusters"].items():
        cells = []
        for cat in categories:
            answers = [k for k, (task, c) in labels.items() if c == cat]
            hit = sum(1 for k in answers if k in clusters and clusters.get(f"orig_task{labels[k][0]}.txt") == clusters[k])
            cells.append(f"{hit}/{len(answers)}")
        print(f"| {m} | " + " | ".join(cells) + " |")


def paraphrase_grouped(name: str, args, work: Path) -> None:
    """MSRP or Opinosis sentences grouped by meaning: paraphrases, mostly not near duplicates."""
    folder = SHARED / "neardup" / "paraphrase-grouped" / name / f"{name}_distribute"
    texts = (folder / "phrases.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    with open(folder / "phrase_groups.csv", encoding="utf-8") as f:
        groups = {int(r["phrase_index"]): r["paraphrase_group_index"] for r in csv.DictReader(f)}
    keys = [f"{name}-{i}" for i in range(len(texts))]
    report = evaluate(name, keys, texts, {k: groups.get(i, f"none-{i}") for i, k in enumerate(keys)}, args, work)
    print_table(f"{name} paraphrase groups (truth: true Jaccard >= {args.truth})", report)


def main() -> None:
    parser = argparse.ArgumentParser(description="dedup quality: ours vs datatrove vs datasketch")
    parser.add_argument("--set", required=True, help="JSONL from make_neardup_set.py")
    parser.add_argument("--work", default="benchmarks/out/quality")
    parser.add_argument("--ngram", type=int, default=5)
    parser.add_argument("--bands", type=int, default=14)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--truth", type=float, default=0.7, help="a pair is a duplicate if its true Jaccard is at least this")
    parser.add_argument("--sweep", type=float, nargs="*", default=[0.5, 0.6, 0.7, 0.8, 0.9],
                        help="also run ours with each of these verification thresholds")
    parser.add_argument("--ours-only", action="store_true", help="skip datatrove and datasketch")
    parser.add_argument("--sets", nargs="+", default=["generated", "clough", "msrp", "opinosis"])
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"n-gram {args.ngram}, {args.bands} bands x {args.rows} rows = {args.bands * args.rows} permutations")
    if "generated" in args.sets:
        rows = [json.loads(line) for line in open(args.set, encoding="utf-8")]
        keys = [r["url"] for r in rows]
        report = evaluate("generated", keys, [r["text"] for r in rows], {r["url"]: r["family"] for r in rows}, args, work)
        print_table(f"Generated near-duplicates (truth: true Jaccard >= {args.truth})", report)
        record_quality("generated set", report)
    if "clough" in args.sets:
        clough_stevenson(args, work)
    for name in ("msrp", "opinosis"):
        if name in args.sets:
            paraphrase_grouped(name, args, work)


if __name__ == "__main__":
    main()
