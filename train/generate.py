"""`train generate DIR --prompts FILE` and `train chat DIR`: replies through the model's chat template.

Generation stops at the template's end-of-turn marker as well as EOS (train.loading.end_of_turn_ids),
the same token `train sft` teaches the model to produce after each reply.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from train.errors import TrainError
from train.formats import SFT_SHAPES, RowError, detect_shape, iter_rows
from train.loading import (
    device,
    end_of_turn_ids,
    load_model,
    load_tokenizer,
    resolve_model,
)


@dataclass
class Generator:
    model: object
    tokenizer: object
    stop_ids: list[int]
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy, so runs are repeatable
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the prompt or reply
    max_prompt_tokens: int = 2048

    @classmethod
    def load(cls, path: str, **kwargs) -> Generator:
        source = resolve_model(path)
        tokenizer = load_tokenizer(source)
        model = load_model(source).to(device()).eval()
        return cls(model, tokenizer, end_of_turn_ids(tokenizer), **kwargs)

    def _prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        return ids[-self.max_prompt_tokens :]  # keep the end of a long history: the question is there

    def reply(self, messages: list[dict]) -> str:
        return self.replies([messages])[0]

    def replies(self, conversations: list[list[dict]], batch_size: int = 1) -> list[str]:
        """One reply per conversation. Batches are formed from prompts of similar length, padded on
        the left so every prompt ends where generation starts."""
        import torch

        prompts = [self._prompt_ids(m) for m in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        answers: list[str] = [""] * len(prompts)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in batch)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in batch], device=self.model.device)
            mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch], device=self.model.device)
            with torch.no_grad():
                out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                          eos_token_id=self.stop_ids, pad_token_id=pad, **sampling,
                                          **({"repetition_penalty": self.repetition_penalty} if self.repetition_penalty != 1.0 else {}))  # fmt: skip
            for row, i in enumerate(batch):
                answers[i] = self.tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
        return answers


def load_prompts(path: str | Path) -> list[dict]:
    """Prompts with optional reference answers: [{"messages": [...], "reference": str | None}].

    A .txt file holds one prompt a line. JSON/JSONL rows are `{"prompt": "..."}` or any SFT shape;
    a conversation's last assistant reply (or a completion) becomes the reference answer.
    """
    path = Path(path)
    if path.suffix == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise TrainError(f"{path}: cannot read: {e.strerror}") from None
        return [{"messages": [{"role": "user", "content": line.strip()}], "reference": None} for line in lines if line.strip()]
    prompts = []
    for line, row in iter_rows(path):
        try:
            if isinstance(row, RowError):
                raise row
            if isinstance(row, dict) and isinstance(row.get("prompt"), str) and "completion" not in row:
                if not row["prompt"].strip():
                    raise RowError("prompt is empty", "empty_field")
                prompts.append({"messages": [{"role": "user", "content": row["prompt"]}], "reference": row.get("reference")})
                continue
            example = SFT_SHAPES[detect_shape(row, SFT_SHAPES)][1](row)
        except RowError as e:
            raise TrainError(f"{path}:{line}: {e}") from None
        if "messages" in example:
            messages = example["messages"]
            last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
            prompts.append({"messages": messages[:last], "reference": messages[last]["content"]})
        elif "completion" in example:
            prompts.append({"messages": [{"role": "user", "content": example["prompt"]}], "reference": example["completion"]})
        else:
            raise TrainError(f"{path}:{line}: a plain-text row is not a prompt")
    if not prompts:
        raise TrainError(f"{path}: no prompts")
    return prompts


def run_generate(model_path: str, prompts_file: str, output: str | None, max_new_tokens: int, temperature: float,
                 repetition_penalty: float = 1.0) -> list[dict]:  # fmt: skip
    if repetition_penalty <= 0:
        raise TrainError(f"--repetition-penalty: must be positive, got {repetition_penalty}")
    prompts = load_prompts(prompts_file)
    generator = Generator.load(model_path, max_new_tokens=max_new_tokens, temperature=temperature, repetition_penalty=repetition_penalty)
    rows = []
    sink = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        for p in prompts:
            row = {"prompt": p["messages"][-1]["content"], "answer": generator.reply(p["messages"])}
            if p["reference"] is not None:
                row["reference"] = p["reference"]
            rows.append(row)
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            sink.flush()
    finally:
        if output:
            sink.close()
    return rows


CHAT_HELP = "Type a message; /reset starts a new conversation, /exit (or end of input) quits."


def run_chat(model_path: str, system: str | None, max_new_tokens: int, temperature: float,
             stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, repetition_penalty: float = 1.0) -> int:  # fmt: skip
    if repetition_penalty <= 0:
        raise TrainError(f"--repetition-penalty: must be positive, got {repetition_penalty}")
    generator = Generator.load(model_path, max_new_tokens=max_new_tokens, temperature=temperature, repetition_penalty=repetition_penalty)
    interactive = stdin.isatty()
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    if interactive:
        print(CHAT_HELP, file=sys.stderr)
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line or line.strip() == "/exit":
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history = list(start)
            print("(new conversation)", file=stdout, flush=True)
            continue
        history.append({"role": "user", "content": text})
        answer = generator.reply(history)
        history.append({"role": "assistant", "content": answer})
        print(f"assistant> {answer}", file=stdout, flush=True)
