"""Our pretraining loop vs a minimal plain-PyTorch loop on the same model and batches; loader vs model speed.

    python benchmarks/bench_pretrain.py [--presets tiny small] [--steps 10] [--rounds 3] [--threads 1]

1. Shards: the bundled sample (quick start pipeline -> 4,096-token tokenizer -> shards), built once
   under out/bench-pretrain/.
2. For each preset and round, interleaved so a busy machine slows both alike:
   - ours: `train.pretrain.pretrain()` for warmup + steps optimizer steps (loader, token-normalised
     loss, clipping, schedule, metrics JSONL/CSV every step); tokens/s from its own per-step
     `elapsed_s` records over the last `steps` steps;
   - plain: the same initial weights, the same batches (read from our loader beforehand, so the
     plain loop does no data work at all), forward, cross-entropy, backward, clip, AdamW, zero_grad.
3. The loader alone: windows/s of `WindowLoader.next_batch()` (with and without --doc-mask) against
   the windows/s the model consumes in our loop.
Prints a Markdown table; the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from train.data import WindowLoader  # noqa: E402
from train.model import PRESETS, count_parameters, new_model  # noqa: E402
from train.pretrain import PretrainConfig, pretrain  # noqa: E402
from summary import record  # noqa: E402

SHAPES = {"tiny": (8, 128), "small": (4, 128)}  # (batch size, seq len) that keep a CPU step near a second


def build_shards(base: Path) -> tuple[Path, Path]:
    corpus = [sys.executable, "-m", "corpus.cli", "-q"]
    docs, tokdir, shards = REPO / "out/quickstart/01-length_filter", base / "tokenizer", base / "shards"
    if not (docs / "card.json").is_file():
        subprocess.run([*corpus, "run", str(REPO / "pipelines/quickstart.yaml")], check=True)
    if not (tokdir / "card.json").is_file():
        subprocess.run([*corpus, "tokenizer", "train", str(docs), "-o", str(tokdir), "--vocab-size", "4096", "--no-compare"], check=True)
    if not (shards / "card.json").is_file():
        subprocess.run([*corpus, "tokenize", str(docs), "-o", str(shards), "--tokenizer", str(tokdir), "--val-fraction", "0.05",
                        "--shard-size-mb", "1"], check=True)  # fmt: skip
    return shards, tokdir


class Clock:
    """Wall-clock seconds, or this process's CPU seconds: on a shared machine the CPU time of a
    one-thread run does not count the time other work held the cores, so it measures our overhead
    rather than the neighbours' load."""

    def __init__(self, kind: str):
        self.kind = kind
        self.read = time.process_time if kind == "cpu" else time.perf_counter

    def perf_counter(self) -> float:  # the loop reads the clock as time.perf_counter()
        return self.read()


def run_ours(shards: Path, tokdir: Path, out: Path, preset: str, warmup: int, steps: int, clock: Clock) -> float:
    import train.pretrain

    batch, seq_len = SHAPES[preset]
    shutil.rmtree(out, ignore_errors=True)
    train.pretrain.time = clock  # elapsed_s in the metrics is then measured with our clock
    config = PretrainConfig(data=str(shards), tokenizer=str(tokdir), output=str(out), preset=preset, seq_len=seq_len,
                            batch_size=batch, max_steps=warmup + steps, warmup_steps=2, eval_every=0, eval_windows=4,
                            save_every=0, log_every=1, tensorboard=False, quiet=True, verify=False)  # fmt: skip
    try:
        pretrain(config)
    finally:
        train.pretrain.time = time
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    elapsed = {r["step"]: r["elapsed_s"] for r in records if r["split"] == "train"}
    return steps * batch * seq_len / (elapsed[warmup + steps] - elapsed[warmup])


def run_plain(shards: Path, tokdir: Path, preset: str, warmup: int, steps: int, clock: Clock) -> float:
    from corpus.shard_format import load_tokenizer, vocab_extent

    batch, seq_len = SHAPES[preset]
    tokenizer, specials = load_tokenizer(tokdir)
    model = new_model(PRESETS[preset], vocab_extent(tokenizer), specials, seed=0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    loader = WindowLoader(shards, "train", seq_len, batch, seed=0)
    batches = [loader.next_batch() for _ in range(warmup + steps)]  # the same windows ours reads, read beforehand
    for i, b in enumerate(batches):
        if i == warmup:
            start = clock.read()
        logits = model(input_ids=b.input_ids).logits  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), b.labels.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    loss.item()
    return steps * batch * seq_len / (clock.read() - start)


def loader_windows_per_s(shards: Path, seq_len: int, batch: int, doc_mask: bool, clock: Clock, seconds: float = 2.0) -> float:
    loader = WindowLoader(shards, "train", seq_len, batch, seed=0, doc_mask=doc_mask)
    loader.next_batch()
    n, start = 0, clock.read()
    while clock.read() - start < seconds:
        loader.next_batch()
        n += batch
    return n / (clock.read() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=list(SHAPES))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: this process's CPU seconds (use with --threads 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = Clock(args.clock)
    base = REPO / "out/bench-pretrain"
    shards, tokdir = build_shards(base)
    results: dict[str, dict[str, list[float]]] = {p: {"ours": [], "plain": []} for p in args.presets}
    for round_ in range(args.rounds):
        for preset in args.presets:
            results[preset]["ours"].append(run_ours(shards, tokdir, base / f"run-{preset}", preset, args.warmup, args.steps, clock))
            results[preset]["plain"].append(run_plain(shards, tokdir, preset, args.warmup, args.steps, clock))
            print(f"round {round_ + 1} {preset}: ours {results[preset]['ours'][-1]:,.0f} tok/s, "
                  f"plain {results[preset]['plain'][-1]:,.0f} tok/s", file=sys.stderr, flush=True)  # fmt: skip

    from corpus.shard_format import load_tokenizer, vocab_extent

    vocab = vocab_extent(load_tokenizer(tokdir)[0])
    print(f"\nCPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock; vocab {vocab:,}; median of {args.rounds} rounds, {args.steps} timed steps each\n")  # fmt: skip
    print("| preset | params | batch x seq | ours tok/s | plain tok/s | ours / plain | loader windows/s | model windows/s | loader / model |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        batch, seq_len = SHAPES[preset]
        params, _ = count_parameters(new_model(PRESETS[preset], vocab, {}, seed=0))
        ours, plain = statistics.median(results[preset]["ours"]), statistics.median(results[preset]["plain"])
        loader = loader_windows_per_s(shards, seq_len, batch, doc_mask=False, clock=clock)
        loader_doc = loader_windows_per_s(shards, seq_len, batch, doc_mask=True, clock=clock)
        consumed = ours / seq_len
        record("pretrain", f"tokens/s, {preset} preset, {batch} x {seq_len}", ours, plain, "plain PyTorch loop", "tok/s",
               target=0.9, rounds=args.rounds)
        print(f"| {preset} | {params / 1e6:.1f}M | {batch} x {seq_len} | {ours:,.0f} | {plain:,.0f} | {ours / plain:.3f} "
              f"| {loader:,.0f} ({loader_doc:,.0f} with --doc-mask) | {consumed:,.1f} | {loader / consumed:,.0f}x "
              f"({loader_doc / consumed:,.0f}x) |")  # fmt: skip
    print("\nrounds (tok/s):")
    for preset in args.presets:
        print(f"- {preset}: ours {[round(x) for x in results[preset]['ours']]}, plain {[round(x) for x in results[preset]['plain']]}")


if __name__ == "__main__":
    main()
