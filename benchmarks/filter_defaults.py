"""What `corpus filter` + `corpus dedup` keep of each kind of text: genuine pages kept, junk removed.

    .venv/bin/python benchmarks/ablation_kinds.py /tmp/kinds          # builds the five kinds
    .venv/bin/python benchmarks/filter_defaults.py /tmp/kinds [--config FILE] [--name NAME] [--kinds ...]

For each kind: ingest raw.jsonl, run the filter (default options, or --config), then dedup
(defaults), and count per label. A genuine page counts as kept when any of its copies is kept (a
removed duplicate is not a lost page). Kept characters: the kept text of the genuine pages against
their original text (the filter should not rewrite what it keeps). Prints one table; writes
OUT/KIND/NAME/summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

KIND_OPTIONS = {  # what a user says about their own data: the languages it holds
    "insurance": {"langid": {"allowed": ["en", "es"]}},
}


def _run(args: list[str]) -> None:
    from corpus.cli import main

    if main(["-q", *args]):
        sys.exit(f"failed: corpus {' '.join(args)}")


def _frame(folder: Path, kind: str) -> pl.DataFrame:
    files = sorted((folder / kind).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema={"id": pl.String, "text": pl.String, "metadata": pl.String, "reason": pl.String})
    cols = ["id", "text", "metadata"] + (["reason"] if kind == "rejected" else [])
    return pl.concat([pl.read_parquet(f, columns=cols) for f in files], how="vertical_relaxed")


def raw_ingest(kind_dir: Path) -> Path:
    ingest = kind_dir / "raw-ingest"
    if not (ingest / "card.json").is_file():
        _run(["ingest", str(kind_dir / "raw.jsonl"), "-o", str(ingest), "--source", kind_dir.name, "--domain", kind_dir.name])
    return ingest


def _run_or_replace(args: list[str]) -> None:
    from corpus.cli import main

    if main(["-q", *args]):
        _run([*args, "--overwrite"])


def measure(kind_dir: Path, name: str, config: Path | dict | None, extra: dict, dedup: str = "both") -> dict:
    """Filter (+ dedup: both, exact or none) the kind's raw pool into KIND/NAME/ and count what it kept."""
    import yaml

    work = kind_dir / name
    work.mkdir(exist_ok=True)
    ingest, filtered = raw_ingest(kind_dir), work / "filter"
    deduped = work / "dedup" if dedup != "none" else filtered
    cfg_file = work / "filter.yaml"
    base = config if isinstance(config, dict) else yaml.safe_load(config.read_text()) if config else {}
    merged = _merge(base or {}, extra)
    cfg_file.write_text(yaml.safe_dump(merged), encoding="utf-8")
    # the same inputs and options: "up to date"; other ones replace the folder (this benchmark owns it)
    _run_or_replace(["filter", str(ingest), "-o", str(filtered), "--config", str(cfg_file), "--tasks", "2"])
    if dedup != "none":
        _run_or_replace(["dedup", str(filtered), "-o", str(deduped), "--mode", dedup, "--tasks", "2"])
    raw = _frame(ingest, "data").with_columns(pl.col("metadata").str.json_decode(pl.Struct({"label": pl.String, "page": pl.Int64})).alias("m"))
    # an exact copy has its original's id: metadata (its record number) tells them apart
    raw = raw.select("id", "metadata", pl.col("text").alias("raw_text"), pl.col("m").struct.field("label"), pl.col("m").struct.field("page"))
    key = ["id", "metadata"]
    kept = _frame(deduped, "data").select(*key, "text")
    rej_f = _frame(filtered, "rejected").select(*key, "reason")
    rej_d = _frame(deduped, "rejected").select(*key, "reason") if deduped != filtered else rej_f.head(0)
    decided = raw.join(kept.with_columns(pl.lit(True).alias("kept")), on=key, how="left").with_columns(pl.col("kept").fill_null(False))
    decided = decided.join(pl.concat([rej_f, rej_d]), on=key, how="left")
    assert decided.height == raw.height, "a (id, metadata) pair is not unique"
    out: dict = {"kind": kind_dir.name, "name": name, "output": str(deduped)}
    genuine = decided.filter(pl.col("label").is_in(["genuine", "copy"]))
    pages = genuine.group_by("page").agg(pl.col("kept").any())
    out["genuine_pages"] = pages.height
    out["genuine_kept"] = round(pages["kept"].mean(), 4)
    orig = decided.filter(pl.col("label") == "genuine")
    out["genuine_filter_reasons"] = dict(
        orig.filter(~pl.col("kept"), pl.col("reason").is_not_null()).group_by("reason").len().sort("len", descending=True).iter_rows()
    )
    kept_text = orig.filter(pl.col("kept"))
    out["kept_chars_share"] = round(kept_text["text"].str.len_chars().sum() / max(1, kept_text["raw_text"].str.len_chars().sum()), 4)
    junk = decided.filter(pl.col("label").str.starts_with("junk"))
    out["junk_docs"] = junk.height
    out["junk_removed"] = round(1 - junk["kept"].mean(), 4) if junk.height else None
    out["junk_kept_by_type"] = dict(junk.filter(pl.col("kept")).group_by("label").len().iter_rows())
    copies = decided.filter(pl.col("label").is_in(["genuine", "copy"])).group_by("page").agg(pl.col("kept").sum())
    out["pages_kept_twice"] = int((copies["kept"] > 1).sum())
    (work / "summary.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds_dir", type=Path)
    parser.add_argument("--config", type=Path, help="filter YAML (default: the built-in defaults)")
    parser.add_argument("--name", default="default", help="subfolder of each kind for this run's outputs")
    parser.add_argument("--kinds", nargs="+", default=["web", "docs", "wrapped", "insurance", "qa"])
    args = parser.parse_args()
    rows = []
    for kind in args.kinds:
        rows.append(measure(args.kinds_dir / kind, args.name, args.config, KIND_OPTIONS.get(kind, {})))
        r = rows[-1]
        print(f"{kind:10s} genuine kept {r['genuine_kept']:.3f} of {r['genuine_pages']}, kept chars {r['kept_chars_share']:.3f}, "
              f"junk removed {r['junk_removed']:.3f} of {r['junk_docs']}, kept twice {r['pages_kept_twice']}; "
              f"lost to {dict(list(r['genuine_filter_reasons'].items())[:4])}; junk kept {r['junk_kept_by_type']}", flush=True)


if __name__ == "__main__":
    main()
