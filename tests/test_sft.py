"""`train sft`: formats, bad rows, labels token by token, packing without leaks, the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.cli import main
from train.errors import TrainError
from train.formats import LoadReport, load_sft, split_by_hash
from train.sft import IGNORE_INDEX, encode_example, prepare_for_training

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sft"


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from train.loading import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(tiny_model))


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- formats


def test_real_files_are_detected_and_normalised():
    report = LoadReport()
    alpaca = load_sft([FIXTURES / "alpaca_en_demo.json"], report=report)
    v1 = load_sft([FIXTURES / "v1_sft_demo.jsonl"], report=report)
    assert report.formats == {"alpaca": 20, "messages": 20}
    assert [m["role"] for m in alpaca[0]["messages"]] == ["user", "assistant"]
    # v1 content is a list of text parts; it becomes a plain string
    assert v1[0]["messages"][0] == {"role": "user", "content": "hi"}


def test_every_shape_becomes_a_normal_form(tmp_path):
    rows = {
        "sharegpt.jsonl": {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
        "messages.jsonl": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
        "pc.jsonl": {"prompt": "2+2=", "completion": " 4"},
        "pc_chat.jsonl": {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello."}]},
        "text.jsonl": {"text": "Plain text."},
    }  # fmt: skip
    out = {name: load_sft([_write(tmp_path / name, [row])])[0] for name, row in rows.items()}
    assert out["sharegpt.jsonl"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages.jsonl"] == out["pc_chat.jsonl"]
    assert out["pc.jsonl"] == {"prompt": "2+2=", "completion": " 4"}
    assert out["text.jsonl"] == {"text": "Plain text."}


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ('{"instruction": "Say hi", "output": 5}', "output must be a string"),
        ('{"conversations": [{"from": "robot", "value": "x"}]}', "conversations[0].from is 'robot'"),
        ('{"messages": [{"role": "user", "content": "only a question"}]}', "no assistant message"),
        ('{"instruction": "x", "output": "y"', "not valid JSON"),
        ('{"question": "x"}', "unknown row shape"),
    ],
)
def test_bad_row_is_an_error_naming_file_and_line(tmp_path, capsys, tiny_model, bad_row, message):
    good = json.dumps({"instruction": "Say hi", "output": "Hi."})
    data = _write(tmp_path / "data.jsonl", [good, good, bad_row])
    if "instruction" not in bad_row and "unknown" not in message:  # other shapes: a file of that shape
        first = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]} if "conversations" in bad_row \
            else {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
        data = _write(tmp_path / "data.jsonl", [first, first, bad_row])
    rc = main(["sft", "--model", str(tiny_model), "--data", str(data), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"train: error: {data}:3: ") and message in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_skip_invalid_counts_bad_rows(tmp_path):
    good = {"instruction": "Say hi", "output": "Hi."}
    data = _write(tmp_path / "d.jsonl", [good, '{"broken', {"instruction": "", "output": "x"}, good, {"text": "mixed"}])
    report = LoadReport()
    rows = load_sft([data], skip_invalid=True, report=report)
    assert len(rows) == 2
    assert report.skipped == {"invalid_json": 1, "empty_field": 1, "mixed_formats": 1}
    assert report.first_skipped[0].startswith(f"{data}:2: ")


def test_json_array_errors_name_the_line_of_the_element(tmp_path):
    data = tmp_path / "a.json"
    data.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a",\n   "output": ""}\n]\n')
    with pytest.raises(TrainError, match=r"a\.json:3: output is empty"):
        load_sft([data])


def test_split_is_deterministic_and_by_content():
    rows = load_sft([FIXTURES / "alpaca_en_demo.json", FIXTURES / "v1_sft_demo.jsonl"])
    train_a, test_a = split_by_hash(rows, 0.2)
    train_b, test_b = split_by_hash(list(reversed(rows)), 0.2)
    assert sorted(map(json.dumps, test_a)) == sorted(map(json.dumps, test_b))
    assert 0 < len(test_a) < len(rows) and len(train_a) + len(test_a) == len(rows)


# ---------------------------------------------------------------- labels, token by token


def _pieces(tokenizer, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """Expected ids and labels built independently: each piece tokenized alone, trained or not."""
    ids, labels = [], []
    for text, trained in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE_INDEX] * len(piece)
    return ids, labels


def test_conversation_labels_token_by_token(tokenizer):
    messages = [
        {"role": "system", "content": "You answer insurance questions."},
        {"role": "user", "content": "What is a deductible?"},
        {"role": "assistant", "content": "The amount you pay before your plan pays."},
        {"role": "user", "content": "And a premium?"},
        {"role": "assistant", "content": "What you pay each month."},
    ]
    got = encode_example(tokenizer, {"messages": messages}, max_seq_len=1024)
    expected_ids, expected_labels = _pieces(tokenizer, [
        ("<|begin_of_text|>", False),
        ("<|system|>\nYou answer insurance questions.<|end|>\n", False),
        ("<|user|>\nWhat is a deductible?<|end|>\n", False),
        ("<|assistant|>\n", False),
        ("The amount you pay before your plan pays.<|end|>", True),  # the reply and its end marker
        ("\n", False),
        ("<|user|>\nAnd a premium?<|end|>\n", False),
        ("<|assistant|>\n", False),
        ("What you pay each month.<|end|>", True),
        ("\n", False),
    ])  # fmt: skip
    assert got["input_ids"] == expected_ids
    assert got["labels"] == expected_labels
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    trained_ends = [i for i, (t, l) in enumerate(zip(got["input_ids"], got["labels"])) if t == end and l == end]
    assert len(trained_ends) == 2  # the model learns to stop after each reply, not after the prompts


def test_completion_and_text_labels(tokenizer):
    eos = tokenizer.eos_token_id
    got = encode_example(tokenizer, {"prompt": "Q: premium?\nA:", "completion": " monthly cost"}, 1024)
    prompt_ids = tokenizer("Q: premium?\nA:")["input_ids"]
    completion_ids = tokenizer(" monthly cost", add_special_tokens=False)["input_ids"]
    assert got["input_ids"] == prompt_ids + completion_ids + [eos]
    assert got["labels"] == [IGNORE_INDEX] * len(prompt_ids) + completion_ids + [eos]
    text = encode_example(tokenizer, {"text": "Coverage starts in January."}, 1024)
    assert text["labels"] == text["input_ids"] and text["input_ids"][-1] == eos


# ---------------------------------------------------------------- packing


def _loss(model, batch) -> float:
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
        logits = model(**inputs).logits
    labels = batch["labels"][:, 1:]
    return float(F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=IGNORE_INDEX))


def test_packed_loss_equals_unpacked_loss(tiny_model, tokenizer):
    """TRL's padding-free packing plus transformers' mask from position ids: no attention across samples."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = prepare_for_training(AutoModelForCausalLM.from_pretrained(str(tiny_model))).eval()
    torch.manual_seed(1)
    for p in model.parameters():  # a random model whose outputs depend strongly on context
        p.data.normal_(0, 0.5)
    rows = load_sft([FIXTURES / "alpaca_en_demo.json"])[:4]
    encoded = [encode_example(tokenizer, r, 256) for r in rows]
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(encoded)
    packed_row = {"input_ids": sum((e["input_ids"] for e in encoded), []), "labels": sum((e["labels"] for e in encoded), []),
                  "seq_lengths": [len(e["input_ids"]) for e in encoded]}  # fmt: skip
    packed = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)([packed_row])
    assert packed["input_ids"].shape[0] == 1 and (packed["position_ids"] == 0).sum() == 4
    unpacked_loss, packed_loss = _loss(model, padded), _loss(model, packed)
    assert packed_loss == pytest.approx(unpacked_loss, rel=1e-4)
    # Control: the same packed row with positions running on lets tokens see earlier samples.
    leaking = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1])[None])
    assert abs(_loss(model, leaking) - unpacked_loss) > 1e-3


# ---------------------------------------------------------------- the command


@pytest.mark.slow
def test_sft_lora_packed_run_writes_a_model_folder(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    rc = main(["sft", "--model", str(tiny_model), "--data", str(FIXTURES / "alpaca_en_demo.json"), str(FIXTURES / "v1_sft_demo.jsonl"),
               "-o", str(run), "--lora", "8,16", "--merge-lora", "--packing", "--max-steps", "3", "--batch-size", "4",
               "--lr", "1e-3", "--max-seq-len", "256", "--test-split", "0.2"])  # fmt: skip
    assert rc == 0
    summary = json.loads((run / "run.json").read_text())
    assert summary["read"]["formats"] == {"alpaca": 20, "messages": 20}
    assert summary["split"]["train"] + summary["split"]["test"] == 40 and summary["split"]["test"] > 0
    assert summary["training"]["steps"] == 3 and summary["test_after"]["tokens"] > 0
    test_rows = [json.loads(line) for line in (run / "data" / "test.jsonl").read_text().splitlines()]
    assert len(test_rows) == summary["split"]["test"]
    assert not (run / "adapter_config.json").exists()  # merged: a plain model folder
    AutoModelForCausalLM.from_pretrained(str(run))


@pytest.mark.slow
def test_sft_full_finetune_lowers_test_loss(tmp_path, tiny_model):
    run = tmp_path / "run"
    assert main(["sft", "--model", str(tiny_model), "--data", str(FIXTURES / "alpaca_en_demo.json"), "-o", str(run),
                 "--max-steps", "5", "--batch-size", "4", "--lr", "3e-3", "--max-seq-len", "128"]) == 0  # fmt: skip
    summary = json.loads((run / "run.json").read_text())
    assert summary["test_after"]["loss"] < summary["test_before"]["loss"]
