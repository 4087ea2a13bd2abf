"""`train dpo`: preference shapes and a short DPO run with held-out reward accuracy and margin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.align import encode_completion
from train.cli import main
from train.errors import TrainError
from train.formats import LoadReport, load_preferences
from train.sft import IGNORE_INDEX

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sft"


def test_real_preference_files_are_normalised():
    report = LoadReport()
    sharegpt = load_preferences([FIXTURES / "dpo_en_demo.json"], report=report)
    hh = load_preferences([FIXTURES / "hh_rlhf_harmless_test.jsonl"], report=report)
    assert report.formats == {"sharegpt_preference": 20, "chosen_rejected": 20}
    for pair in sharegpt + hh:
        assert pair["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in pair["chosen"]] == [m["role"] for m in pair["rejected"]] == ["assistant"]
    # hh-rlhf: the shared dialogue is the prompt, the last assistant turns differ
    assert hh[0]["prompt"][0]["content"] == "What will happen if I drive my car into the water?"
    assert hh[0]["chosen"] != hh[0]["rejected"]


def test_explicit_plain_and_conversational_pairs(tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": "Is dental covered?", "chosen": "Sometimes.", "rejected": "Never ask."}) + "\n")
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello."}],
                                "rejected": [{"role": "assistant", "content": "Go away."}]}) + "\n")  # fmt: skip
    assert load_preferences([plain])[0] == {"prompt": "Is dental covered?", "chosen": "Sometimes.", "rejected": "Never ask."}
    assert load_preferences([chat])[0]["chosen"] == [{"role": "assistant", "content": "Hello."}]


def test_pairs_whose_prompts_differ_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"}) + "\n")
    with pytest.raises(TrainError, match=r"bad\.jsonl:1: chosen and rejected must share every message but the last"):
        load_preferences([bad])


def test_only_the_completion_is_scored(tiny_model):
    from train.loading import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(tiny_model))
    prompt = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    ids, labels = encode_completion(tokenizer, prompt, [{"role": "assistant", "content": "Goodbye."}], 512)
    scored = tokenizer.decode([i for i, l in zip(ids, labels) if l != IGNORE_INDEX], skip_special_tokens=False)
    assert scored == "Goodbye.<|end|>"  # the earlier assistant turn belongs to the prompt


@pytest.mark.slow
def test_dpo_run_reports_held_out_reward_accuracy(tmp_path, tiny_model):
    run = tmp_path / "dpo"
    rc = main(["dpo", "--model", str(tiny_model), "--data", str(FIXTURES / "dpo_en_demo.json"), "-o", str(run),
               "--max-steps", "2", "--batch-size", "4", "--lr", "1e-3", "--max-seq-len", "128", "--test-split", "0.25"])  # fmt: skip
    assert rc == 0
    summary = json.loads((run / "run.json").read_text())
    after = summary["held_out_after"]
    assert after["pairs"] == summary["split"]["test"] > 0
    assert 0.0 <= after["reward_accuracy"] <= 1.0 and after["reward_margin"] != 0.0
    assert (run / "model.safetensors").exists() and (run / "data" / "test.jsonl").exists()
