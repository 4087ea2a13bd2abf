"""Do the default filter and dedup make better models, on every kind of text? Per-rule evidence too.

    .venv/bin/python benchmarks/ablation_kinds.py /tmp/kinds            # the five kinds, junk and copies injected
    .venv/bin/python benchmarks/ablate_defaults.py /tmp/kinds [--kinds ...] [--seeds 3] [--arms ...]

For each kind, these arms are drawn to the same token budget and trained with `train ablate` (tiny
preset, the same seeds), then scored on the kind's held-out genuine pages:

  raw            the pool as ingested: genuine pages, junk pages, copies
  default        `corpus filter` (general profile) + `corpus dedup`, both with default options
  web-strict     datatrove's rules (`profile: web-strict`) + dedup: the defaults before this profile
  no-prose       the default without the prose rule group (function words, word variety, alpha words)
  no-repetition  the default without Gopher's repetition group
  no-dedup       the default filter, no dedup
  exact-dedup    the default filter, exact dedup only (no MinHash)

Two ablations per kind. `ablation/`: every arm but web-strict, at the tokens the smallest of them
holds times --max-epochs (at most --max-budget). `ablation-strict/`: default against web-strict, whose
output is much smaller, at the tokens web-strict gives in --strict-epochs passes (at most
--max-budget): what a user of the web rules gets at equal tokens is repeats of what they kept.
Prints one table per kind and writes OUT/KIND/ablation*/report.md (and report.json) and
OUT/summary.json; each arm's dataset card gets the verdicts in its Evidence section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filter_defaults import KIND_OPTIONS, _run, measure, raw_ingest  # noqa: E402

ARMS = {
    "default": ({}, "both"),
    "web-strict": ({"profile": "web-strict"}, "both"),
    "no-prose": ({"quality": {"prose": {"enabled": False}}}, "both"),
    "no-repetition": ({"quality": {"gopher_repetition": {"enabled": False}}}, "both"),
    "no-dedup": ({}, "none"),
    "exact-dedup": ({}, "exact"),
}


def eval_set(kind_dir: Path) -> Path:
    out = kind_dir / "eval-ingest"
    if not (out / "card.json").is_file():
        _run(["ingest", str(kind_dir / "eval.jsonl"), "-o", str(out), "--source", kind_dir.name, "--domain", kind_dir.name])
    return out


def _config(arms: dict, out: Path, budget: int, max_epochs: float, args):
    from train.ablate import AblateConfig

    return AblateConfig(arms=arms, eval=[str(eval_set(out.parent))], output=str(out), seeds=args.seeds, preset="tiny",
                        vocab_size=4096, seq_len=args.seq_len, batch_size=8, budget_tokens=budget, max_epochs=max_epochs)  # fmt: skip


def markdown(summary: dict) -> str:
    """The results as the tables of benchmarks/README.md."""
    lines = ["| kind | tokens per run | raw | default (filter + dedup) | raw - default (mean ± std over 3 seeds) | verdict | genuine pages kept | junk pages removed |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    loo = ["| kind | default - no-prose | default - no-repetition | default - no-dedup | default - exact-dedup only | default - web-strict (strict ablation) |",
           "|---|---|---|---|---|---|"]  # fmt: skip

    def cell(v: dict | None) -> str:
        if not v:
            return "-"
        verdict = v["verdict"].replace("no detectable difference", "no difference")
        return f"{v['diff']:+.3f} ± {v['std']:.3f} ({verdict})"

    for kind, entry in summary.items():
        main_ab = entry["ablations"][0]
        arms = {r["arm"]: r for r in main_ab["arms"]}
        v = main_ab["verdicts"].get("raw vs default")
        d = arms["default"]
        lines.append(f"| {kind} | {main_ab['tokens_per_run']:,} | {arms['raw']['loss_mean']:.3f} ± {arms['raw']['loss_std']:.3f} | "
                     f"{d['loss_mean']:.3f} ± {d['loss_std']:.3f} | {v['diff']:+.3f} ± {v['std']:.3f} | {v['verdict']} | "
                     f"{100 * d['genuine_kept']:.1f}% | {100 * d['junk_removed']:.1f}% |")  # fmt: skip
        verdicts = main_ab["verdicts"]
        strict = entry["ablations"][1]["verdicts"].get("default vs web-strict") if len(entry["ablations"]) > 1 else None
        loo.append(f"| {kind} | " + " | ".join(cell(verdicts.get(f"default vs {arm}")) for arm in ("no-prose", "no-repetition", "no-dedup", "exact-dedup"))
                   + f" | {cell(strict)} |")  # fmt: skip
    return "\n".join(lines) + "\n\n" + "\n".join(loo) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds_dir", type=Path)
    parser.add_argument("--kinds", nargs="+", default=["web", "docs", "wrapped", "insurance", "qa"])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-budget", type=int, default=300_000, help="tokens per arm at most")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-epochs", type=float, default=1.0, help="most passes over an arm (the budget: the smallest arm times this, at most --max-budget)")
    parser.add_argument("--strict-epochs", type=float, default=4.0, help="most passes over web-strict's output")
    parser.add_argument("--table", action="store_true", help="only print the tables of OUT/summary.json")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads((args.kinds_dir / "summary.json").read_text())))
        return

    from train.ablate import run_ablation

    summary = {}
    for kind in args.kinds:
        kind_dir = args.kinds_dir / kind
        started = time.perf_counter()
        arms = {"raw": [str(raw_ingest(kind_dir))]}
        kept = {}
        for name in args.arms:
            config, dedup = ARMS[name]
            facts = measure(kind_dir, name, config, KIND_OPTIONS.get(kind, {}), dedup)
            arms[name] = [facts["output"]]
            kept[name] = facts
        def tokens(path: str) -> int:  # under the arm's token count: a token is >= ~3.5 characters in these sets
            return json.loads((Path(path) / "card.json").read_text())["stats"]["chars"] // 5

        main_arms = {k: v for k, v in arms.items() if k != "web-strict"}
        budget = min(args.max_budget, int(min(tokens(p[0]) for p in main_arms.values()) * args.max_epochs))
        reports = [run_ablation(_config(main_arms, kind_dir / "ablation", budget, args.max_epochs, args), replace_stale=True)]
        if "web-strict" in arms:
            strict_budget = min(args.max_budget, tokens(arms["web-strict"][0]) * args.strict_epochs, tokens(arms["default"][0]))
            strict_arms = {"default": arms["default"], "web-strict": arms["web-strict"]}
            reports.append(run_ablation(_config(strict_arms, kind_dir / "ablation-strict", strict_budget, args.strict_epochs, args),
                                        replace_stale=True))  # fmt: skip
        summary[kind] = {"seconds": 0, "ablations": []}
        for report in reports:
            ev = next(iter(report["config"]["eval_sets"]))
            rows = []
            for arm, entry in report["arms"].items():
                e = entry["eval"][ev]
                facts = kept.get(arm, {})
                rows.append({"arm": arm, "loss_mean": round(e["loss_mean"], 4), "loss_std": round(e["loss_std"], 4),
                             "repeated_copies": sum(entry["data"]["repeated_copies"]), "genuine_kept": facts.get("genuine_kept"),
                             "junk_removed": facts.get("junk_removed"), "kept_chars_share": facts.get("kept_chars_share")})  # fmt: skip
            verdicts = {f"{c['a']} vs {c['b']}": {"diff": round(c["diff_mean"], 4), "std": round(c["diff_std"], 4), "verdict": c["verdict"]}
                        for c in report["comparisons"] if "raw" in (c["a"], c["b"]) or "default" in (c["a"], c["b"])}  # fmt: skip
            summary[kind]["ablations"].append({"folder": report["config"]["output"], "tokens_per_run": report["config"]["tokens_per_run"],
                                               "max_epochs": report["config"]["max_epochs"], "arms": rows, "verdicts": verdicts})  # fmt: skip
            print(f"\n{kind} ({Path(report['config']['output']).name}): {report['config']['tokens_per_run']:,} tokens per run, "
                  f"{args.seeds} seeds, max epochs {report['config']['max_epochs']:g}")  # fmt: skip
            print(f"  {'arm':14s} {'eval loss':>16s} {'genuine kept':>13s} {'junk removed':>13s} {'repeats':>8s}")
            for r in rows:
                gk = "-" if r["genuine_kept"] is None else f"{r['genuine_kept']:.3f}"
                jr = "-" if r["junk_removed"] is None else f"{r['junk_removed']:.3f}"
                print(f"  {r['arm']:14s} {r['loss_mean']:.4f} ± {r['loss_std']:.4f} {gk:>13s} {jr:>13s} {r['repeated_copies']:>8,}")
            for pair, v in verdicts.items():
                print(f"  {pair}: {v['diff']:+.4f} ± {v['std']:.4f}: {v['verdict']}", flush=True)
        summary[kind]["seconds"] = round(time.perf_counter() - started)
        (args.kinds_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("\n" + markdown(summary))


if __name__ == "__main__":
    main()
