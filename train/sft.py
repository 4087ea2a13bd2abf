"""`train sft`: supervised fine-tuning with TRL's SFTTrainer on data in any common instruction format.

Our part is the data path: rows are read and validated (train.formats), tokenized here with labels
built from the chat template, split by example hash, and handed to SFTTrainer already tokenized, so
what is trained is exactly what `encode_example` returns and a test can check it token by token:

- a conversation is rendered by the tokenizer's chat template; only assistant turns are trained,
  each through its end-of-turn marker (`<|end|>` for corpus tokenizers, `<|im_end|>` for SmolLM2),
  so the model learns to stop;
- a prompt/completion pair trains the completion and EOS; plain text trains every token and EOS.

Packing uses TRL's best-fit-decreasing packer in padding-free mode: samples are laid end to end
with position ids restarting at 0 per sample and no attention mask, from which transformers builds
a block-diagonal causal mask, so no token attends across a sample boundary (tests/test_sft.py
checks that packed and unpacked losses agree).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from train.errors import TrainError
from train.formats import LoadReport, RowError, load_sft, split_by_hash, write_jsonl
from train.loading import RUN_JSON, device, is_run_of, load_model, load_tokenizer, model_identity, resolve_model, write_json

IGNORE_INDEX = -100


class SFTOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps; -1: run the epochs")
    lr: float = Field(2e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_seq_len: int = Field(1024, ge=8)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lora: tuple[int, int] | None = Field(None, description="(rank, alpha); none: full fine-tuning")
    merge_lora: bool = False
    packing: bool = False
    test_split: float = Field(0.2, ge=0, lt=1)
    skip_invalid: bool = False
    seed: int = 0
    gradient_checkpointing: bool = Field(False, description="saves memory on large models; slows small ones")
    logging_steps: int = Field(10, ge=1)


def parse_lora(text: str | None) -> tuple[int, int] | None:
    """`16,32` -> (16, 32)."""
    if not text:
        return None
    try:
        rank, alpha = (int(x) for x in text.split(","))
    except ValueError:
        raise TrainError(f"--lora: {text!r} is not RANK,ALPHA (e.g. 16,32)") from None
    if rank < 1 or alpha < 1:
        raise TrainError(f"--lora: rank and alpha must be positive, got {text!r}")
    return rank, alpha


# ---------------------------------------------------------------- tokenization with labels


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant reply plus its end marker.

    A reply's span starts where the template's generation prompt ends and stops after the turn's
    rendering, less the whitespace the template puts between turns.
    """
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        through = _render(tokenizer, messages[: i + 1])
        if not (text.startswith(through) and through.startswith(before)):
            raise TrainError("the chat template does not render a conversation as a prefix of its continuation; "
                             "assistant tokens cannot be located")  # fmt: skip
        spans.append((len(before), len(through.rstrip())))
    return text, spans


def encode_example(tokenizer, example: dict, max_seq_len: int) -> dict:
    """input_ids and labels (IGNORE_INDEX where no loss) of one normal-form example."""
    eos = tokenizer.eos_token_id
    if "messages" in example:
        text, spans = assistant_spans(tokenizer, example["messages"])
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        input_ids = enc["input_ids"]
        trained = [any(s <= start < e for s, e in spans) for start, _ in enc["offset_mapping"]]
        labels = [t if keep else IGNORE_INDEX for t, keep in zip(input_ids, trained)]
    elif "completion" in example:
        prompt_ids = tokenizer(example["prompt"], add_special_tokens=True)["input_ids"] if example["prompt"] else []
        completion_ids = tokenizer(example["completion"], add_special_tokens=False)["input_ids"] + [eos]
        input_ids = prompt_ids + completion_ids
        labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    else:
        input_ids = tokenizer(example["text"], add_special_tokens=True)["input_ids"] + [eos]
        labels = list(input_ids)
    input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels[1:]):  # the first label is never predicted
        raise RowError(f"no trained token within --max-seq-len {max_seq_len}", "truncated_away")
    return {"input_ids": input_ids, "labels": labels}


def encode_all(tokenizer, examples: list[dict], max_seq_len: int, report: LoadReport | None = None) -> list[dict]:
    out = []
    for example in examples:
        try:
            out.append(encode_example(tokenizer, example, max_seq_len))
        except RowError as e:
            if report is not None:
                report.skipped[e.reason] += 1
    return out


def prepare_for_training(model):
    """No KV cache: transformers builds the per-sample (block-diagonal) mask of a packed row only when
    no cache is passed. TRL's loss passes use_cache=False; setting it on the config makes every other
    forward over packed rows (ours, a test's) safe too: with the default use_cache=True, packed
    samples attend to each other."""
    model.config.use_cache = False
    return model


# ---------------------------------------------------------------- loss on held-out examples


def masked_loss(model, encoded: list[dict], batch_size: int = 8) -> dict:
    """Token-weighted mean cross-entropy over labelled tokens (one number whatever the batching)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    dev = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            width = max(len(e["input_ids"]) for e in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for row, e in enumerate(batch):
                n = len(e["input_ids"])
                ids[row, :n] = torch.tensor(e["input_ids"])
                labels[row, :n] = torch.tensor(e["labels"])
                mask[row, :n] = 1
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float()  # (B, T, V)
            shifted = labels[:, 1:].to(dev)  # position t predicts token t+1
            loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), shifted, ignore_index=IGNORE_INDEX, reduction="sum")
            total += loss.item()
            tokens += int((shifted != IGNORE_INDEX).sum())
    mean = total / tokens if tokens else float("nan")
    return {"loss": round(mean, 4), "perplexity": round(math.exp(mean), 3) if tokens else None, "tokens": tokens,
            "examples": len(encoded)}  # fmt: skip


# ---------------------------------------------------------------- the command


def lora_config(lora: tuple[int, int] | None):
    """A PEFT LoRA on every linear layer, or None for full fine-tuning."""
    if not lora:
        return None
    from peft import LoraConfig

    rank, alpha = lora
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def train_and_merge(trainer, merge_lora: bool):
    """Run a TRL trainer; returns the trained model (LoRA merged on request), the train result and seconds."""
    started = time.time()
    result = trainer.train()
    seconds = time.time() - started
    model = trainer.model.merge_and_unload() if merge_lora else trainer.model
    return model, result, seconds


def run_head(kind: str, command, source, options, data, report: LoadReport) -> dict:
    """The first keys of a tuning run's run.json, the same for SFT and DPO."""
    return {
        "kind": kind,
        "command": command,
        "base_model": str(source.folder / source.gguf_file) if source.gguf_file else str(source.folder),
        "adapter_only": bool(options.lora and not options.merge_lora),
        "data": [str(Path(p).resolve()) for p in data],
        "options": options.model_dump(),
        "read": report.as_dict(),
    }


def run_target(kind: str, model_path: str, data: list[str], output: str, options, overwrite: bool):
    """The run folder of a tuning run (an OutputFolder), fingerprinted by what the model and data
    files hold, the options and the trainer's version: the same run again is up to date."""
    import train
    from corpus.outputs import OutputFolder, fingerprint_of, input_identity

    def fingerprint() -> str:  # reads the model's files: only when a run is there to compare, or is saved
        return fingerprint_of({"stage": kind, "config": options.model_dump(), "model": model_identity(resolve_model(model_path)),
                               "data": [input_identity(p) for p in data], "version": train.__version__})  # fmt: skip

    return OutputFolder(output, overwrite, is_run_of(kind), fingerprint=fingerprint, error=TrainError, marker=RUN_JSON)


def up_to_date_run(kind: str, target, log) -> dict | None:
    """The finished run's run.json when it was made with the same fingerprint (and no --overwrite),
    else None after checking that the output may be written."""
    import json

    if target.up_to_date():
        log(f"{kind}: {target.final} is up to date (same inputs and config); nothing to do")
        return json.loads((target.final / RUN_JSON).read_text(encoding="utf-8"))
    target.check()
    return None


def save_run(run: Path, target, model, tokenizer, summary: dict) -> Path:
    """Write the tuned model, its tokenizer and run.json (with the run's fingerprint), drop the
    trainer's checkpoints and move the run folder into place; returns its final path."""
    model.save_pretrained(str(run))
    tokenizer.save_pretrained(str(run))
    write_json(run / RUN_JSON, {**summary, "fingerprint": target.fingerprint})
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    return target.finish()


def run_sft(model_path: str, data: list[str], output: str, options: SFTOptions, overwrite: bool = False,
            command: list[str] | None = None, log=print) -> dict:  # fmt: skip
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    target = run_target("sft", model_path, data, output, options, overwrite)
    done = up_to_date_run("sft", target, log)
    if done is not None:
        return done
    report = LoadReport()
    examples = load_sft(data, options.skip_invalid, report)
    train_rows, test_rows = split_by_hash(examples, options.test_split, options.seed)
    source = resolve_model(model_path)
    tokenizer = load_tokenizer(source)
    train_encoded = encode_all(tokenizer, train_rows, options.max_seq_len, report)
    test_encoded = encode_all(tokenizer, test_rows, options.max_seq_len, report)
    if not train_encoded:
        raise TrainError(f"no training example left after tokenization (skipped: {dict(report.skipped)})")
    if report.skipped:
        log(f"sft: skipped {sum(report.skipped.values())} rows: {dict(report.skipped)}")
    log(f"sft: {len(train_encoded)} train / {len(test_encoded)} test examples ({dict(report.formats)}) on {source.describe()}")

    model = prepare_for_training(load_model(source).to(device()))
    before = masked_loss(model, test_encoded) if test_encoded else None
    run = target.start()
    write_jsonl(run / "data" / "train.jsonl", train_rows)
    write_jsonl(run / "data" / "test.jsonl", test_rows)

    peft_config = lora_config(options.lora)
    config = SFTConfig(
        output_dir=str(run / "checkpoints"),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        learning_rate=options.lr,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        warmup_steps=options.warmup_ratio,  # a float below 1 is a share of the steps
        weight_decay=options.weight_decay,
        lr_scheduler_type="cosine",
        max_length=options.max_seq_len,
        packing=options.packing,
        packing_strategy="bfd",
        gradient_checkpointing=options.gradient_checkpointing,
        logging_steps=options.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=options.seed,
        data_seed=options.seed,
        disable_tqdm=True,
        use_cpu=device().type == "cpu",
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(train_encoded),
                         processing_class=tokenizer, peft_config=peft_config)  # fmt: skip
    model, result, seconds = train_and_merge(trainer, options.lora and options.merge_lora)
    after = masked_loss(model, test_encoded) if test_encoded else None

    trained_tokens = sum(sum(1 for x in e["labels"][1:] if x != IGNORE_INDEX) for e in train_encoded)
    summary = {
        **run_head("sft", command, source, options, data, report),
        "split": {"method": "blake2b hash of the normal-form example", "test_fraction": options.test_split,
                  "seed": options.seed, "train": len(train_encoded), "test": len(test_encoded),
                  "files": ["data/train.jsonl", "data/test.jsonl"]},  # fmt: skip
        "training": {"steps": result.global_step, "train_loss": round(result.training_loss, 4), "seconds": round(seconds, 1),
                     "trained_tokens_per_epoch": trained_tokens, "device": device().type},  # fmt: skip
        "test_before": before,
        "test_after": after,
    }
    final = save_run(run, target, model, tokenizer, summary)
    shown = f"test loss {before['loss']} -> {after['loss']}" if after else "no test split"
    log(f"sft: {result.global_step} steps in {seconds:.0f} s, train loss {result.training_loss:.4f}, {shown} -> {final}")
    return summary
