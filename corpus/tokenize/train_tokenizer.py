"""`corpus tokenizer train`: a byte-level BPE tokenizer trained on a sample drawn by domain ratio.

The sample is chosen by document hash, so the same inputs and seed give the same tokenizer. A
share of every domain (`eval_fraction`) is held out of training and used only for the report: the
fertility (tokens per word) of the new tokenizer against a comparison tokenizer of the same size
trained on general text only (or, with `extend`, the tokenizer that was extended).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from corpus.errors import CorpusError
from corpus.outputs import OutputFolder, card_header
from corpus.progress import say
from corpus.shard_format import CHAT_TEMPLATE, TOKENIZER_JSON, id_hashes, load_tokenizer, mix_seed, tokenizer_sha256, unit_interval

BOS, EOS, PAD, UNK = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<|unk|>"
ROLE_MARKERS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
SPECIAL_TOKENS = [BOS, EOS, PAD, UNK, *ROLE_MARKERS]

DOMAIN_TERMS = [
    "deductible", "deductibles", "copayment", "copay", "coinsurance", "premium", "premiums",
    "out-of-pocket", "Marketplace", "Medicaid", "Medicare", "CHIP", "enrollment", "subsidy",
    "eligibility", "dependent", "beneficiary", "formulary", "preventive", "coverage",
]  # fmt: skip

MIN_EVAL_DOCS = 10
EVAL_BYTES_PER_DOMAIN = 2_000_000  # enough text for a stable fertility, small enough to hold in memory


class TokenizerTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(32_000, ge=300, le=1 << 24, description="tokens in the vocabulary, special tokens included")
    weights: dict[str, float] | None = Field(
        None, description="domain -> share of the training sample; unset: the domains' natural shares"
    )
    sample_mb: float = Field(512, gt=0, description="most text (MB) the tokenizer is trained on")
    min_frequency: int = Field(2, ge=1)
    general_domain: str = Field("general", description="the domain the comparison tokenizer is trained on")
    eval_fraction: float = Field(0.05, gt=0, lt=0.5, description="share of each domain held out for the report")
    seed: int = 0
    domain_terms: list[str] = Field(default_factory=lambda: list(DOMAIN_TERMS))
    compare: bool = Field(True, description="train the comparison tokenizer for the report")
    extend: str | None = Field(None, description="a tokenizer folder to extend with domain merges instead")

    @field_validator("weights")
    @classmethod
    def _positive(cls, weights):
        if weights is not None:
            bad = [k for k, v in weights.items() if v < 0]
            if bad:
                raise ValueError(f"weights must not be negative: {', '.join(bad)}")
            if sum(weights.values()) <= 0:
                raise ValueError("weights must not all be zero")
        return weights


def parse_weights(text: str | None) -> dict[str, float] | None:
    """`insurance=0.7,general=0.3` -> {"insurance": 0.7, "general": 0.3}."""
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            weights[name.strip()] = float(value)
        except ValueError:
            raise CorpusError(f"--weights: {part!r} is not DOMAIN=SHARE (e.g. insurance=0.5,general=0.5)") from None
    return weights


# ---------------------------------------------------------------- choosing the sample


def _document_table(files: list[str]) -> pl.DataFrame:
    """id, domain and UTF-8 size of every document, without holding the texts."""
    frames = []
    for path in files:
        try:
            frames.append(
                pl.scan_parquet(path)
                .select(pl.col("id"), pl.col("domain").fill_null("unknown"), pl.col("text").str.len_bytes().alias("bytes"))
                .collect()
            )
        except (pl.exceptions.PolarsError, OSError) as e:
            raise CorpusError(f"{path}: cannot read documents ({' '.join(str(e).split())[:160]})") from None
    if not frames:
        return pl.DataFrame(schema={"id": pl.String, "domain": pl.String, "bytes": pl.UInt32, "file": pl.Int32})
    return pl.concat(frames)


def _take_budget(frame: pl.DataFrame, budget: float) -> pl.DataFrame:
    """Documents in order-key order until their bytes reach the budget."""
    frame = frame.sort("key")
    before = frame["bytes"].cum_sum() - frame["bytes"]
    return frame.filter(before < budget)


def choose_sample(docs: pl.DataFrame, config: TokenizerTrainConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(training sample, held-out evaluation set, training pool), all chosen by hash."""
    hashes = id_hashes(docs["id"].to_list())
    docs = docs.with_columns(
        pl.Series("key", mix_seed(hashes, config.seed)),
        pl.Series("unit", unit_interval(hashes)),
    ).filter(pl.col("bytes") > 0)
    # The held-out share of each domain, but at least a few documents (a tenth of a small domain), so
    # that the fertility of a small domain is not measured on one or two pages.
    at_least = pl.min_horizontal(pl.lit(MIN_EVAL_DOCS), pl.len().over("domain") // 10)
    docs = docs.with_columns(
        ((pl.col("unit") < config.eval_fraction) | (pl.col("unit").rank("ordinal").over("domain") <= at_least)).alias("held_out")
    )
    pool = docs.filter(~pl.col("held_out"))
    sizes = dict(pool.group_by("domain").agg(pl.col("bytes").sum()).iter_rows())
    if not sizes:
        raise CorpusError("the inputs hold no non-empty documents to train a tokenizer on")
    if config.weights is None:
        total = sum(sizes.values())
        weights = {d: s / total for d, s in sizes.items()}
    else:
        missing = [d for d, w in config.weights.items() if w > 0 and d not in sizes]
        if missing:
            raise CorpusError(f"--weights: no documents of domain {', '.join(missing)} (domains: {', '.join(sorted(sizes))})")
        total_weight = sum(config.weights.values())
        weights = {d: w / total_weight for d, w in config.weights.items() if w > 0}
    # The largest sample that honours the ratios without repeating text: the scarcest domain, relative
    # to its weight, is used whole.
    budget = min(config.sample_mb * 1e6, min(sizes[d] / w for d, w in weights.items()))
    sample = pl.concat([_take_budget(pool.filter(pl.col("domain") == d), w * budget) for d, w in weights.items()])
    held_out = docs.filter(pl.col("held_out"))
    evaluation = pl.concat(
        [_take_budget(held_out.filter(pl.col("domain") == d), EVAL_BYTES_PER_DOMAIN) for d in held_out["domain"].unique().sort()]
    ) if held_out.height else held_out
    return sample, evaluation, pool


def iter_texts(files: list[str], ids: set[str], batch_rows: int = 2048) -> Iterator[str]:
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["id", "text"]):
            for doc_id, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                if doc_id in ids:
                    yield text


def read_texts(files: list[str], frame: pl.DataFrame) -> dict[str, list[str]]:
    """domain -> texts of the documents in `frame` (a small evaluation set)."""
    domain_of = dict(zip(frame["id"].to_list(), frame["domain"].to_list()))
    out: dict[str, list[str]] = {}
    for path in files:
        table = pq.read_table(path, columns=["id", "text"])
        for doc_id, text in zip(table.column(0).to_pylist(), table.column(1).to_pylist()):
            if doc_id in domain_of:
                out.setdefault(domain_of[doc_id], []).append(text)
    return out


# ---------------------------------------------------------------- training


def _new_bpe(vocab_size: int, min_frequency: int, special_tokens: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def train_bpe(texts: Iterator[str], vocab_size: int, min_frequency: int):
    tokenizer, trainer = _new_bpe(vocab_size, min_frequency, SPECIAL_TOKENS)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _merge_pairs(model: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def extend_bpe(base_dir: Path, texts: Iterator[str], vocab_size: int, min_frequency: int):
    """Append domain merges to an existing byte-level BPE until it has `vocab_size` tokens.

    The base merges keep their ranks, so text the base tokenizer handled well is cut almost as
    before; new merges (learnt on domain text only) apply after them and join domain words.
    """
    from tokenizers import Tokenizer

    base, _ = load_tokenizer(base_dir)
    spec = json.loads(base.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise CorpusError(f"{base_dir}: --extend needs a byte-level BPE tokenizer (this one is {model.get('type')})")
    current = base.get_vocab_size(with_added_tokens=True)
    if vocab_size <= current:
        raise CorpusError(f"--vocab-size {vocab_size} must be larger than the extended tokenizer's {current} tokens")
    domain_tokenizer, trainer = _new_bpe(vocab_size, min_frequency, [])
    domain_tokenizer.normalizer = base.normalizer
    domain_tokenizer.pre_tokenizer = base.pre_tokenizer
    domain_tokenizer.train_from_iterator(texts, trainer)
    domain_model = json.loads(domain_tokenizer.to_str())["model"]

    vocab: dict[str, int] = model["vocab"]
    merges = _merge_pairs(model)
    next_id = max([*vocab.values(), *(t["id"] for t in spec.get("added_tokens", []))]) + 1
    added = 0
    for left, right in _merge_pairs(domain_model):
        if next_id >= vocab_size:
            break
        joined = left + right
        if left in vocab and right in vocab and joined not in vocab:
            vocab[joined] = next_id
            merges.append((left, right))
            next_id += 1
            added += 1
    model["merges"] = [list(m) for m in merges]
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    return tokenizer, added


def _special_map(tokenizer, base_dir: Path | None) -> dict[str, str]:
    """bos/eos/pad/unk: the base tokenizer's own when extending, ours where it has none."""
    names = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK}
    if base_dir is not None:
        _, base_specials = load_tokenizer(base_dir)
        for role, (text, _) in base_specials.items():
            names[f"{role}_token"] = text
    return names


def save_hf_tokenizer(tokenizer, folder: Path, specials: dict[str, str]) -> None:
    """Write tokenizer.json and tokenizer_config.json (chat template inside) for AutoTokenizer."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    missing = [t for t in [*specials.values(), *ROLE_MARKERS] if tokenizer.token_to_id(t) is None]
    if missing:
        tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        **specials,
        additional_special_tokens=ROLE_MARKERS,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    hf.save_pretrained(str(folder), save_jinja_files=False)


# ---------------------------------------------------------------- the report


def fertility(tokenizer, texts: list[str]) -> dict:
    words = sum(len(t.split()) for t in texts)
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return {"docs": len(texts), "words": words, "tokens": tokens, "tokens_per_word": round(tokens / words, 4) if words else None}


def term_pieces(tokenizer, term: str) -> list[str]:
    """How a term is cut where it usually stands: after a space, inside a sentence."""
    encoding = tokenizer.encode(" " + term, add_special_tokens=False)
    return [tokenizer.decode([i]) for i in encoding.ids]


def domain_report(ours, reference, reference_name: str, eval_texts: dict[str, list[str]], general_domain: str, terms: list[str]) -> dict:
    groups = {"general": eval_texts.get(general_domain, [])}
    groups["domain"] = [t for d, texts in eval_texts.items() if d != general_domain for t in texts]
    report: dict = {"reference": reference_name, "fertility": {}, "terms": []}
    for group, texts in groups.items():
        if not texts:
            continue
        row = {"ours": fertility(ours, texts)}
        if reference is not None:
            row["reference"] = fertility(reference, texts)
        report["fertility"][group] = row
    for term in terms:
        entry = {"term": term, "ours": term_pieces(ours, term)}
        if reference is not None:
            entry["reference"] = term_pieces(reference, term)
        report["terms"].append(entry)
    report["single_token_terms"] = [e["term"] for e in report["terms"] if len(e["ours"]) == 1]
    if reference is not None:
        report["single_token_terms_reference"] = [e["term"] for e in report["terms"] if len(e["reference"]) == 1]
    return report


# ---------------------------------------------------------------- the command


def is_tokenizer_folder(path: Path) -> bool:
    return (Path(path) / TOKENIZER_JSON).is_file() and (Path(path) / "card.json").is_file()


def train_tokenizer(inputs: list[str], output: str | Path, config: TokenizerTrainConfig, overwrite: bool = False,
                    command: list[str] | None = None, name: str | None = None, fingerprint: str | None = None) -> dict:  # fmt: skip
    from corpus.execution import dataset_inputs

    files, lineage = dataset_inputs(inputs)
    base_dir = Path(config.extend) if config.extend else None
    if base_dir is not None:
        load_tokenizer(base_dir)  # a bad folder fails before any training
    target = OutputFolder(output, overwrite, is_tokenizer_folder, list(inputs) + ([config.extend] if config.extend else []),
                           fingerprint)  # fmt: skip
    if target.up_to_date():
        say(f"tokenizer: {output} is up to date (same inputs and config); nothing to do")
        return json.loads((target.final / "card.json").read_text(encoding="utf-8"))
    target.check()  # before reading the documents
    docs = _document_table(files)
    sample, evaluation, pool = choose_sample(docs, config)
    sample_ids = set(sample["id"].to_list())
    general = config.general_domain
    partial = target.start()
    try:
        say(f"tokenizer: training a {config.vocab_size:,}-token BPE on {sample['bytes'].sum() / 1e6:.1f} MB "
            f"({sample.height:,} documents)")  # fmt: skip
        if base_dir is None:
            ours = train_bpe(iter_texts(files, sample_ids), config.vocab_size, config.min_frequency)
            merges_added = None
        else:
            domain_ids = set(sample.filter(pl.col("domain") != general)["id"].to_list()) or sample_ids
            ours, merges_added = extend_bpe(base_dir, iter_texts(files, domain_ids), config.vocab_size, config.min_frequency)
        specials = _special_map(ours, base_dir)
        save_hf_tokenizer(ours, partial, specials)
        ours, _ = load_tokenizer(partial)  # report on exactly what was saved

        reference, reference_name = None, None
        if base_dir is not None:
            reference, _ = load_tokenizer(base_dir)
            reference_name = f"the extended tokenizer {base_dir}"
        elif config.compare:
            general_pool = pool.filter(pl.col("domain") == general)
            if general_pool.height:
                # The same vocabulary size matters more than the same amount of text: a general sample as
                # small as ours may not have enough frequent pairs to fill the vocabulary.
                general_sample = _take_budget(general_pool, config.sample_mb * 1e6)
                say(f"tokenizer: training the general-only comparison tokenizer on {general_sample['bytes'].sum() / 1e6:.1f} MB")
                reference = train_bpe(iter_texts(files, set(general_sample["id"].to_list())), config.vocab_size, config.min_frequency)
                reference_name = f"a {reference.get_vocab_size():,}-token BPE trained on domain `{general}` only"
        eval_texts = read_texts(files, evaluation)
        report = domain_report(ours, reference, reference_name, eval_texts, general, config.domain_terms)

        card = {
            **card_header(name or Path(output).name, "tokenizer", command),
            "fingerprint": fingerprint,
            "config": config.model_dump(),
            "inputs": lineage,
            "tokenizer": {
                "type": "byte-level BPE" + (f" extended from {base_dir}" if base_dir else ""),
                "vocab_size": ours.get_vocab_size(with_added_tokens=True),
                "sha256": tokenizer_sha256(partial),
                "special_tokens": {role: {"text": text, "id": ours.token_to_id(text)} for role, text in specials.items()},
                "role_markers": {t: ours.token_to_id(t) for t in ROLE_MARKERS},
                "merges_added": merges_added,
                "chat_template": CHAT_TEMPLATE,
            },
            "sample": _per_domain(sample),
            "evaluation_set": _per_domain(evaluation),
            "report": report,
        }
        from corpus.tokenize.report import write_tokenizer_card

        write_tokenizer_card(partial, card)
    except BaseException:
        target.abandon()  # a tokenizer cannot be resumed half-trained: leave nothing behind
        raise
    final = target.finish()
    size = card["tokenizer"]["vocab_size"]
    short = f" (fewer than the {config.vocab_size:,} asked for: the sample has no more pairs seen {config.min_frequency}+ times)"
    say(f"tokenizer: {size:,} tokens{short if size < config.vocab_size else ''} -> {final}")
    return card


def _per_domain(frame: pl.DataFrame) -> dict:
    if not frame.height:
        return {}
    rows = frame.group_by("domain").agg(pl.len().alias("docs"), pl.col("bytes").sum()).sort("domain")
    return {r["domain"]: {"docs": r["docs"], "bytes": r["bytes"]} for r in rows.iter_rows(named=True)}

