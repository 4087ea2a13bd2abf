"""`train eval`: perplexity per domain on token shards, loss on an SFT test split, and a side-by-side
comparison of models on the same prompts (win rate, Elo, worst answers).

The default judge needs no model and no network: token-overlap F1 between an answer and the
reference answer (the SQuAD answer metric). Any other judge is a `module:attribute` whose object
has `score(prompt, reference, answer) -> float` (higher is better), or is such a function.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Protocol

from train.errors import TrainError
from train.loading import device, load_model, load_tokenizer, resolve_model, write_json

REPORT_JSON, PROMPTS_JSONL = "report.json", "prompts.jsonl"

ELO_START = 1000.0
ELO_K = 16.0
TIE_TOLERANCE = 1e-9


# ---------------------------------------------------------------- judges


class Judge(Protocol):
    name: str

    def score(self, prompt: str, reference: str, answer: str) -> float: ...


_WORD = re.compile(r"\w+", re.UNICODE)


class TokenOverlapJudge:
    """F1 of the lower-cased word multisets of answer and reference."""

    name = "token-overlap F1"

    def score(self, prompt: str, reference: str, answer: str) -> float:
        ref, ans = Counter(_WORD.findall(reference.lower())), Counter(_WORD.findall(answer.lower()))
        common = sum((ref & ans).values())
        if common == 0:
            return 0.0
        precision, recall = common / sum(ans.values()), common / sum(ref.values())
        return 2 * precision * recall / (precision + recall)


class _FunctionJudge:
    def __init__(self, fn: Callable[[str, str, str], float], name: str):
        self.fn, self.name = fn, name

    def score(self, prompt: str, reference: str, answer: str) -> float:
        return float(self.fn(prompt, reference, answer))


def load_judge(spec: str | None) -> Judge:
    if spec in (None, "overlap"):
        return TokenOverlapJudge()
    module_name, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise TrainError(f"--judge {spec}: cannot load ({e}); expected overlap or MODULE:ATTRIBUTE") from None
    if isinstance(obj, type):
        obj = obj()
    if hasattr(obj, "score"):
        return obj
    if callable(obj):
        return _FunctionJudge(obj, spec)
    raise TrainError(f"--judge {spec}: neither a judge (with .score) nor a function")


# ---------------------------------------------------------------- comparisons


def elo_ratings(players: list[str], matches: list[tuple[str, str, float]]) -> dict[str, float]:
    """Sequential Elo over (a, b, score of a: 1 win, 0.5 tie, 0 loss), in the given order."""
    rating = {p: ELO_START for p in players}
    for a, b, result in matches:
        expected_a = 1 / (1 + 10 ** ((rating[b] - rating[a]) / 400))
        rating[a] += ELO_K * (result - expected_a)
        rating[b] -= ELO_K * (result - expected_a)
    return {p: round(r, 1) for p, r in rating.items()}


OTHER_TOPIC = "other"


def topic_of(prompt: dict, topics: dict[str, list[str]]) -> str:
    """The first topic one of whose words (case-insensitive: a whole word, the word with up to three
    more letters, or a phrase) the prompt holds; else the first its reference holds; else `other`."""
    for text in (prompt["messages"][-1]["content"], prompt.get("reference") or ""):
        text = text.lower()
        words = set(_WORD.findall(text))
        for topic, keys in topics.items():
            for key in map(str.lower, keys):
                if (" " in key and key in text) or any(w.startswith(key) and len(w) - len(key) <= 3 for w in words):
                    return topic
    return OTHER_TOPIC


def _win_counts(results: list[float]) -> dict:
    wins, ties, losses = results.count(1.0), results.count(0.5), results.count(0.0)
    return {"a_wins": wins, "ties": ties, "b_wins": losses, "a_win_rate": round((wins + ties / 2) / len(results), 4)}


def compare(answers: dict[str, list[str]], prompts: list[dict], judge: Judge, worst: int = 10,
            topics: dict[str, list[str]] | None = None) -> dict:  # fmt: skip
    """Judge every model's answers against the references; pairwise results, Elo and the worst answers
    (per topic when `topics` are given: see `topic_of`)."""
    usable = [i for i, p in enumerate(prompts) if p["reference"]]
    if not usable:
        raise TrainError("the prompts have no reference answers to judge against")
    names = list(answers)
    scores = {m: {i: judge.score(prompts[i]["messages"][-1]["content"], prompts[i]["reference"], answers[m][i]) for i in usable}
              for m in names}  # fmt: skip
    def result(a: str, b: str, i: int) -> float:  # 1: a wins, 0.5: tie, 0: b wins
        diff = scores[a][i] - scores[b][i]
        return 1.0 if diff > TIE_TOLERANCE else 0.0 if diff < -TIE_TOLERANCE else 0.5

    pairs = list(combinations(names, 2))
    pairwise = [{"a": a, "b": b, **_win_counts([result(a, b, i) for i in usable])} for a, b in pairs]
    # Sequential Elo depends on match order: prompts in file order, every pair on a prompt together.
    matches = [(a, b, result(a, b, i)) for i in usable for a, b in pairs]
    elo = elo_ratings(names, matches)
    def worst_of(m: str, items: list[int]) -> list[dict]:
        ranked = sorted(items, key=lambda i: (scores[m][i], i))[:worst]
        return [{"prompt": prompts[i]["messages"][-1]["content"], "reference": prompts[i]["reference"],
                 "answer": answers[m][i], "score": round(scores[m][i], 4)} for i in ranked]  # fmt: skip

    worst_answers = {m: worst_of(m, usable) for m in names}
    by_topic = {}
    if topics:
        # the last model (the tuned one) against each other model, topic by topic
        groups: dict[str, list[int]] = {}
        for i in usable:
            groups.setdefault(topic_of(prompts[i], topics), []).append(i)
        tuned = names[-1]
        for topic in [*topics, OTHER_TOPIC]:
            items = groups.get(topic)
            if items:
                by_topic[topic] = {
                    "prompts": len(items),
                    "mean_score": {m: round(sum(scores[m][i] for i in items) / len(items), 4) for m in names},
                    "versus": {b: _win_counts([result(tuned, b, i) for i in items]) for b in names[:-1]},
                    "worst": worst_of(tuned, items),
                }
    return {
        "judge": judge.name,
        "prompts": len(usable),
        "mean_score": {m: round(sum(scores[m].values()) / len(usable), 4) for m in names},
        "pairwise": pairwise,
        "elo": dict(sorted(elo.items(), key=lambda kv: -kv[1])),
        "worst_answers": worst_answers,
        "by_topic": by_topic,
    }


# ---------------------------------------------------------------- perplexity on token shards


def read_shards(folder: Path, split: str) -> tuple[dict, dict[str, list]]:
    """The index and domain -> token arrays (one per document) of the split's shards."""
    import pyarrow as pa

    from corpus.shard_format import read_index

    index = read_index(folder)
    files = [s["file"] for s in index.get("shards", []) if s.get("split") == split]
    if not files:
        raise TrainError(f"{folder}: no {split} shards")
    by_domain: dict[str, list] = {}
    for name in files:
        with pa.memory_map(str(Path(folder) / name)) as source:
            table = pa.ipc.open_file(source).read_all()
        column = table.column("input_ids").combine_chunks()
        values, offsets = column.values.to_numpy(), column.offsets.to_numpy()  # the flat stream and its boundaries
        for row, domain in enumerate(table.column("domain").to_pylist()):
            by_domain.setdefault(domain or "unknown", []).append(values[offsets[row] : offsets[row + 1]])
    return index, by_domain


def check_tokenizer(index: dict, source) -> None:
    from corpus.shard_format import TOKENIZER_JSON, tokenizer_sha256

    expected = index.get("tokenizer", {}).get("sha256")
    folder = source.adapter or source.folder
    if source.gguf_file or not (folder / TOKENIZER_JSON).is_file():
        raise TrainError(f"{source.describe()}: has no tokenizer.json to check against the shards' tokenizer")
    if expected and tokenizer_sha256(folder) != expected:
        raise TrainError(f"{source.describe()}: its tokenizer is not the one the shards were made with "
                         f"({index['tokenizer'].get('path')}); perplexities would be meaningless")  # fmt: skip


def shard_perplexity(model, docs_by_domain: dict[str, list], seq_len: int, max_tokens: int, batch_size: int = 8) -> dict:
    """Per domain: documents joined into one stream (they end in EOS), cut into seq_len windows."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    model.eval()
    dev = next(model.parameters()).device
    out = {}
    for domain in sorted(docs_by_domain):
        stream = np.concatenate(docs_by_domain[domain])[:max_tokens].astype(np.int64)
        windows = len(stream) // seq_len
        if windows == 0:
            continue
        batch_all = torch.from_numpy(stream[: windows * seq_len].reshape(windows, seq_len))  # (W, T)
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, windows, batch_size):
                ids = batch_all[start : start + batch_size].to(dev)
                logits = model(input_ids=ids).logits[:, :-1].float()  # (B, T-1, V)
                total += F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="sum").item()
                count += ids[:, 1:].numel()
        mean = total / count
        out[domain] = {"tokens": count, "loss": round(mean, 4), "perplexity": round(math.exp(mean), 3)}
    return out


# ---------------------------------------------------------------- the command


def run_eval(models: list[str], output: str | None, shards: str | None = None, split: str = "val",
             sft_test: list[str] | None = None, prompts_file: str | None = None, judge_spec: str | None = None,
             seq_len: int = 512, max_tokens: int = 200_000, max_new_tokens: int = 128, worst: int = 10,
             log=print, eval_sources: list[str] | None = None, topics: dict[str, list[str]] | None = None,
             batch_size: int = 8, repetition_penalty: float = 1.0, prompts_limit: int | None = None, overwrite: bool = False,
             replace_stale: bool = False, fingerprint: str | None = None) -> dict:  # fmt: skip
    """`eval_sources`: the files the prompts and test rows come from (default: the files given),
    checked against each model's lineage: a warning when no decontamination covered them.
    `prompts_limit`: the first N prompts of the file. The report folder `output` is published as
    every output is (partial folder, then renamed): the same models, files and options again are up
    to date; `fingerprint` replaces the one computed from them (a pipeline's, from its stages)."""
    from train.formats import LoadReport, load_sft, write_jsonl
    from train.generate import Generator, load_prompts
    from train.sft import encode_all, masked_loss

    if not (shards or sft_test or prompts_file):
        raise TrainError("nothing to evaluate: give --shards, --sft-test and/or --prompts")
    if batch_size < 1:
        raise TrainError(f"--batch-size: must be at least 1, got {batch_size}")
    if repetition_penalty <= 0:
        raise TrainError(f"--repetition-penalty: must be positive, got {repetition_penalty}")
    if prompts_file and len(models) < 2:
        raise TrainError("--prompts compares models side by side: give at least two model folders")
    names = _unique_names(models)
    options = {"split": split, "judge": judge_spec, "seq_len": seq_len, "max_tokens": max_tokens, "max_new_tokens": max_new_tokens,
               "worst": worst, "topics": topics, "batch_size": batch_size, "repetition_penalty": repetition_penalty,
               "prompts_limit": prompts_limit}  # fmt: skip
    target = _report_folder(output, models, shards, sft_test, prompts_file, options, overwrite, replace_stale, fingerprint)
    if target is not None:
        if target.up_to_date():
            log(f"eval: {target.final} is up to date (same models, data and options); nothing to do")
            return json.loads((target.final / REPORT_JSON).read_text(encoding="utf-8"))
        target.check()  # before the models are loaded: an output that may not be replaced is refused now
    from train.lineage import undecontaminated

    sources = eval_sources if eval_sources is not None else [f for f in [prompts_file, *(sft_test or [])] if f]
    from train.base_model import is_base_model_folder

    for name, path in zip(names, models):
        if is_base_model_folder(Path(path)):  # made elsewhere: its lineage starts here
            if sources:
                log(f"eval: note: {name} is a model trained elsewhere; whether its training data held these items is unknown")
            continue
        for f in undecontaminated(path, sources):
            log(f"eval: warning: {name}: no `corpus decontaminate --against {f}` in the lineage of its training data; "
                "its scores on it may be inflated by items it trained on")  # fmt: skip
    judge = load_judge(judge_spec) if prompts_file else None
    prompts = load_prompts(prompts_file) if prompts_file else None
    if prompts is not None and prompts_limit is not None:
        prompts = prompts[:prompts_limit]
    sft_rows = load_sft(sft_test) if sft_test else None
    shard_docs = read_shards(Path(shards), split) if shards else None
    report: dict = {"models": dict(zip(names, models)), "perplexity": {}, "sft_test": {}}
    answers: dict[str, list[str]] = {}
    for name, path in zip(names, models):
        source = resolve_model(path)
        tokenizer = load_tokenizer(source)
        model = load_model(source).to(device()).eval()
        if shard_docs:
            index, docs = shard_docs
            check_tokenizer(index, source)
            report["perplexity"][name] = shard_perplexity(model, docs, seq_len, max_tokens)
            log(f"eval: {name}: perplexity " + ", ".join(f"{d} {v['perplexity']}" for d, v in report["perplexity"][name].items()))
        if sft_rows:
            dropped = LoadReport()  # examples with no assistant token within --seq-len
            report["sft_test"][name] = masked_loss(model, encode_all(tokenizer, sft_rows, seq_len, dropped))
            report["sft_test"][name]["skipped"] = sum(dropped.skipped.values())
            log(f"eval: {name}: SFT test loss {report['sft_test'][name]['loss']}")
        if prompts:
            generator = Generator(model, tokenizer, _stop_ids(tokenizer), max_new_tokens=max_new_tokens, repetition_penalty=repetition_penalty)
            answers[name] = generator.replies([p["messages"] for p in prompts], batch_size)
        del model
    if prompts:
        report["side_by_side"] = compare(answers, prompts, judge, worst, topics)
        report["decoding"] = {"max_new_tokens": max_new_tokens, "repetition_penalty": repetition_penalty}
        report["answers"] = answers
        log("eval: Elo " + ", ".join(f"{m} {r}" for m, r in report["side_by_side"]["elo"].items()))
    if target is not None:
        partial = target.start()
        try:
            if prompts:
                # the prompts asked, as `--prompts` reads them back (the reference as the assistant's reply)
                write_jsonl(partial / PROMPTS_JSONL, [{"messages": p["messages"] + ([{"role": "assistant", "content": p["reference"]}]
                                                                                   if p["reference"] is not None else [])} for p in prompts])
            write_json(partial / REPORT_JSON, {**report, "fingerprint": target.fingerprint})
            (partial / "report.md").write_text(render_report(report), encoding="utf-8")
        except BaseException:
            target.abandon()
            raise
        out = target.finish()
        log(f"eval: report -> {out / 'report.md'}")
    return report


def _report_folder(output, models, shards, sft_test, prompts_file, options: dict, overwrite: bool, replace_stale: bool,
                   fingerprint: str | None):  # fmt: skip
    """The report folder as an OutputFolder (None without `output`), fingerprinted by what the
    models, shards and files hold, the options and the trainer's version."""
    if not output:
        return None
    import train
    from corpus.outputs import OutputFolder, fingerprint_of, input_identity
    from train.loading import model_identity

    files = [f for f in [shards, prompts_file, *(sft_test or [])] if f]

    def computed() -> str:  # reads the models' files: only when a report is there to compare, or is written
        return fingerprint_of({"stage": "eval", "models": [model_identity(resolve_model(m)) for m in models], "options": options,
                               "files": [input_identity(f) for f in files], "version": train.__version__})  # fmt: skip

    return OutputFolder(output, overwrite, is_report_folder, inputs=[*models, *files], fingerprint=fingerprint or computed,
                        replace_stale=replace_stale, error=TrainError, marker=REPORT_JSON, noun="eval report")  # fmt: skip


def is_report_folder(path) -> bool:
    return (Path(path) / REPORT_JSON).is_file() and (Path(path) / "report.md").is_file()


def _stop_ids(tokenizer):
    from train.loading import end_of_turn_ids

    return end_of_turn_ids(tokenizer)


def _unique_names(models: list[str]) -> list[str]:
    names = []
    for path in models:
        base = Path(path).name or str(path)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def summary_lines(report: dict) -> list[str]:
    """The last model (the tuned one) against each other model: held-out perplexities and win rate."""
    names = list(report["models"])
    tuned, others = names[-1], names[:-1]
    lines = []
    for other in others:
        if report["sft_test"].get(other) and report["sft_test"].get(tuned):
            a, b = report["sft_test"][other]["perplexity"], report["sft_test"][tuned]["perplexity"]
            lines.append(f"- perplexity on the held-out answers: {other} {a} -> {tuned} {b} ({'lower' if b < a else 'NOT lower'})")
        for domain, value in report["perplexity"].get(tuned, {}).items():
            before = report["perplexity"].get(other, {}).get(domain)
            if before:
                lower = "lower" if value["perplexity"] < before["perplexity"] else "NOT lower"
                lines.append(f"- perplexity on held-out {domain} text: {other} {before['perplexity']} -> {tuned} {value['perplexity']} ({lower})")
        sbs = report.get("side_by_side")
        pair = next((p for p in sbs["pairwise"] if {p["a"], p["b"]} == {other, tuned}), None) if sbs else None
        if pair:
            wins, losses = (pair["a_wins"], pair["b_wins"]) if pair["a"] == tuned else (pair["b_wins"], pair["a_wins"])
            rate = pair["a_win_rate"] if pair["a"] == tuned else round(1 - pair["a_win_rate"], 4)
            lines.append(f"- {tuned} beats {other} on {wins} of {sbs['prompts']} held-out prompts, loses {losses}, "
                         f"ties {pair['ties']}: win rate {rate} (ties count half; judge: {sbs['judge']})")  # fmt: skip
    return ["\n## Summary\n", *lines] if lines else []


def render_report(report: dict) -> str:
    lines = ["# Evaluation\n", "| model | path |", "|---|---|"]
    lines += [f"| {n} | {p} |" for n, p in report["models"].items()]
    lines += summary_lines(report)
    if report["perplexity"]:
        lines.append("\n## Perplexity on token shards\n\n| model | domain | tokens | loss | perplexity |\n|---|---|---|---|---|")
        for m, domains in report["perplexity"].items():
            lines += [f"| {m} | {d} | {v['tokens']:,} | {v['loss']} | {v['perplexity']} |" for d, v in domains.items()]
    if report["sft_test"]:
        lines.append("\n## Loss on the SFT test split (assistant tokens)\n\n| model | examples | tokens | loss | perplexity |\n|---|---|---|---|---|")
        lines += [f"| {m} | {v['examples']} | {v['tokens']:,} | {v['loss']} | {v['perplexity']} |" for m, v in report["sft_test"].items()]
    sbs = report.get("side_by_side")
    if sbs:
        decoding = report.get("decoding")
        how = f"; greedy, repetition penalty {decoding['repetition_penalty']}" if decoding else ""
        lines.append(f"\n## Side by side ({sbs['prompts']} prompts, judge: {sbs['judge']}{how})\n")
        lines.append("| model | mean score | Elo |\n|---|---|---|")
        lines += [f"| {m} | {sbs['mean_score'][m]} | {r} |" for m, r in sbs["elo"].items()]
        lines.append("\n| A | B | A wins | ties | B wins | A win rate |\n|---|---|---|---|---|---|")
        lines += [f"| {p['a']} | {p['b']} | {p['a_wins']} | {p['ties']} | {p['b_wins']} | {p['a_win_rate']} |" for p in sbs["pairwise"]]
        if sbs.get("by_topic"):
            tuned = list(report["models"])[-1]
            lines.append(f"\n## Error analysis by topic ({tuned})\n")
            others = [m for m in report["models"] if m != tuned]
            lines.append("| topic | prompts | " + " | ".join(f"mean score {m}" for m in report["models"]) + " | "
                         + " | ".join(f"win rate vs {m}" for m in others) + " |")  # fmt: skip
            lines.append("|---" * (2 + len(report["models"]) + len(others)) + "|")
            for topic, t in sbs["by_topic"].items():
                lines.append(f"| {topic} | {t['prompts']} | " + " | ".join(str(t["mean_score"][m]) for m in report["models"]) + " | "
                             + " | ".join(str(t["versus"][m]["a_win_rate"]) for m in others) + " |")  # fmt: skip
            for topic, t in sbs["by_topic"].items():
                lines.append(f"\n### {topic}: the {len(t['worst'])} worst answers of {tuned}\n")
                lines += [_worst_item(it) for it in t["worst"]]
        lines.append("\n## Worst answers (for error analysis)\n")
        for m, items in sbs["worst_answers"].items():
            lines.append(f"### {m}\n")
            lines += [_worst_item(it) for it in items]
            lines.append("")
    return "\n".join(lines) + "\n"


def _worst_item(it: dict) -> str:
    answer = " ".join(it["answer"].split())[:200] or "(empty)"
    reference = " ".join(it["reference"].split())[:200]
    return f"- score {it['score']}: *{it['prompt']}*\n  - answer: {answer}\n  - reference: {reference}"
