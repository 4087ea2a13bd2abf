"""`train ablate`: equal-token training runs that compare datasets; the verdict goes into their cards.

    OUT/
      ablation.json          the configuration, its fingerprint, the tokenizer, steps and tokens per run
      tokenizer/             trained on the union of the arms (unless --tokenizer is given)
      data/ARM/rest/         the arm without the held-out documents (only with --holdout)
      data/ARM/seed-K/mix/   the arm drawn to the token budget by `corpus mix` (natural shares, seed K)
      data/ARM/seed-K/shards/  its token shards
      eval/NAME/shards/      each eval set, tokenized once (eval/heldout-ARM/split/ with --holdout)
      runs/ARM/seed-K/       a `train pretrain` run folder (metrics.jsonl, the final checkpoint) and
                             result.json (the run's loss on every eval set)
      report.json report.md plots/*.svg

Every arm gets the same tokens (the same number of steps of the same batch shape, none of them
past one pass over its draw), the same tokenizer, the same hyperparameters and the same seeds:
seed k gives every arm the same initial weights, the same window-order policy and draws its
budget with mix seed k, so the comparison of two arms is paired by seed and the spread across
seeds covers which documents were drawn as well as the initialisation. A comparison's verdict is "A better than B" only when
the mean paired difference of eval loss exceeds twice its standard deviation across seeds;
otherwise "no detectable difference".

Resumable: a finished run has its result.json and is not run again; an unfinished one continues
from its last checkpoint (`train pretrain`'s exact resume), so a killed ablation rerun gives the
report an uninterrupted one gives.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from itertools import combinations
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corpus.errors import CorpusError
from corpus.outputs import OutputLock, check_output, fingerprint_of, input_identity, refusal, remove_ours, stored_fingerprint
from corpus.progress import say
from train.errors import TrainError

ABLATION_JSON = "ablation.json"
RESULT_JSON = "result.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
NO_DIFFERENCE = "no detectable difference"


class AblateOptions(BaseModel):
    """What every run of an ablation shares; the arms and eval sets come from the CLI or the pipeline."""

    model_config = ConfigDict(extra="forbid")

    tokenizer: str | None = Field(None, description="a tokenizer folder; unset: one is trained on the union of the arms")
    vocab_size: int = Field(8000, ge=300, description="of the tokenizer trained when none is given")
    budget_tokens: int | None = Field(None, gt=0, description="tokens drawn per arm; unset: what the smallest arm gives at max_epochs")
    max_epochs: float = Field(1.0, ge=1, description="most copies of any document in an arm's draw")
    seeds: int = Field(3, description="runs per arm, seeds 0..K-1 (at least 2 for a verdict)")
    preset: Literal["tiny", "small", "125m", "1b"] = "tiny"
    seq_len: int = Field(256, gt=0)
    batch_size: int = Field(8, gt=0)
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: the preset's)")
    warmup_steps: int | None = Field(None, ge=0, description="default: a tenth of the steps, at most 100")
    eval_tokens: int = Field(200_000, ge=0, description="most tokens of each eval set a run is scored on (0: all)")
    holdout: float | None = Field(None, gt=0, lt=1, description="hold this share of documents (by id) out of every arm")
    holdout_from: str | None = Field(None, description="the arm whose held-out documents are an eval set (default: the last)")
    allow_overlap: bool = Field(False, description="run even when an eval set shares documents with an arm")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _seeds(self):
        if self.seeds < 2:
            raise ValueError(f"--seeds {self.seeds}: a verdict needs at least 2 seeds (one seed has no spread to compare a "
                             "difference with); use 3 or more")  # fmt: skip
        if self.holdout_from is not None and self.holdout is None:
            raise ValueError("--holdout-from needs --holdout")
        return self


class AblateConfig(AblateOptions):
    arms: dict[str, list[str]] = Field(description="arm name -> dataset folders")
    eval: list[str] = Field(default_factory=list, description="eval dataset folders (each tokenized once)")
    output: str

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(arms) < 2:
            raise ValueError("an ablation compares at least 2 arms (--arm NAME=DATASET... twice or more)")
        for name, paths in arms.items():
            if not name or any(c in name for c in "/\\ =,") or name.startswith("."):
                raise ValueError(f"arm name {name!r}: use letters, digits, '-' and '_'")
            if not paths:
                raise ValueError(f"arm {name}: no dataset folder")
        return arms

    @model_validator(mode="after")
    def _eval(self):
        if self.holdout_from is not None and self.holdout_from not in self.arms:
            raise ValueError(f"--holdout-from {self.holdout_from}: no such arm ({', '.join(self.arms)})")
        if not self.eval and self.holdout is None:
            raise ValueError("no eval set: give --eval DATASET... or --holdout FRACTION")
        return self


# ---------------------------------------------------------------- verdicts


def verdict(a: str, b: str, diffs: list[float]) -> str:
    """diffs: loss(a) - loss(b) per seed. "A better than B" only beyond twice the seeds' spread."""
    if len(diffs) < 2:
        return "no verdict (fewer than 2 seeds)"
    mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
    if mean != 0 and abs(mean) > 2 * std:
        return f"{a} better than {b}" if mean < 0 else f"{b} better than {a}"
    return NO_DIFFERENCE


def summarise(results: dict[str, dict[int, dict]], evals: list[str]) -> tuple[dict, list[dict]]:
    """From the per-run records: per arm and eval set the mean, spread and per-seed numbers; and the
    paired comparison of every two arms on every eval set. Only what the records hold is used, so the
    report recomputes from them."""
    arms: dict[str, dict] = {}
    for arm, by_seed in results.items():
        seeds = sorted(by_seed)
        entry = {}
        for name in evals:
            per_seed = [{"seed": s, **by_seed[s]["eval"][name]} for s in seeds]
            losses = [r["loss"] for r in per_seed]
            entry[name] = {
                "loss_mean": statistics.fmean(losses),
                "loss_std": statistics.stdev(losses) if len(losses) > 1 else 0.0,
                "ppl_mean": statistics.fmean(r["ppl"] for r in per_seed),
                "per_seed": per_seed,
            }
        arms[arm] = {"eval": entry}
    comparisons = []
    for a, b in combinations(list(results), 2):
        seeds = sorted(set(results[a]) & set(results[b]))
        for name in evals:
            diffs = [results[a][s]["eval"][name]["loss"] - results[b][s]["eval"][name]["loss"] for s in seeds]
            comparisons.append({
                "a": a, "b": b, "eval": name, "seeds": seeds, "per_seed": diffs,
                "diff_mean": statistics.fmean(diffs) if diffs else None,
                "diff_std": statistics.stdev(diffs) if len(diffs) > 1 else None,
                "verdict": verdict(a, b, diffs),
            })  # fmt: skip
    return arms, comparisons


# ---------------------------------------------------------------- preparing the data


def _card(folder: Path) -> dict:
    from corpus.document import CARD_JSON

    try:
        return json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _check_dataset(path: str, what: str) -> Path:
    from corpus.document import is_dataset
    from corpus.tokenize.shards import is_shards_folder

    folder = Path(path)
    if not folder.exists():
        raise TrainError(f"{folder}: no such dataset folder ({what})")
    if is_shards_folder(folder):
        raise TrainError(f"{folder}: token shards, not a dataset folder ({what}); pass the dataset folder they were made from")
    if not is_dataset(folder):
        raise TrainError(f"{folder}: not a dataset folder ({what}; no card.json and data/)")
    return folder


def _counted_with(folder: Path) -> str | None:
    """The tokenizer a dataset's token counts were made with, if its card records one."""
    config = _card(folder).get("config") or {}
    return config.get("tokenizer_sha256")


def check_tokenizers(arms: dict[str, list[Path]], tokenizer: str | None) -> None:
    """Arms whose token counts come from different tokenizers cannot be given equal token budgets."""
    from corpus.shard_format import tokenizer_sha256

    given = tokenizer_sha256(Path(tokenizer)) if tokenizer else None
    seen: dict[str, tuple[str, Path]] = {}
    for arm, folders in arms.items():
        for folder in folders:
            sha = _counted_with(folder)
            if sha is None:
                continue
            if given is not None and sha != given:
                raise TrainError(f"{folder}: arm {arm} was counted with another tokenizer (sha256 {sha[:12]}) than "
                                  f"--tokenizer {tokenizer} ({given[:12]}); every arm must use the same tokenizer")  # fmt: skip
            for other, (other_sha, other_folder) in seen.items():
                if other_sha != sha and other != arm:
                    raise TrainError(f"arms {other} and {arm} were counted with different tokenizers ({other_folder}: "
                                      f"{other_sha[:12]}, {folder}: {sha[:12]}); pass --tokenizer to count both with one")  # fmt: skip
            seen.setdefault(arm, (sha, folder))


def _ids(folders: list[Path]) -> set[str]:
    import polars as pl

    from corpus.document import data_files

    files = [str(f) for folder in folders for f in data_files(folder)]
    if not files:
        return set()
    return set(pl.scan_parquet(files).select("id").collect()["id"].to_list())


def check_overlap(arms: dict[str, list[Path]], evals: dict[str, Path], allow: bool) -> dict:
    """Documents an eval set shares with an arm (same id: the same normalised text)."""
    overlap = {}
    arm_ids = {arm: _ids(folders) for arm, folders in arms.items()}
    for name, folder in evals.items():
        eval_ids = _ids([folder])
        for arm, ids in arm_ids.items():
            shared = eval_ids & ids
            if shared:
                overlap[f"{name}/{arm}"] = len(shared)
                if not allow:
                    raise TrainError(f"{folder}: eval set {name} shares {len(shared):,} of its {len(eval_ids):,} documents with "
                                      f"arm {arm} (ids {', '.join(sorted(shared)[:3])}); hold them out (--holdout) or pass "
                                      "--allow-overlap")  # fmt: skip
    return overlap


def _stage(job, out: Path) -> Path:
    from corpus.execution import run_stage
    from corpus.executors import ExecutorConfig

    run_stage(job, out, ExecutorConfig(tasks=1), replace_stale=True)
    return out


class Prepared(BaseModel):
    """What the runs need: the tokenizer, the arms' shards, the eval sets' shards, and the sizes."""

    tokenizer: str
    tokenizer_sha256: str
    tokenizer_trained: bool
    arm_shards: dict[str, list[str]]  # per arm, per seed
    arm_data: dict[str, dict]
    eval_shards: dict[str, str]
    overlap: dict


def prepare(config: AblateConfig, out: Path) -> Prepared:
    from corpus.execution import run_stage
    from corpus.executors import ExecutorConfig
    from corpus.mix.counts import read_document_table
    from corpus.mix.stage import MixConfig, mix_job
    from corpus.shard_format import tokenizer_sha256
    from corpus.split import SplitConfig, split_job
    from corpus.tokenize.shards import TokenizeConfig, is_shards_folder, tokenize_dataset
    from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, is_tokenizer_folder, train_tokenizer

    given = {arm: [_check_dataset(p, f"arm {arm}") for p in paths] for arm, paths in config.arms.items()}
    evals_given = {}
    for path in config.eval:
        folder = _check_dataset(path, "eval set")
        if folder.name in evals_given:
            raise TrainError(f"{folder}: two eval sets are named {folder.name}; an eval set is named after its folder")
        evals_given[folder.name] = folder
    check_tokenizers(given, config.tokenizer)

    arms: dict[str, list[Path]] = {}
    evals: dict[str, Path] = dict(evals_given)
    for arm, folders in given.items():
        if config.holdout is None:
            arms[arm] = folders
            continue
        rest = SplitConfig(fraction=config.holdout, part="rest")
        arms[arm] = [_stage(split_job([str(f) for f in folders], f"ablation/{arm}/rest", rest, progress=False), out / "data" / arm / "rest")]
    if config.holdout is not None:
        source = config.holdout_from or list(config.arms)[-1]
        held = SplitConfig(fraction=config.holdout, part="held_out")
        name = f"heldout-{source}"
        evals[name] = _stage(split_job([str(f) for f in given[source]], f"ablation/{name}", held, progress=False),
                             out / "eval" / name / "split")  # fmt: skip
    overlap = check_overlap(arms, evals, config.allow_overlap)

    tokdir = Path(config.tokenizer) if config.tokenizer else out / "tokenizer"
    if config.tokenizer is None:
        union = [str(f) for folders in arms.values() for f in folders]
        tok_config = TokenizerTrainConfig(vocab_size=config.vocab_size, compare=False)
        fp = fingerprint_of({"tokenizer": tok_config.model_dump(), "inputs": [input_identity(p) for p in union]})
        if not (is_tokenizer_folder(tokdir) and _card(tokdir).get("fingerprint") == fp):
            train_tokenizer(union, tokdir, tok_config, overwrite=True, name="ablation/tokenizer", fingerprint=fp)
    elif not (tokdir / "tokenizer.json").is_file():
        raise TrainError(f"--tokenizer {tokdir}: not a tokenizer folder (no tokenizer.json)")

    # the budget: what the smallest arm gives at max_epochs, unless given (then the mix checks each arm)
    budget = config.budget_tokens
    if budget is None:
        sizes = {arm: int(read_document_table([str(f) for f in folders], str(tokdir), None, "domain", 0).n_tokens.sum())
                 for arm, folders in arms.items()}  # fmt: skip
        budget = int(min(sizes.values()) * config.max_epochs)

    def shards(source: Path, target: Path, name: str) -> Path:
        tcfg = TokenizeConfig(tokenizer=str(tokdir), val_fraction=0.0, min_val_docs_per_domain=0, shard_size_mb=64)
        fp = fingerprint_of({"tokenize": tcfg.model_dump(), "tokenizer": tokenizer_sha256(tokdir), "input": input_identity(source)})
        if not (is_shards_folder(target) and _card(target).get("fingerprint") == fp):
            tokenize_dataset([str(source)], target, tcfg, overwrite=True, name=name, fingerprint=fp)
        return target

    arm_shards: dict[str, list[str]] = {}
    arm_data: dict[str, dict] = {}
    for arm, folders in arms.items():
        draws = []
        for seed in range(config.seeds):  # seed k draws with mix seed k: the spread covers the draw too
            mix_cfg = MixConfig(budget_tokens=budget, max_epochs=config.max_epochs, tokenizer=str(tokdir), seed=seed)
            mix_out = out / "data" / arm / f"seed-{seed}" / "mix"
            try:
                job = mix_job([str(f) for f in folders], f"ablation/{arm}/seed-{seed}/mix", mix_cfg, mix_out,
                              ExecutorConfig(tasks=1), replace_stale=True, progress=False)  # fmt: skip
            except CorpusError as e:  # the arm cannot give the budget at max_epochs
                raise TrainError(f"arm {arm}: {e}") from None
            card = run_stage(job, mix_out, ExecutorConfig(tasks=1), replace_stale=True)
            shard_dir = shards(mix_out, out / "data" / arm / f"seed-{seed}" / "shards", f"ablation/{arm}/seed-{seed}/shards")
            draws.append((str(shard_dir), card))
        facts = draws[0][1]["stage_facts"]
        arm_shards[arm] = [d for d, _ in draws]
        arm_data[arm] = {
            "datasets": [str(f.resolve()) for f in given[arm]],
            "tokens_available": sum(g.get("natural_tokens", 0) for g in facts.get("mix_by_domain", {}).values()),
            "mix_tokens": [int(c["stats"].get("tokens") or 0) for _, c in draws],
            "mix_docs": [c["stats"]["docs"] for _, c in draws],
            "repeated_copies": [c["stage_facts"].get("mix", {}).get("repeated_copies", 0) for _, c in draws],
        }
    eval_shards = {name: str(shards(folder, out / "eval" / name / "shards", f"ablation/eval/{name}")) for name, folder in evals.items()}
    return Prepared(tokenizer=str(tokdir), tokenizer_sha256=tokenizer_sha256(tokdir), tokenizer_trained=config.tokenizer is None,
                    arm_shards=arm_shards, arm_data=arm_data, eval_shards=eval_shards, overlap=overlap)  # fmt: skip


# ---------------------------------------------------------------- the runs


def plan_steps(config: AblateConfig, prepared: Prepared) -> tuple[int, dict[str, list[int]]]:
    """Steps per run: every arm trains on the same number of windows, none past one pass over its draw."""
    from train.data import WindowLoader

    windows = {arm: [WindowLoader(path, "train", config.seq_len, config.batch_size).num_windows for path in paths]
               for arm, paths in prepared.arm_shards.items()}  # fmt: skip
    steps = min(min(w) for w in windows.values()) // config.batch_size
    if steps < 1:
        small = min(windows, key=lambda a: min(windows[a]))
        raise TrainError(f"arm {small}: {min(windows[small])} windows of {config.seq_len + 1} tokens, fewer than one batch of "
                          f"{config.batch_size}; raise --budget-tokens or lower --seq-len / --batch-size")  # fmt: skip
    return steps, windows


def _train_curve(run: Path) -> list[tuple[int, float]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["step"], r["loss"]) for r in rows if r.get("split") == "train"]


def run_one(config: AblateConfig, prepared: Prepared, arm: str, seed: int, steps: int, run: Path) -> dict:
    """Train one arm with one seed (resuming a killed run), then score it on every eval set."""
    import torch

    from train.data import WindowLoader
    from train.model import load_pretrained
    from train.pretrain import Dist, PretrainConfig, evaluate, find_checkpoints, pretrain

    warmup = config.warmup_steps if config.warmup_steps is not None else min(100, steps // 10)
    existing = find_checkpoints(run)
    started = time.perf_counter()
    if not (existing and int(existing[-1].name.split("-")[1]) >= steps):
        pretrain(PretrainConfig(
            data=prepared.arm_shards[arm][seed], tokenizer=prepared.tokenizer, output=str(run), preset=config.preset,
            resume="auto", seq_len=config.seq_len, batch_size=config.batch_size, lr=config.lr, warmup_steps=warmup,
            max_steps=steps, eval_every=0, save_every=max(1, steps // 4), keep_last=1, log_every=max(1, min(10, steps // 50)),
            seed=seed, device=config.device, tensorboard=False, verify=False, validation=False, quiet=True,
        ))  # fmt: skip
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    final = find_checkpoints(run)[-1]
    dist = Dist(config.device)
    model = load_pretrained(final).to(dist.device)
    use_bf16 = dist.device.type == "cuda"

    def autocast():
        import contextlib

        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    scores = {}
    for name, path in prepared.eval_shards.items():
        loader = WindowLoader(path, "train", config.seq_len, config.batch_size, shuffle=False)
        windows = config.eval_tokens // config.seq_len if config.eval_tokens else 0
        result = evaluate(model, loader, windows, dist, autocast)
        scores[name] = {"loss": result["loss"], "ppl": result["ppl"], "tokens": result["tokens"], "by_domain": result["by_domain"]}
    curve = _train_curve(run)
    return {
        "arm": arm, "seed": seed, "run": str(run), "steps": steps,
        "tokens": steps * config.batch_size * config.seq_len,
        "final_train_loss": curve[-1][1] if curve else None,
        "device": dist.device.type + (" bf16" if use_bf16 else " fp32"),
        "train_seconds": round(train_seconds, 3), "eval_seconds": round(time.perf_counter() - started, 3),
        "eval": scores,
    }  # fmt: skip


# ---------------------------------------------------------------- the whole ablation


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _identity(config: AblateConfig) -> dict:
    """What decides the ablation's outcome: its options and the identity of every input dataset."""
    inputs = {p: input_identity(p) for paths in config.arms.values() for p in paths}
    inputs.update({p: input_identity(p) for p in config.eval})
    options = config.model_dump(exclude={"output", "device"})
    return {"options": options, "inputs": inputs}


def run_ablation(config: AblateConfig, overwrite: bool = False, stop_after_runs: int | None = None,
                 replace_stale: bool = False) -> dict | None:  # fmt: skip
    """Run (or resume) the ablation into config.output and return the report. `stop_after_runs`
    ends the call after that many new runs (tests use it to stand for a kill), returning None.
    `replace_stale`: an ablation of other arms or options in the folder is replaced (a pipeline's own).
    One writer at a time: a second run on the same folder stops with the first one's PID."""
    out = check_output(config.output, [path for paths in config.arms.values() for path in paths] + list(config.eval))
    with OutputLock(out):
        return _run_ablation(config, out, overwrite, stop_after_runs, replace_stale)


def _run_ablation(config: AblateConfig, out: Path, overwrite: bool, stop_after_runs: int | None,
                  replace_stale: bool) -> dict | None:  # fmt: skip
    identity = _identity(config)
    fp = fingerprint_of(identity)
    if out.exists() and any(out.iterdir()):
        if not (out / ABLATION_JSON).is_file():
            raise TrainError(f"{out}: exists and is not an ablation folder (no {ABLATION_JSON}); choose another -o")
        recorded = stored_fingerprint(out, ABLATION_JSON)
        if recorded != fp and not (overwrite or replace_stale):
            raise TrainError(refusal(out, out, True, True))  # an ablation of other arms, eval sets or options
        if overwrite or recorded != fp:
            remove_ours(out)  # an ablation folder (it has ablation.json): ours to replace
        elif (out / REPORT_JSON).is_file():
            say(f"ablate: {out} is up to date (same arms, eval sets and options); nothing to do")
            report = json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))
            record_evidence(out, report)  # the same entries again: a card written since gets them back
            return report
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _write_json(out / ABLATION_JSON, {"fingerprint": fp, **identity, "state": "preparing"})
    prepared = prepare(config, out)
    steps, windows = plan_steps(config, prepared)
    prepare_seconds = time.perf_counter() - started
    plan = {"fingerprint": fp, **identity, "state": "running", "steps": steps, "tokens_per_run": steps * config.batch_size * config.seq_len,
            "train_windows": windows, **prepared.model_dump()}  # fmt: skip
    _write_json(out / ABLATION_JSON, plan)
    say(f"ablate: {len(config.arms)} arms x {config.seeds} seeds, {steps} steps of {config.batch_size} x {config.seq_len} tokens "
        f"({plan['tokens_per_run']:,} tokens) per run; eval sets: {', '.join(prepared.eval_shards)}")  # fmt: skip

    results: dict[str, dict[int, dict]] = {arm: {} for arm in config.arms}
    new_runs = 0
    for seed in range(config.seeds):  # seed-major: a stopped ablation already has paired runs
        for arm in config.arms:
            run = out / "runs" / arm / f"seed-{seed}"
            record_path = run / RESULT_JSON
            if record_path.is_file():
                results[arm][seed] = json.loads(record_path.read_text(encoding="utf-8"))
                continue
            if stop_after_runs is not None and new_runs >= stop_after_runs:
                return None
            say(f"ablate: arm {arm}, seed {seed}")
            record = run_one(config, prepared, arm, seed, steps, run)
            _write_json(record_path, record)
            results[arm][seed] = record
            new_runs += 1
            losses = ", ".join(f"{n} {v['loss']:.4f}" for n, v in record["eval"].items())
            say(f"ablate: arm {arm}, seed {seed}: eval loss {losses} ({record['train_seconds']:.0f} s training)")
    report = build_report(config, plan, results, prepare_seconds, time.perf_counter() - started)
    write_report(out, report, results)
    record_evidence(out, report)
    return report


def record_evidence(out: Path, report: dict) -> None:
    """Each arm's datasets get an entry in their card's Evidence section: against what, on which
    eval sets, at what scale, and the verdict."""
    import datetime as dt

    from corpus.cards.evidence import add_evidence

    cfg = report["config"]
    for arm, entry in report["arms"].items():
        verdicts = []
        for c in report["comparisons"]:
            if arm not in (c["a"], c["b"]):
                continue
            sign = 1 if c["a"] == arm else -1
            verdicts.append({"against": c["b"] if sign == 1 else c["a"], "eval": c["eval"], "verdict": c["verdict"],
                             "loss_diff_mean": None if c["diff_mean"] is None else sign * c["diff_mean"],
                             "loss_diff_std": c["diff_std"]})  # fmt: skip
        record = {
            "ablation": str(out.resolve()), "report": str((out / REPORT_MD).resolve()), "arm": arm,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "arms": {a: e["data"]["datasets"] for a, e in report["arms"].items()}, "eval_sets": list(cfg["eval_sets"]),
            "preset": cfg["preset"], "seeds": cfg["seeds"], "tokens_per_run": cfg["tokens_per_run"], "verdicts": verdicts,
        }  # fmt: skip
        for folder in entry["data"]["datasets"]:
            add_evidence(Path(folder), record)


def build_report(config: AblateConfig, plan: dict, results: dict[str, dict[int, dict]], prepare_seconds: float,
                 total_seconds: float) -> dict:  # fmt: skip
    evals = list(plan["eval_shards"])
    arms, comparisons = summarise(results, evals)
    for arm in arms:
        arms[arm]["runs"] = [{k: v for k, v in results[arm][s].items() if k != "eval"} for s in sorted(results[arm])]
        arms[arm]["data"] = {**plan["arm_data"][arm], "train_windows": plan["train_windows"][arm]}
    train_s = sum(r["train_seconds"] for a in results.values() for r in a.values())
    eval_s = sum(r["eval_seconds"] for a in results.values() for r in a.values())
    return {
        "arms": arms,
        "comparisons": comparisons,
        "config": {
            **config.model_dump(), "steps": plan["steps"], "tokens_per_run": plan["tokens_per_run"],
            "tokenizer_sha256": plan["tokenizer_sha256"], "tokenizer_trained": plan["tokenizer_trained"],
            "tokenizer_path": plan["tokenizer"], "eval_sets": plan["eval_shards"], "overlap": plan["overlap"],
            "fingerprint": plan["fingerprint"],
        },
        "timing": {"prepare_seconds": round(prepare_seconds, 2), "train_seconds": round(train_s, 2), "eval_seconds": round(eval_s, 2),
                   "total_seconds_this_call": round(total_seconds, 2)},
    }  # fmt: skip


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def write_report(out: Path, report: dict, results: dict[str, dict[int, dict]]) -> None:
    from corpus.cards.plots import intervals, lines

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    curves = {}
    for arm, by_seed in results.items():
        per_seed = [dict(_train_curve(Path(r["run"]))) for r in by_seed.values()]
        steps = sorted(set.intersection(*(set(c) for c in per_seed))) if per_seed else []
        curves[arm] = (steps, [statistics.fmean(c[s] for c in per_seed) for s in steps])
    (plots / "train_loss.svg").write_bytes(lines("Training loss (mean over seeds)", curves, "step", "loss"))
    evals = list(report["config"]["eval_sets"])
    series = {arm: [report["arms"][arm]["eval"][e]["loss_mean"] for e in evals] for arm in report["arms"]}
    errors = {arm: [report["arms"][arm]["eval"][e]["loss_std"] for e in evals] for arm in report["arms"]}
    (plots / "eval_loss.svg").write_bytes(intervals("Eval loss per arm (mean, +-1 std over seeds)", evals, series, errors, "loss"))
    _write_json(out / REPORT_JSON, report)
    (out / REPORT_MD).write_text(render_report(report), encoding="utf-8")


def render_report(report: dict) -> str:
    cfg = report["config"]
    parts = [
        "# Ablation report\n",
        f"{len(report['arms'])} arms, {cfg['seeds']} seeds each, preset `{cfg['preset']}`: {cfg['steps']:,} steps of "
        f"{cfg['batch_size']} x {cfg['seq_len']} tokens = {cfg['tokens_per_run']:,} training tokens per run, the same "
        f"tokenizer (`{cfg['tokenizer_sha256'][:12]}`, {'trained on the union of the arms' if cfg['tokenizer_trained'] else cfg['tokenizer_path']}) "
        "and the same seeds for every arm.\n",
        "## Verdicts\n",
        "A verdict says one arm is better only when the mean paired difference of eval loss exceeds twice its "
        "standard deviation across seeds.\n",
        "| A | B | eval set | loss A - B (mean) | std | per seed | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report["comparisons"]:
        parts.append(f"| {c['a']} | {c['b']} | {c['eval']} | {_fmt(c['diff_mean'])} | {_fmt(c['diff_std'])} | "
                     f"{', '.join(_fmt(d) for d in c['per_seed'])} | **{c['verdict']}** |")  # fmt: skip
    parts += ["", "## Eval loss per arm\n", "| arm | eval set | loss mean | std | perplexity (mean) | per seed |", "|---|---|---|---|---|---|"]
    for arm, entry in report["arms"].items():
        for name, e in entry["eval"].items():
            parts.append(f"| {arm} | {name} | {_fmt(e['loss_mean'])} | {_fmt(e['loss_std'])} | {_fmt(e['ppl_mean'], 2)} | "
                         f"{', '.join(_fmt(r['loss']) for r in e['per_seed'])} |")  # fmt: skip
    domains = sorted({d for entry in report["arms"].values() for e in entry["eval"].values() for r in e["per_seed"] for d in r["by_domain"]})
    if len(domains) > 1:
        parts += ["", "Per domain (loss, mean over seeds):\n", "| arm | eval set | " + " | ".join(domains) + " |", "|---|---|" + "---|" * len(domains)]
        for arm, entry in report["arms"].items():
            for name, e in entry["eval"].items():
                cells = []
                for d in domains:
                    vals = [r["by_domain"][d]["loss"] for r in e["per_seed"] if d in r["by_domain"]]
                    cells.append(_fmt(statistics.fmean(vals)) if vals else "-")
                parts.append(f"| {arm} | {name} | " + " | ".join(cells) + " |")
    parts += ["", "![eval loss](plots/eval_loss.svg)\n", "![training loss](plots/train_loss.svg)\n", "## Data per arm\n",
              "Seed k draws each arm's budget with mix seed k, so the spread across seeds covers which documents "
              "were drawn as well as the initial weights. Per seed:\n",
              "| arm | datasets | tokens available | drawn (tokens) | documents drawn | repeated copies | train windows |", "|---|---|---|---|---|---|---|"]  # fmt: skip

    def per_seed(values: list[int]) -> str:
        return ", ".join(f"{v:,}" for v in values)

    for arm, entry in report["arms"].items():
        d = entry["data"]
        parts.append(f"| {arm} | {', '.join(f'`{p}`' for p in d['datasets'])} | {d['tokens_available']:,} | {per_seed(d['mix_tokens'])} | "
                     f"{per_seed(d['mix_docs'])} | {per_seed(d['repeated_copies'])} | {per_seed(d['train_windows'])} |")  # fmt: skip
    t = report["timing"]
    parts += ["", f"Time in this call: {t['total_seconds_this_call']:.0f} s (preparing the data {t['prepare_seconds']:.0f} s; "
              f"all runs' training {t['train_seconds']:.0f} s and evaluation {t['eval_seconds']:.0f} s, over every call).\n"]  # fmt: skip
    if cfg.get("overlap"):
        parts.append(f"Eval sets sharing documents with arms (allowed with --allow-overlap): {cfg['overlap']}.\n")
    return "\n".join(parts)
