"""Cards of a tokenizer folder and of a token-shards folder: card.json plus a README.md for people.

Neither folder is a Parquet dataset folder, so they do not use the dataset card; they keep its
habits: lineage, configuration, accounting, file checksums, and a section the user writes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from corpus.cards import LIMITATIONS_HEADING
from corpus.document import CARD_JSON, CARD_README, file_sha256
from corpus.outputs import seal_card

LIMITATIONS_NOTE = "_Write here what a user of this folder should know._"


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _write(folder: Path, card: dict, readme: str) -> dict:
    seal_card(folder, card)
    (folder / CARD_README).write_text(readme, encoding="utf-8")
    return card


def _lineage(card: dict) -> str:
    rows = [[f"dataset `{i.get('name')}`", i["path"], f"`{(i.get('card_sha256') or '')[:12]}`"] for i in card["inputs"]]
    return _table(["input", "path", "card hash"], rows)


def write_tokenizer_card(folder: Path, card: dict) -> dict:
    folder = Path(folder)
    card["files"] = [
        {"path": f.name, "sha256": file_sha256(f)} for f in sorted(folder.iterdir()) if f.is_file() and f.name not in (CARD_JSON, CARD_README)
    ]
    tok, report = card["tokenizer"], card["report"]
    front = {"library_name": "transformers", "tags": ["tokenizer", "bpe"], "pretty_name": card["name"]}
    parts = ["---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n", f"# Tokenizer {card['name']}\n"]
    parts.append(
        f"A {tok['type']} tokenizer with {tok['vocab_size']:,} tokens, made by corpus {card['tool']['version']} "
        f"on {card['created']} with `{' '.join(card['command'])}`. Load it with "
        f"`transformers.AutoTokenizer.from_pretrained(\"path/to/this/folder\")`.\n"
    )
    asked = card["config"]["vocab_size"]
    if tok["vocab_size"] < asked:
        parts.append(f"{asked:,} tokens were asked for; the training sample has no more pairs seen at least "
                     f"{card['config']['min_frequency']} times. More text (or a lower `--min-frequency`) gives more.\n")  # fmt: skip
    parts.append("## Special tokens\n")
    rows = [[role, f"`{v['text']}`", v["id"]] for role, v in tok["special_tokens"].items()]
    rows += [["chat role marker", f"`{t}`", i] for t, i in tok["role_markers"].items()]
    parts.append(_table(["role", "token", "id"], rows) + "\n")
    parts.append(f"Chat template (in tokenizer_config.json):\n\n```jinja\n{tok['chat_template']}\n```\n")
    parts.append("## Training sample\n")
    parts.append(_table(["domain", "documents", "bytes"], [[d, f"{v['docs']:,}", f"{v['bytes']:,}"] for d, v in card["sample"].items()]) + "\n")
    parts.append(_lineage(card) + "\n")
    parts.append("## Domain report\n")
    reference = report.get("reference")
    held = ", ".join(f"{d} {v['docs']:,} documents" for d, v in card["evaluation_set"].items()) or "none"
    parts.append(f"Measured on held-out documents never used in training ({held}). Fertility is tokens per "
                 f"whitespace-separated word; lower is better."
                 + (f" Reference: {reference}." if reference else " No reference tokenizer (no general text to train one on).")
                 + "\n")  # fmt: skip
    rows = []
    for group, row in report["fertility"].items():
        ours = row["ours"]["tokens_per_word"]
        ref = row.get("reference", {}).get("tokens_per_word")
        change = f"{(ours / ref - 1) * 100:+.1f}%" if ours and ref else "-"
        rows.append([group, ours, ref if ref is not None else "-", change])
    parts.append(_table(["text", "ours (tokens/word)", "reference (tokens/word)", "change"], rows) + "\n")
    rows = [[e["term"], " · ".join(f"`{p}`" for p in e["ours"]), " · ".join(f"`{p}`" for p in e.get("reference", [])) or "-"]
            for e in report["terms"]]  # fmt: skip
    single = report["single_token_terms"]
    parts.append(f"Domain terms that are a single token (after a space): {', '.join(single) or 'none'}"
                 + (f"; in the reference: {', '.join(report.get('single_token_terms_reference', [])) or 'none'}" if reference else "")
                 + ".\n")  # fmt: skip
    parts.append(_table(["term", "ours", "reference"], rows) + "\n")
    parts.append(LIMITATIONS_HEADING + "\n\n" + LIMITATIONS_NOTE + "\n")
    return _write(folder, card, "\n".join(parts))


def write_shards_card(folder: Path, card: dict, index: dict) -> dict:
    folder = Path(folder)
    acc = card["accounting"][-1]
    parts = [f"# Token shards {card['name']}\n"]
    parts.append(
        f"{index['totals']['docs']:,} documents, {index['totals']['tokens']:,} tokens ({index['dtype']}) in "
        f"{len(index['shards'])} Arrow IPC shards, made by corpus {card['tool']['version']} on {card['created']} "
        f"with `{' '.join(card['command'])}`. Tokenizer `{index['tokenizer']['path']}` "
        f"(sha256 `{index['tokenizer']['sha256'][:12]}`); each document ends with EOS "
        f"(id {index['eos_id']})" + (f" and starts with BOS (id {index['bos_id']})" if index["bos_id"] is not None else "") + ".\n"
    )
    parts.append(
        "Each shard has one row per document: `input_ids` (list of token ids), `domain`, `source`, `id`. "
        "Open one with `pyarrow.ipc.open_file(pyarrow.memory_map(path))` (no copy) or "
        "`datasets.load_dataset(\"arrow\", data_files={\"train\": \"train-*.arrow\", \"validation\": \"val-*.arrow\"})`. "
        "`corpus shards verify` checks the files against index.json.\n"
    )
    parts.append("## Lineage\n")
    parts.append(_lineage(card) + "\n")
    parts.append("## Accounting per stage\n")
    parts.append(_table(
        ["stage", "in", "kept", "rejected", "by reason"],
        [[a["stage"], f"{a['docs_in']:,}", f"{a['kept']:,}", f"{sum(a['rejected'].values()):,}",
          ", ".join(f"{k}: {v:,}" for k, v in a["rejected"].items()) or "-"] for a in card["accounting"]],
    ) + "\n")  # fmt: skip
    if sum(acc["rejected"].values()):
        parts.append("The ids of rejected documents and their reasons are in `rejected.parquet`.\n")
    parts.append("## Tokens per split and domain\n")
    rows = []
    for split, by_domain in card["stats"]["by_split_domain"].items():
        for domain, v in by_domain.items():
            rows.append([split, domain, f"{v['docs']:,}", f"{v['tokens']:,}"])
    parts.append(_table(["split", "domain", "documents", "tokens"], rows) + "\n")
    parts.append(LIMITATIONS_HEADING + "\n\n" + LIMITATIONS_NOTE + "\n")
    return _write(folder, card, "\n".join(parts))
