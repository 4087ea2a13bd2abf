"""The pieces of the insurance case on a real model: the `base_model` stage, a stage's own output
folder name (`folder:`), batched generation, and the eval report's topics and summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytest.importorskip("torch")


def _write(tmp_path, options, out=None, logs=None):
    from train.base_model import BaseModelStageConfig, write_base_model

    out = out or tmp_path / "06-base_model"
    return write_base_model(BaseModelStageConfig(**options), tmp_path, out, (logs if logs is not None else []).append)


def test_base_model_folder_is_a_plain_model_with_its_tokenizer(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from corpus.tokenize.train_tokenizer import is_tokenizer_folder
    from train.base_model import is_base_model_folder

    logs: list[str] = []
    out = _write(tmp_path, {"model": str(tiny_model)}, logs=logs)
    assert is_base_model_folder(out) and is_tokenizer_folder(out)  # mix and tokenize find its tokenizer
    card = json.loads((out / "card.json").read_text())
    assert card["architecture"] == "LlamaForCausalLM" and card["parameters"] > 0 and card["chat_template"]
    assert card["source"]["path"] == str(tiny_model.resolve()) and "config.json" in card["source"]["files"]
    model = AutoModelForCausalLM.from_pretrained(str(out))
    original = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    assert AutoTokenizer.from_pretrained(str(out)).chat_template
    assert "README.md" in {p.name for p in out.iterdir()} and "1 parameters" not in (out / "README.md").read_text()

    # the same source and options: left as it is
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    _write(tmp_path, {"model": str(tiny_model)}, logs=logs)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp and "up to date" in logs[-1]
    # other options: written again
    _write(tmp_path, {"model": str(tiny_model), "dtype": "bfloat16"}, logs=logs)
    assert json.loads((out / "card.json").read_text())["dtype"] == "bfloat16"
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    assert not out.with_name(out.name + ".partial").exists()


def test_base_model_bad_sources_are_one_line(tmp_path):
    from train.errors import TrainError

    with pytest.raises(TrainError, match=r"no-such-model: no such model folder or file .* not a Hugging Face id"):
        _write(tmp_path, {"model": "no-such-model"})
    # an id is read from the local Hugging Face cache only (HF_HUB_OFFLINE=1 in tests, as at run time)
    with pytest.raises(TrainError, match=r"nobody-here/no-such-model-4711: not in the local Hugging Face cache; .*hf download"):
        _write(tmp_path, {"model": "nobody-here/no-such-model-4711"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainError, match="empty: not a model folder"):
        _write(tmp_path, {"model": "empty"})
    assert not (tmp_path / "06-base_model").exists()


def _pipeline(tmp_path, stages) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "a.txt").write_text("text\n")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "output": "out", "sources": [{"path": "src", "source": "s", "domain": "d"}], "stages": stages}))
    return path


def test_stage_folder_names(tmp_path):
    from corpus.errors import CorpusError
    from corpus.pipeline import load_pipeline, stage_folders

    config, stages = load_pipeline(_pipeline(tmp_path, [{"ingest": {}}, {"dedup": {"folder": "unique"}}, {"length_filter": None}]))
    assert stage_folders(config) == ["00-ingest", "unique", "02-length_filter"]
    assert [kind for kind, _ in stages] == ["ingest", "dedup", "length_filter"]  # `folder` is not a stage option
    for bad, message in [("../x", "is not a folder name"), ("a/b", "is not a folder name"), ("", "is not a folder name"),
                         ("00-ingest", "already another stage's folder"), ("x.partial", "its own work folders")]:  # fmt: skip
        path = _pipeline(tmp_path, [{"ingest": {}}, {"dedup": {"folder": bad}}])
        with pytest.raises(CorpusError, match=rf"p.yaml: stages.1.dedup.folder: .*{message}"):
            load_pipeline(path)


def test_batched_generation_gives_the_answers_of_one_at_a_time(tiny_model, one_torch_thread):
    from train.generate import Generator

    import torch

    generator = Generator.load(str(tiny_model), max_new_tokens=8)
    with torch.no_grad():  # larger weights: the random model says something different to each prompt, not just EOS
        for p in generator.model.parameters():
            p.mul_(8)
    prompts = [[{"role": "user", "content": q}] for q in
               ["What is a deductible?", "Hi", "Explain the premium of a plan with a long question about many things", "Claims?"]]  # fmt: skip
    one_by_one = [generator.reply(p) for p in prompts]
    assert len(set(one_by_one)) == 4 and all(one_by_one)
    assert generator.replies(prompts, batch_size=3) == one_by_one
    assert generator.replies(prompts[::-1], batch_size=4) == one_by_one[::-1]  # answers come back in the prompts' order


def test_topics_and_summary_in_the_report():
    from train.evaluate import TokenOverlapJudge, compare, render_report, topic_of

    topics = {"claims": ["claim", "explanation of benefits"], "costs": ["premium", "cost"], "coverage": ["cover"]}
    assert topic_of({"messages": [{"content": "How do I file claims?"}], "reference": ""}, topics) == "claims"
    assert topic_of({"messages": [{"content": "What is it?"}], "reference": "The monthly premiums."}, topics) == "costs"
    assert topic_of({"messages": [{"content": "Read the Explanation of Benefits"}], "reference": None}, topics) == "claims"
    assert topic_of({"messages": [{"content": "Is dental covered?"}], "reference": "a claim"}, topics) == "coverage"  # the prompt first
    assert topic_of({"messages": [{"content": "Premium or cover?"}], "reference": ""}, topics) == "costs"  # then the first topic
    assert topic_of({"messages": [{"content": "Where is the office?"}], "reference": "Main street"}, topics) == "other"
    assert topic_of({"messages": [{"content": "A claimant?"}], "reference": ""}, topics) == "claims"  # claim + up to 3 letters
    assert topic_of({"messages": [{"content": "Proclaim it"}], "reference": ""}, topics) == "other"  # not inside a word
    assert topic_of({"messages": [{"content": "Costumes?"}], "reference": ""}, topics) == "other"  # nor 4 letters longer

    prompts = [{"messages": [{"role": "user", "content": q}], "reference": r} for q, r in [
        ("How do I file a claim?", "send the claim form to the insurer"), ("What does a premium cost?", "the monthly premium amount"),
        ("What is covered?", "preventive care is covered"), ("Where?", "main street office")]]  # fmt: skip
    answers = {"base": ["no idea", "the monthly premium amount", "nothing", "main"],
               "tuned": ["send the claim form to the insurer", "a premium", "preventive care is covered", "main street"]}  # fmt: skip
    result = compare(answers, prompts, TokenOverlapJudge(), worst=1, topics=topics)
    by_topic = result["by_topic"]
    assert list(by_topic) == ["claims", "costs", "coverage", "other"]
    assert by_topic["claims"]["versus"]["base"] == {"a_wins": 1, "ties": 0, "b_wins": 0, "a_win_rate": 1.0}
    assert by_topic["costs"]["versus"]["base"]["a_win_rate"] == 0.0
    assert by_topic["other"]["worst"][0]["answer"] == "main street"
    report = {"models": {"base": "b", "tuned": "t"}, "perplexity": {"base": {"insurance": {"tokens": 9, "loss": 2.0, "perplexity": 7.4}},
              "tuned": {"insurance": {"tokens": 9, "loss": 1.5, "perplexity": 4.5}}},
              "sft_test": {"base": {"examples": 4, "tokens": 9, "loss": 2.2, "perplexity": 9.0},
                           "tuned": {"examples": 4, "tokens": 9, "loss": 2.4, "perplexity": 11.0}}, "side_by_side": result}  # fmt: skip
    markdown = render_report(report)
    assert "- tuned beats base on 3 of 4 held-out prompts, loses 1, ties 0: win rate 0.75" in markdown
    assert "held-out insurance text: base 7.4 -> tuned 4.5 (lower)" in markdown
    assert "held-out answers: base 9.0 -> tuned 11.0 (NOT lower)" in markdown
    assert "| claims | 1 | 0.0 | 1.0 | 1.0 |" in markdown
    assert "### other: the 1 worst answers of tuned" in markdown


def test_insurance_gpu_pipeline_is_valid():
    from corpus.pipeline import load_pipeline, stage_folders

    config, stages = load_pipeline(REPO / "pipelines" / "insurance-gpu.yaml")
    kinds = [kind for kind, _ in stages]
    assert {"base_model", "pretrain", "sft", "eval"} <= set(kinds)
    options = dict(stages)
    assert "/" in options["base_model"].model and options["pretrain"].init_from == "base_model"
    assert options["pretrain"].device in ("auto", "cuda")
    assert "final-model" in stage_folders(config)


def test_eval_against_an_unknown_model_is_one_line(tmp_path):
    from corpus.errors import CorpusError
    from corpus.stages import StageRun, stage
    from train.stages import EvalStageConfig

    sft = tmp_path / "final-model"
    sft.mkdir()
    (sft / "run.json").write_text(json.dumps({"kind": "sft"}))
    with pytest.raises(CorpusError, match=r"p.yaml: eval: against: 'no_such_stage' is neither an earlier stage nor an existing model"):
        stage("eval").run(StageRun(kind="eval", index=2, options=EvalStageConfig(against=["no_such_stage"]), out=tmp_path / "eval",
                                   name="p/eval", written=[sft], pipeline=None, pipeline_file=tmp_path / "p.yaml", output=tmp_path))  # fmt: skip
    assert not (tmp_path / "eval").exists()
