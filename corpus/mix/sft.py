"""Mixing instruction (SFT) sets by ratio: JSON/JSONL files in, one JSONL file out, rows unchanged.

    corpus mix qa=insurance_qa.jsonl general=alpaca_en_demo.json --budget-docs 2000 \\
        --weights qa=0.3,general=0.7 -o sft_mix.jsonl

Each input file is one group, named by `NAME=` or by the file's stem; `--weights` name the groups.
Rows are alpaca (`instruction`/`output`), sharegpt (`conversations`) or messages (`messages`)
objects, in a JSON array (.json) or one per line (.jsonl); every row is written back as it was read
(same keys and values), so one output may hold rows of several formats. The same planner as for
dataset folders chooses the rows; with a token budget a row's tokens are those of all its strings.
The output lines are in a seeded random order; `OUT.card.json` beside it holds the targets, the
achieved shares and the repeats. SFT sets are small: the rows are read into memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from pydantic import model_validator

from corpus.errors import CorpusError
from corpus.mix.plan import MixTargets, allocate, group_capacity, plan_copies, target_shares
from corpus.outputs import card_header, fingerprint_of, input_identity, refusal, stored_fingerprint
from corpus.progress import say
from corpus.shard_format import load_tokenizer, mix_seed, tokenizer_sha256

SFT_FORMATS = ("alpaca", "sharegpt", "messages")


class SftMixConfig(MixTargets):
    @model_validator(mode="after")
    def _tokenizer_for_tokens(self):
        if self.budget_tokens is not None and self.tokenizer is None:
            raise ValueError("--budget-tokens needs --tokenizer TOKDIR (the target tokenizer) to count tokens")
        return self


def row_format(row) -> str | None:
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("messages"), list):
        return "messages"
    if isinstance(row.get("conversations"), list):
        return "sharegpt"
    if isinstance(row.get("instruction"), str) and isinstance(row.get("output"), (str, list)):
        return "alpaca"
    return None


def row_text(value) -> str:
    """Every string in a row, joined: what its tokens are counted on."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(row_text(v) for v in value.values() if v is not None)
    if isinstance(value, list):
        return "\n".join(row_text(v) for v in value if v is not None)
    return ""


def read_sft_file(path: Path) -> list[dict]:
    """The rows of a JSON array or JSONL file; a clear error names the first bad row."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorpusError(f"{path}: cannot read as UTF-8 text ({e})") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(raw)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
        if not isinstance(rows, list):
            raise CorpusError(f"{path}: a .json SFT file is an array of rows")
        where = [f"row {i + 1}" for i in range(len(rows))]
    else:
        rows, where = [], []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}: line {number}: not valid JSON ({e.msg})") from None
            where.append(f"line {number}")
    for row, place in zip(rows, where):
        if row_format(row) is None:
            keys = ", ".join(list(row)[:6]) if isinstance(row, dict) else type(row).__name__
            raise CorpusError(f"{path}: {place}: not an alpaca, sharegpt or messages row (has: {keys})")
    if not rows:
        raise CorpusError(f"{path}: no rows")
    return rows


def parse_inputs(inputs: list[str]) -> list[tuple[str, Path]]:
    sets, seen = [], set()
    for item in inputs:
        name, sep, path = item.rpartition("=")
        name = name if sep else Path(path).stem
        if name in seen:
            raise CorpusError(f"two SFT inputs are named {name!r}; name them with NAME=FILE")
        seen.add(name)
        sets.append((name, Path(path)))
    return sets


def mix_sft(inputs: list[str], output: str | Path, config: SftMixConfig, overwrite: bool = False,
            command: list[str] | None = None) -> dict:  # fmt: skip
    out = Path(output)
    card_path = out.with_name(out.name + ".card.json")
    if out.suffix != ".jsonl":
        raise CorpusError(f"{out}: the output of an SFT mix is a .jsonl file")
    sets = parse_inputs(inputs)
    settings = {**config.model_dump(), "tokenizer": input_identity(config.tokenizer) if config.tokenizer else None}
    fingerprint = fingerprint_of({"stage": "mix_sft", "config": settings, "inputs": [[n, input_identity(p)] for n, p in sets]})
    if out.exists():
        stored = stored_fingerprint(card_path.parent, card_path.name)
        if stored == fingerprint and not overwrite:
            say(f"mix: {out} is up to date (same inputs and config); nothing to do")
            return json.loads(card_path.read_text(encoding="utf-8"))
        if not overwrite:
            raise CorpusError(refusal(out, out, True, stored is not None, hint="pass --overwrite to replace it"))
    names = [name for name, _ in sets]
    rows, group, formats = [], [], {}
    for g, (name, path) in enumerate(sets):
        own = read_sft_file(path)
        rows += own
        group.append(np.full(len(own), g, np.int32))
        formats[name] = {f: sum(row_format(r) == f for r in own) for f in SFT_FORMATS}
    group = np.concatenate(group)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    hashes = np.fromiter((int.from_bytes(hashlib.blake2b(json.dumps(r, sort_keys=True, ensure_ascii=False).encode(),
                          digest_size=8).digest(), "little") for r in rows), np.uint64, len(rows))  # fmt: skip
    n_tokens, token_facts = None, {"method": "none (row budget without a tokenizer)"}
    if config.tokenizer:
        tokenizer, _ = load_tokenizer(config.tokenizer)
        encodings = tokenizer.encode_batch_fast([row_text(r) for r in rows], add_special_tokens=False)
        n_tokens = np.fromiter(map(len, encodings), np.int64, len(encodings))
        token_facts = {"method": "exact", "counted_on": "all strings of a row, joined by newlines; no chat template",
                       "tokenizer": str(Path(config.tokenizer).resolve()), "tokenizer_sha256": tokenizer_sha256(Path(config.tokenizer))}  # fmt: skip
    by_tokens = config.budget_tokens is not None
    sizes = n_tokens if by_tokens else np.ones(len(rows), np.int64)
    budget = config.budget_tokens if by_tokens else config.budget_docs
    natural = np.bincount(group, weights=sizes, minlength=len(names))
    shares = target_shares(names, natural, config.weights, config.temperature, "input")
    capacity = group_capacity(sizes, group, group, len(names), config.max_epochs)
    allocation = allocate(budget, shares, capacity, names, "input", config.strict, config.max_epochs, whole_units=not by_tokens)
    for warning in allocation.warnings:
        print(f"corpus: warning: {warning}", file=sys.stderr)
    copies = plan_copies(sizes, group, group, hashes, allocation, config.max_epochs, config.seed, whole_units=not by_tokens)

    row_of = np.repeat(np.arange(len(rows)), copies.astype(np.int64))
    epoch = np.arange(len(row_of)) - np.repeat(np.cumsum(copies, dtype=np.int64) - copies, copies.astype(np.int64))
    # output order: seeded, and each repeat of a row lands somewhere else
    order = np.argsort(mix_seed(mix_seed(hashes[row_of], config.seed) ^ epoch.astype(np.uint64), 1), kind="stable")
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="utf-8") as f:
        for i in row_of[order]:
            f.write(lines[i] + "\n")

    unit_sizes = sizes.astype(np.float64)
    chosen_units = np.bincount(group, weights=unit_sizes * copies, minlength=len(names))
    chosen_rows = np.bincount(group, weights=copies, minlength=len(names))
    total_rows = chosen_rows.sum() or 1
    per_input = {}
    for g, (name, path) in enumerate(sets):
        mine = group == g
        row = {"path": str(path.resolve()), "rows": int(mine.sum()), "formats": {k: v for k, v in formats[name].items() if v},
               "target_share": round(float(shares[g]), 6), "planned_share": round(float(allocation.planned_shares[g]), 6),
               "rows_out": int(chosen_rows[g]), "unique_rows_out": int((copies[mine] > 0).sum()),
               "share_rows": round(float(chosen_rows[g] / total_rows), 6), "max_epoch": int(copies[mine].max(initial=0)) - 1}  # fmt: skip
        if n_tokens is not None:
            row.update({"tokens": int(n_tokens[mine].sum()), "tokens_out": int((n_tokens[mine] * copies[mine]).sum()),
                        "share_tokens": round(float((n_tokens[mine] * copies[mine]).sum() / (n_tokens * copies).sum()), 6)})  # fmt: skip
        row["repetition_factor"] = round(float(chosen_units[g] / natural[g]), 4) if natural[g] else None
        per_input[name] = row
    achieved_key = "share_tokens" if by_tokens else "share_rows"
    mix_shares = {n: {"target": r["target_share"], "planned": r["planned_share"], "achieved": r[achieved_key],
                      "achieved_rows": r["share_rows"], "repetition_factor": r["repetition_factor"]} for n, r in per_input.items()}  # fmt: skip
    card = {
        **card_header(out.stem, "mix_sft", command),
        "fingerprint": fingerprint,
        "config": config.model_dump(),
        "rows_in": len(rows),
        "rows_out": int(len(row_of)),
        "unique_rows_out": int((copies > 0).sum()),
        "repeated_copies": int(len(row_of) - (copies > 0).sum()),
        "stage_facts": {
            "mix": {"unit": "tokens" if by_tokens else "rows", "budget": budget, "achieved": int(chosen_units.sum()),
                    "renormalised_groups": allocation.short_groups,
                    "max_abs_share_error_pp": round(100 * max(abs(v["achieved"] - v["planned"]) for v in mix_shares.values()), 4)},
            "mix_shares": mix_shares,
            "mix_by_input": per_input,
            "token_counts": token_facts,
            **({"mix_warnings": allocation.warnings} if allocation.warnings else {}),
        },  # fmt: skip
    }
    card_partial = card_path.with_name(card_path.name + ".partial")
    card_partial.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, out)
    os.replace(card_partial, card_path)
    say(f"mix: {len(rows):,} rows in, {len(row_of):,} rows out ({card['repeated_copies']:,} repeats) -> {out}")
    return card
