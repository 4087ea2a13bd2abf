"""Which rule fails which text: per check, the share of genuine and of junk pages failing it, per kind.

    .venv/bin/python benchmarks/ablation_kinds.py /tmp/kinds
    .venv/bin/python benchmarks/rule_failures.py /tmp/kinds [--profile general|web-strict]

Every check of the profile is applied alone (in any order, not only the first failing one) to the
raw pool of each kind, after sanitising and language ID as `corpus filter` does them. A good rule
fails many junk pages and few genuine ones; "only" is the junk it catches that no other check of
the profile catches. Prints one table (percentages).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

KINDS = ["web", "docs", "wrapped", "insurance", "qa"]


def failures(kind_dir: Path, profile: str) -> tuple[dict, dict, dict]:
    from corpus.filter.config import FilterConfig
    from corpus.filter.langid import identify
    from corpus.filter.quality import failing_masks, quality_scores
    from corpus.filter.sanitise import sanitise_texts

    rows = [json.loads(line) for line in (kind_dir / "raw.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r["label"] != "copy"]
    cfg = FilterConfig.model_validate({"profile": profile})
    texts, _ = sanitise_texts(pl.Series([r["text"] for r in rows]), pl.Series([kind_dir.name] * len(rows)), cfg.sanitise, None)
    langs, scores = identify(texts, cfg.langid.max_chars, cfg.langid.read)
    q = cfg.quality
    decided = langs.is_null() | langs.is_in(q.languages) if q.languages is not None else pl.Series([True] * len(rows))
    table = quality_scores(texts, q, langs, scores.cast(pl.Float64))
    masks = {c.reason: m for c, m, _ in failing_masks(table, pl.Series([None] * len(rows), dtype=pl.String), decided, q)}
    low = (scores.fill_null(0) < cfg.langid.min_score).to_numpy()
    masks = {"langid_low_score": low, **masks}
    junk = np.array([r["label"].startswith("junk") for r in rows])
    any_other = {k: np.any([m for j, m in masks.items() if j != k], axis=0) for k in masks}
    genuine_rate = {k: float(m[~junk].mean()) for k, m in masks.items()}
    junk_rate = {k: float(m[junk].mean()) for k, m in masks.items()}
    only = {k: float((m & ~any_other[k])[junk].mean()) for k, m in masks.items()}
    return genuine_rate, junk_rate, only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds_dir", type=Path)
    parser.add_argument("--profile", default="web-strict", choices=["general", "web-strict"])
    parser.add_argument("--kinds", nargs="+", default=KINDS)
    args = parser.parse_args()
    results = {kind: failures(args.kinds_dir / kind, args.profile) for kind in args.kinds}
    checks = list(dict.fromkeys(k for g, _, _ in results.values() for k in g))
    print(f"profile {args.profile}: % of genuine pages failing each check | % of junk pages failing it (only this check)")
    print("| check | " + " | ".join(args.kinds) + " |")
    print("|---|" + "---|" * len(args.kinds))
    for check in checks:
        cells = []
        for kind in args.kinds:
            g, j, o = (d.get(check, 0.0) for d in results[kind])
            cells.append(f"{100 * g:.1f} / {100 * j:.0f} ({100 * o:.0f})")
        print(f"| `{check}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
