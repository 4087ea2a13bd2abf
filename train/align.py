"""`train dpo`: preference alignment with TRL's DPOTrainer, measured on held-out pairs.

Rows are read by train.formats (prompt/chosen/rejected plain or conversational, sharegpt with
chosen/rejected turns, chosen/rejected dialogues with a shared prefix such as hh-rlhf) and split by
hash like `train sft`. The held-out numbers are computed here from sequence log-probabilities, so
they do not depend on how a trainer averages over batches:

    reward(y) = beta * (log p_policy(y | x) - log p_reference(y | x))   (DPO's implicit reward)
    reward accuracy = share of pairs with reward(chosen) > reward(rejected); margin = mean difference
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from train.errors import TrainError
from train.formats import LoadReport, load_preferences, split_by_hash, write_jsonl
from train.loading import device, load_model, load_tokenizer, resolve_model
from train.sft import (
    IGNORE_INDEX,
    assistant_spans,
    lora_config,
    prepare_for_training,
    run_head,
    run_target,
    save_run,
    train_and_merge,
    up_to_date_run,
)


class DPOOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    lr: float = Field(1e-6, gt=0)
    beta: float = Field(0.1, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_seq_len: int = Field(1024, ge=8)
    lora: tuple[int, int] | None = None
    merge_lora: bool = False
    test_split: float = Field(0.2, ge=0, lt=1)
    skip_invalid: bool = False
    seed: int = 0
    gradient_checkpointing: bool = False
    logging_steps: int = Field(10, ge=1)


def is_conversational(pair: dict) -> bool:
    return isinstance(pair["prompt"], list)


def encode_completion(tokenizer, prompt, completion, max_seq_len: int) -> tuple[list[int], list[int]]:
    """input_ids and labels where only the completion (and its end marker or EOS) is labelled."""
    if isinstance(prompt, list):
        text, spans = assistant_spans(tokenizer, prompt + completion)
        start, end = spans[-1]
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        labels = [t if start <= s < end else IGNORE_INDEX for t, (s, _) in zip(ids, enc["offset_mapping"])]
    else:
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids, labels = prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    return ids[:max_seq_len], labels[:max_seq_len]


def sequence_logprobs(model, tokenizer, pairs: list[dict], side: str, max_seq_len: int) -> list[float]:
    """log p(side | prompt) summed over the side's tokens, one number per pair."""
    import torch

    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for pair in pairs:
            ids, labels = encode_completion(tokenizer, pair["prompt"], pair[side], max_seq_len)
            logits = model(input_ids=torch.tensor([ids], device=dev)).logits[0, :-1].float()  # (T-1, V)
            target = torch.tensor(labels[1:], device=dev)
            logp = torch.log_softmax(logits, -1)
            keep = target != IGNORE_INDEX
            out.append(float(logp[keep].gather(1, target[keep][:, None]).sum()))
    return out


def preference_metrics(policy, reference_logps: dict | None, tokenizer, pairs: list[dict], beta: float, max_seq_len: int) -> dict:
    chosen = sequence_logprobs(policy, tokenizer, pairs, "chosen", max_seq_len)
    rejected = sequence_logprobs(policy, tokenizer, pairs, "rejected", max_seq_len)
    n = len(pairs)
    metrics = {"pairs": n, "logp_prefers_chosen": round(sum(c > r for c, r in zip(chosen, rejected)) / n, 4)}
    if reference_logps is not None:
        reward_c = [beta * (c - rc) for c, rc in zip(chosen, reference_logps["chosen"])]
        reward_r = [beta * (r - rr) for r, rr in zip(rejected, reference_logps["rejected"])]
        margins = [c - r for c, r in zip(reward_c, reward_r)]
        metrics["reward_accuracy"] = round(sum(m > 0 for m in margins) / n, 4)
        metrics["reward_margin"] = round(sum(margins) / n, 4)
    return metrics, {"chosen": chosen, "rejected": rejected}


def run_dpo(model_path: str, data: list[str], output: str, options: DPOOptions, overwrite: bool = False,
            command: list[str] | None = None, log=print) -> dict:  # fmt: skip
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    target = run_target("dpo", model_path, data, output, options, overwrite)
    done = up_to_date_run("dpo", target, log)
    if done is not None:
        return done
    report = LoadReport()
    pairs = load_preferences(data, options.skip_invalid, report)
    if len({is_conversational(p) for p in pairs}) > 1:
        raise TrainError("the data mixes plain-text and conversational preference rows; use one kind per run")
    train_pairs, test_pairs = split_by_hash(pairs, options.test_split, options.seed)
    source = resolve_model(model_path)
    tokenizer = load_tokenizer(source)
    log(f"dpo: {len(train_pairs)} train / {len(test_pairs)} held-out pairs ({dict(report.formats)}) on {source.describe()}")
    model = prepare_for_training(load_model(source).to(device()))
    before, reference_logps = (preference_metrics(model, None, tokenizer, test_pairs, options.beta, options.max_seq_len)
                               if test_pairs else (None, None))  # fmt: skip

    run = target.start()
    write_jsonl(run / "data" / "train.jsonl", train_pairs)
    write_jsonl(run / "data" / "test.jsonl", test_pairs)
    peft_config = lora_config(options.lora)
    config = DPOConfig(
        output_dir=str(run / "checkpoints"), num_train_epochs=options.epochs, max_steps=options.max_steps,
        learning_rate=options.lr, beta=options.beta, per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum, max_length=options.max_seq_len,
        gradient_checkpointing=options.gradient_checkpointing, logging_steps=options.logging_steps,
        save_strategy="no", eval_strategy="no", report_to="none", seed=options.seed, disable_tqdm=True,
        use_cpu=device().type == "cpu",
    )  # fmt: skip
    trainer = DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(train_pairs),
                         processing_class=tokenizer, peft_config=peft_config)  # fmt: skip
    model, result, seconds = train_and_merge(trainer, options.lora and options.merge_lora)
    after = (preference_metrics(model, reference_logps, tokenizer, test_pairs, options.beta, options.max_seq_len)[0]
             if test_pairs else None)  # fmt: skip
    summary = {
        **run_head("dpo", command, source, options, data, report),
        "split": {"test_fraction": options.test_split, "seed": options.seed, "train": len(train_pairs), "test": len(test_pairs),
                  "files": ["data/train.jsonl", "data/test.jsonl"]},  # fmt: skip
        "training": {"steps": result.global_step, "train_loss": round(result.training_loss, 4), "seconds": round(seconds, 1),
                     "device": device().type},  # fmt: skip
        "held_out_before": before,
        "held_out_after": after,
    }
    final = save_run(run, target, model, tokenizer, summary)
    shown = (f"held-out reward accuracy {after['reward_accuracy']}, margin {after['reward_margin']}" if after else "no held-out pairs")
    log(f"dpo: {result.global_step} steps in {seconds:.0f} s, train loss {result.training_loss:.4f}, {shown} -> {final}")
    return summary
