"""`corpus instruct IN -o OUT`: instruction pairs built by rules from a dataset folder's documents.

Three rules, each a business rule a domain team would write by hand:

- `glossary_term`: a glossary page (layout `glossary-word`, or `glossary` among its tags or
  categories) -> "What is TERM?" answered by the definition ("¿Qué es TERM?" for Spanish pages);
- `title_body`: any other page with a title -> the title as the prompt (a title that is not a
  question becomes "Tell me about TITLE.") answered by the page body;
- `faq_heading`: a Markdown heading ending in '?' -> the text under it, up to the next heading of
  the same or a higher level.

Output::

    OUT/pairs.jsonl   one {"messages": [user, assistant], "rule", "lang", "source_id", "url"} a line
    OUT/train.jsonl   with `test_split`: the pairs to train on ...
    OUT/test.jsonl    ... and the held-out pairs (by a seeded hash of the pair), no train pair
                      sharing a word 13-gram with a test pair (corpus.decontaminate's matching)
    OUT/card.json     lineage, config, counts per rule / language, skipped pages by reason, examples
    OUT/README.md     the same for people

Pages marked `published: false` are drafts on the site and give no pairs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from corpus.document import CARD_JSON, CARD_README, file_sha256
from corpus.errors import CorpusError
from corpus.instruct_rules import RULES
from corpus.outputs import OutputFolder, card_header, seal_card
from corpus.progress import say
from corpus.stages import Stage, declare

PAIRS_FILE = "pairs.jsonl"
TRAIN_FILE, TEST_FILE = "train.jsonl", "test.jsonl"

# Prompt wording per language; a page in another language falls back to English wording.
PROMPTS = {
    "en": {"term": "What is {}?", "topic": "Tell me about {}."},
    "es": {"term": "¿Qué es {}?", "topic": "Háblame de {}."},
}

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_TEMPLATE_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)  # Liquid tags of the static site
_BLANK_RUNS = re.compile(r"\n{3,}")
_LINK = re.compile(r"\[([^\]]+)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")  # [text](/url "title") -> text: site paths mean nothing to a model


class InstructConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[str] = Field(default_factory=lambda: list(RULES), description="rules to apply, of " + ", ".join(RULES))
    min_answer_chars: int = Field(20, ge=1, description="shorter answers are skipped (a heading with no text under it)")
    max_answer_chars: int = Field(6000, ge=100, description="longer answers are skipped (they would not fit a context)")
    domains: list[str] | None = Field(None, description="only documents of these domains; none: all")
    test_split: float = Field(0.0, ge=0, lt=1, description="share of pairs held out in test.jsonl (0: no split)")
    split_seed: int = 0

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)} (known: {', '.join(RULES)})")
        return rules


def _clean(text: str) -> str:
    return _BLANK_RUNS.sub("\n\n", _LINK.sub(r"\1", _TEMPLATE_TAG.sub("", text))).strip()


def _is_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def _lang(lang: str | None) -> str:
    return lang if lang in PROMPTS else "en"


def _labels(meta: dict, key: str) -> list[str]:
    value = meta.get(key)
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def is_glossary(meta: dict) -> bool:
    return meta.get("layout") == "glossary-word" or "glossary" in _labels(meta, "tags") + _labels(meta, "categories")


def is_unpublished(meta: dict) -> bool:
    return str(meta.get("published", "true")).strip().lower() == "false"


def faq_sections(body: str) -> Iterator[tuple[str, str]]:
    """(question heading, the text under it) for every heading that ends in '?'."""
    headings = list(_HEADING.finditer(body))
    for i, match in enumerate(headings):
        question = match.group(2).strip()
        if not _is_question(question):
            continue
        level = len(match.group(1))
        end = len(body)
        for later in headings[i + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        yield question, body[match.end() : end].strip()


def pairs_of_document(text: str, meta: dict, lang: str | None, rules: list[str]) -> Iterator[tuple[str, str, str]]:
    """(rule, prompt, answer) candidates of one page, before length checks."""
    prompts = PROMPTS[_lang(lang)]
    title = str(meta.get("title") or "").strip()
    body = _clean(text)
    if is_glossary(meta):
        if "glossary_term" in rules and title:
            yield "glossary_term", prompts["term"].format(title), body
        return  # a definition is not also a page to summarise
    if "title_body" in rules and title:
        yield "title_body", title if _is_question(title) else prompts["topic"].format(title), body
    if "faq_heading" in rules:
        for question, answer in faq_sections(body):
            yield "faq_heading", question, answer


def build_pairs(files: list[str], config: InstructConfig) -> tuple[list[dict], Counter]:
    pairs: list[dict] = []
    skipped: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    for path in files:
        try:
            table = pq.read_table(path, columns=["id", "text", "domain", "url", "lang", "metadata"])
        except (OSError, pa.ArrowException) as e:
            from corpus.execution import damaged_parquet

            raise damaged_parquet(path, e) from None
        for row in table.to_pylist():
            if config.domains is not None and row["domain"] not in config.domains:
                skipped["other_domain"] += 1
                continue
            meta = json.loads(row["metadata"] or "{}")
            if is_unpublished(meta):
                skipped["unpublished"] += 1
                continue
            produced = 0
            for rule, prompt, answer in pairs_of_document(row["text"], meta, row["lang"], config.rules):
                if len(answer) < config.min_answer_chars:
                    skipped[f"{rule}:answer_too_short"] += 1
                elif len(answer) > config.max_answer_chars:
                    skipped[f"{rule}:answer_too_long"] += 1
                elif (prompt, answer) in seen:
                    skipped[f"{rule}:duplicate"] += 1
                else:
                    seen.add((prompt, answer))
                    produced += 1
                    pairs.append({
                        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                        "rule": rule, "lang": row["lang"], "domain": row["domain"], "source_id": row["id"], "url": row["url"],
                    })  # fmt: skip
            if not produced:
                skipped["no_rule_matched"] += 1
    return pairs, skipped


def split_pairs(pairs: list[dict], test_fraction: float, seed: int, ngram: int = 13) -> tuple[list[dict], list[dict], int]:
    """(train, test, train pairs dropped): test by a seeded hash of each pair's messages; a train pair
    that shares a word n-gram with a test pair (the same answer from two pages, a translation
    quoting an English term) is dropped, so the test answers are not taught by SFT either."""
    import hashlib

    from corpus.decontaminate.index import EvalIndex, Words, normalise
    from corpus.shard_format import mix_seed, unit_interval

    keys = [hashlib.blake2b(json.dumps(p["messages"], sort_keys=True, ensure_ascii=False).encode(), digest_size=8).digest() for p in pairs]
    hashes = np.array([int.from_bytes(k, "little") for k in keys], dtype=np.uint64)
    in_test = unit_interval(mix_seed(hashes, seed)) < test_fraction
    test = [p for p, t in zip(pairs, in_test) if t]
    train = [p for p, t in zip(pairs, in_test) if not t]
    if not test or not train:
        return train, test, 0
    texts = [m["content"] for p in test for m in p["messages"]]
    index, _, _ = EvalIndex.build(texts, ngram, min_words=6)
    answers = [p["messages"][-1]["content"] + "\n" + p["messages"][0]["content"] for p in train]
    doc, *_ = index.matches(Words(normalise(answers)))
    overlapping = set(doc.tolist())
    kept = [p for i, p in enumerate(train) if i not in overlapping]
    return kept, test, len(train) - len(kept)


def _count(pairs: list[dict], key: str) -> dict[str, int]:
    return dict(sorted(Counter(str(p[key]) for p in pairs).items()))


def _examples(pairs: list[dict], per_rule: int = 2) -> list[dict]:
    out, taken = [], Counter()
    for p in pairs:
        if taken[p["rule"]] < per_rule:
            taken[p["rule"]] += 1
            answer = p["messages"][1]["content"]
            out.append({"rule": p["rule"], "lang": p["lang"], "prompt": p["messages"][0]["content"],
                        "answer": answer[:300] + ("…" if len(answer) > 300 else "")})  # fmt: skip
    return out


def _readme(card: dict) -> str:
    front = {"pretty_name": card["name"], "task_categories": ["question-answering", "text-generation"],
             "language": [k for k in card["by_lang"] if k != "None"] or ["unknown"],
             "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": PAIRS_FILE}]}]}  # fmt: skip
    lines = ["---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n", f"# {card['name']}\n"]
    lines.append(f"{card['pairs']:,} instruction pairs built by rules from {card['documents_in']:,} documents by "
                 f"`{' '.join(card['command'])}` (corpus {card['tool']['version']}, {card['created']}). "
                 f"Each line of `{PAIRS_FILE}` is a chat in `messages` form, ready for `train sft`.\n")  # fmt: skip
    if card.get("split"):
        sp = card["split"]
        lines.append(f"Split: {sp['train']:,} pairs in `{TRAIN_FILE}`, {sp['test']:,} held out in `{TEST_FILE}`; "
                     f"{sp['train_dropped_sharing_a_13_gram_with_test']:,} train pairs sharing a word 13-gram with a test pair "
                     "were dropped, so SFT does not teach the held-out answers.\n")  # fmt: skip
    lines.append("| rule | pairs |\n|---|---|")
    lines += [f"| {rule} | {n:,} |" for rule, n in card["by_rule"].items()]
    lines.append("\n| language | pairs |\n|---|---|")
    lines += [f"| {lang} | {n:,} |" for lang, n in card["by_lang"].items()]
    lines.append("\nSkipped (documents, or candidate pairs by rule):\n\n| reason | count |\n|---|---|")
    lines += [f"| {reason} | {n:,} |" for reason, n in card["skipped"].items()]
    lines.append("\n## Examples\n")
    for ex in card["examples"]:
        answer = ex["answer"].replace("\n", " ")
        lines.append(f"- **{ex['rule']}** ({ex['lang']}) *{ex['prompt']}* -> {answer}")
    lines.append("\n## Sources\n")
    lines += [f"- dataset `{i.get('name')}` at {i['path']} (card `{(i.get('card_sha256') or '')[:12]}`)" for i in card["inputs"]]
    return "\n".join(lines) + "\n"


def is_instruct_folder(path: Path) -> bool:
    return (Path(path) / PAIRS_FILE).is_file() and (Path(path) / CARD_JSON).is_file()


def build_instructions(inputs: list[str], output: str | Path, config: InstructConfig, overwrite: bool = False,
                       command: list[str] | None = None, name: str | None = None, replace_stale: bool = False) -> dict:  # fmt: skip
    """Build the pairs into `output`. A finished output of the same inputs and config is up to date;
    `replace_stale` (a pipeline's own output) replaces one of another config without --overwrite."""
    from corpus.execution import dataset_inputs
    from corpus.outputs import stage_fingerprint

    files, lineage = dataset_inputs(inputs)
    fingerprint = stage_fingerprint("instruct", config.model_dump(), inputs)
    target = OutputFolder(output, overwrite, is_instruct_folder, inputs, fingerprint, replace_stale=replace_stale)
    if target.up_to_date():
        say(f"instruct: {output} is up to date (same inputs and config); nothing to do")
        return json.loads((target.final / CARD_JSON).read_text(encoding="utf-8"))
    target.check()
    pairs, skipped = build_pairs(files, config)
    if not pairs:
        raise CorpusError(f"{', '.join(inputs)}: no rule produced a pair (skipped: {dict(skipped) or 'nothing read'})")
    partial = target.start()

    def write(name: str, rows: list[dict]) -> None:
        with open(partial / name, "w", encoding="utf-8") as f:
            for pair in rows:
                f.write(json.dumps(pair, ensure_ascii=False) + "\n")

    write(PAIRS_FILE, pairs)
    split = None
    if config.test_split > 0:
        train, test, dropped = split_pairs(pairs, config.test_split, config.split_seed)
        write(TRAIN_FILE, train)
        write(TEST_FILE, test)
        split = {"train": len(train), "test": len(test), "train_dropped_sharing_a_13_gram_with_test": dropped,
                 "method": "blake2b of the messages, mixed with split_seed, below test_split"}  # fmt: skip
    documents_in = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
    card = {
        **card_header(name or Path(output).name, "instruct", command),
        "fingerprint": fingerprint,
        "config": config.model_dump(),
        "inputs": lineage,
        "documents_in": documents_in,
        "pairs": len(pairs),
        "by_rule": _count(pairs, "rule"),
        "by_lang": _count(pairs, "lang"),
        "by_domain": _count(pairs, "domain"),
        "skipped": dict(sorted(skipped.items())),
        "examples": _examples(pairs),
        "files": [{"path": name, "sha256": file_sha256(partial / name)} for name in (PAIRS_FILE, TRAIN_FILE, TEST_FILE)
                  if (partial / name).is_file()],
    }
    if split is not None:
        card["split"] = split
    seal_card(partial, card)
    (partial / CARD_README).write_text(_readme(card), encoding="utf-8")
    final = target.finish()
    say(f"instruct: {len(pairs):,} pairs ({', '.join(f'{k} {v:,}' for k, v in card['by_rule'].items())}) -> {final}")
    return card


def _run(run):
    build_instructions([run.latest_dataset()], run.out, run.options, overwrite=run.overwrite, command=run.command, name=run.name,
                       replace_stale=True)  # fmt: skip
    return run.out


declare(Stage("instruct", InstructConfig, _run, "build instruction pairs (messages JSONL) from dataset folders by rules"))
