"""`train generate`, `train chat` (stdin) and `train eval`: perplexity per domain, SFT loss, side by side."""

from __future__ import annotations

import io
import json
import os
import math
from pathlib import Path

import pytest

from train.cli import main
from train.evaluate import TokenOverlapJudge, compare, elo_ratings, load_judge

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "sft"
GLOSSARY = REPO / "sample" / "insurance" / "healthcare-gov-2013" / "glossary"
TUTORIAL = REPO / "sample" / "general" / "python-3.11-docs" / "tutorial"


def length_judge(prompt: str, reference: str, answer: str) -> float:
    """A plug-in judge for the test: longer answers win."""
    return float(len(answer))


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    rows = [
        {"prompt": "What is a premium?", "reference": "The amount you pay for your health insurance every month."},
        {"messages": [{"role": "user", "content": "What is a deductible?"}, {"role": "assistant", "content": "What you pay before the plan pays."}]},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_token_overlap_f1():
    judge = TokenOverlapJudge()
    assert judge.score("q", "You pay a premium monthly", "you pay a premium monthly") == 1.0
    assert judge.score("q", "a b c d", "a b x y") == pytest.approx(0.5)
    assert judge.score("q", "a b", "") == 0.0


def test_side_by_side_win_rate_elo_and_worst_answers():
    prompts = [{"messages": [{"role": "user", "content": f"q{i}"}], "reference": "the premium is paid monthly"} for i in range(4)]
    answers = {
        "good": ["the premium is paid monthly", "premium paid monthly", "no idea", "the premium"],
        "bad": ["no", "premium", "no idea", "nothing"],
    }
    result = compare(answers, prompts, TokenOverlapJudge(), worst=2)
    pair = result["pairwise"][0]
    assert (pair["a_wins"], pair["ties"], pair["b_wins"]) == (3, 1, 0)
    assert pair["a_win_rate"] == 0.875
    assert list(result["elo"]) == ["good", "bad"] and result["elo"]["good"] > 1000 > result["elo"]["bad"]
    assert [w["answer"] for w in result["worst_answers"]["good"]] == ["no idea", "the premium"]


def test_elo_is_zero_sum_and_symmetric_for_ties():
    ratings = elo_ratings(["a", "b"], [("a", "b", 1.0), ("a", "b", 0.0)])
    assert ratings["a"] + ratings["b"] == pytest.approx(2000)
    assert elo_ratings(["a", "b"], [("a", "b", 0.5)]) == {"a": 1000.0, "b": 1000.0}


def test_a_judge_can_be_plugged_in():
    judge = load_judge("tests.test_eval:length_judge") if __package__ else load_judge(f"{__name__}:length_judge")
    assert judge.score("p", "r", "four") == 4.0


def test_generate_writes_one_answer_per_prompt(tmp_path, tiny_model, prompts_file):
    out = tmp_path / "answers.jsonl"
    assert main(["generate", str(tiny_model), "--prompts", str(prompts_file), "-o", str(out), "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["What is a premium?", "What is a deductible?"]
    assert rows[1]["reference"] == "What you pay before the plan pays." and all(isinstance(r["answer"], str) for r in rows)


def test_chat_reads_turns_from_stdin(tiny_model, monkeypatch):
    from train.generate import Generator, run_chat

    seen = []
    original = Generator.reply

    def spy(self, messages):
        seen.append([m["content"] for m in messages])
        return original(self, messages)

    monkeypatch.setattr(Generator, "reply", spy)
    stdout = io.StringIO()
    rc = run_chat(str(tiny_model), "Be brief.", 4, 0.0, stdin=io.StringIO("What is a premium?\nAnd coinsurance?\n/reset\nHello\n"), stdout=stdout)
    assert rc == 0
    lines = stdout.getvalue().splitlines()
    assert [line.split(">")[0] for line in lines] == ["assistant", "assistant", "(new conversation)", "assistant"]
    assert seen[1][:2] == ["Be brief.", "What is a premium?"] and seen[1][-1] == "And coinsurance?"  # history kept
    assert seen[2] == ["Be brief.", "Hello"]  # /reset forgot it


def test_bad_prompts_file_names_the_line(tmp_path, tiny_model, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": ""}\n')
    assert main(["generate", str(tiny_model), "--prompts", str(bad)]) == 2
    assert f"train: error: {bad}:2: prompt is empty" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tiny_model) -> Path:
    """The glossary and the Python tutorial tokenized by `corpus tokenize` with the tiny model's tokenizer."""
    from corpus.cli import main as corpus_main

    base = tmp_path_factory.mktemp("shards")
    assert corpus_main(["-q", "ingest", str(GLOSSARY), "-o", str(base / "ins"), "--source", "hc", "--domain", "insurance"]) == 0
    assert corpus_main(["-q", "ingest", str(TUTORIAL), "-o", str(base / "gen"), "--source", "py", "--domain", "general"]) == 0
    assert corpus_main(["-q", "tokenize", str(base / "ins"), str(base / "gen"), "-o", str(base / "shards"), "--tokenizer", str(tiny_model),
                        "--val-fraction", "0.1", "--min-val-docs-per-domain", "5"]) == 0  # fmt: skip
    return base / "shards"


@pytest.mark.slow
def test_eval_reports_perplexity_per_domain_sft_loss_and_side_by_side(tmp_path, tiny_model, shards, prompts_file, capsys):
    out = tmp_path / "report"
    rc = main(["eval", str(tiny_model), str(tiny_model), "--shards", str(shards), "--sft-test", str(FIXTURES / "alpaca_en_demo.json"),
               "--prompts", str(prompts_file), "--seq-len", "64", "--max-tokens", "2000", "--max-new-tokens", "4", "-o", str(out)])  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    name = Path(tiny_model).name
    ppl = report["perplexity"][name]
    assert set(ppl) == {"insurance", "general"}
    for v in ppl.values():
        assert v["tokens"] > 0 and v["perplexity"] == pytest.approx(math.exp(v["loss"]), rel=1e-3)
    sft = report["sft_test"][name]
    assert sft["examples"] + sft["skipped"] == 20 and sft["examples"] > 0  # truncated-away examples are counted
    sbs = report["side_by_side"]
    assert sbs["pairwise"][0]["ties"] == 2  # the same model twice, greedy: every answer ties
    assert "## Worst answers" in (out / "report.md").read_text()
    # the tiny model's lineage holds no decontamination against the prompts: said, not silent
    assert f"no `corpus decontaminate --against {prompts_file}`" in capsys.readouterr().err


def test_lineage_shows_which_eval_files_the_training_data_was_decontaminated_against(tmp_path):
    """model -> run.json -> shards card -> dataset cards -> a decontaminate card naming its eval sources."""
    from train.lineage import undecontaminated

    def card(folder: Path, stage: str, inputs: list[Path], config: dict | None = None) -> Path:
        folder.mkdir(parents=True)
        (folder / "card.json").write_text(json.dumps({"stage": stage, "config": config or {},
                                                      "inputs": [{"kind": "dataset", "path": os.path.relpath(i, folder)} for i in inputs]}))  # fmt: skip
        return folder

    held_out = tmp_path / "instruct"
    held_out.mkdir()
    (held_out / "test.jsonl").write_text(json.dumps({"prompt": "What is a premium?", "response": "The amount you pay each month."}) + "\n")
    same_items = tmp_path / "copy-of-test.jsonl"
    same_items.write_text((held_out / "test.jsonl").read_text())
    other = tmp_path / "other.txt"
    other.write_text("another eval set\n")
    ingest = card(tmp_path / "00-ingest", "ingest", [])
    from corpus.decontaminate import items_digest
    from corpus.decontaminate.items import read_eval_items

    decon = card(tmp_path / "01-decontaminate", "decontaminate", [ingest],
                 {"against": [str(held_out)], "against_digests": [items_digest(read_eval_items(held_out))]})  # fmt: skip
    shards = card(tmp_path / "02-tokenize", "tokenize", [decon])
    run = tmp_path / "pretrain"
    (run / "checkpoints" / "step-00000010").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": {"data": str(shards)}}))
    checkpoint = run / "checkpoints" / "step-00000010"
    assert undecontaminated(checkpoint, [str(held_out / "test.jsonl"), str(same_items), str(other)]) == [str(other)]
    (run / "run.json").write_text(json.dumps({"config": {"data": str(ingest)}}))  # trained before the decontamination
    assert undecontaminated(checkpoint, [str(held_out / "test.jsonl")]) == [str(held_out / "test.jsonl")]


def test_shards_of_another_tokenizer_are_refused(tmp_path, tiny_model, shards, capsys):
    index = json.loads((shards / "index.json").read_text())
    index["tokenizer"]["sha256"] = "0" * 64
    other = tmp_path / "other"
    other.mkdir()
    for f in shards.iterdir():
        if f.suffix == ".arrow":
            (other / f.name).symlink_to(f)
    (other / "index.json").write_text(json.dumps(index))
    assert main(["eval", str(tiny_model), "--shards", str(other)]) == 2
    assert "not the one the shards were made with" in capsys.readouterr().err


def test_eval_topics_and_batch_size_on_the_command_line(tmp_path, tiny_model, prompts_file, capsys):
    topics = tmp_path / "topics.yaml"
    topics.write_text("costs: [premium, deductible, coinsurance]\ncoverage: [cover, plan]\n")
    out = tmp_path / "report"
    assert main(["eval", str(tiny_model), str(tiny_model), "--prompts", str(prompts_file), "--topics", str(topics),
                 "--batch-size", "3", "--max-new-tokens", "2", "--worst", "1", "--repetition-penalty", "1.2", "-o", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["decoding"] == {"max_new_tokens": 2, "repetition_penalty": 1.2}  # said, as the judge is
    assert "judge: token-overlap F1; greedy, repetition penalty 1.2" in (out / "report.md").read_text()
    by_topic = report["side_by_side"]["by_topic"]
    assert sum(t["prompts"] for t in by_topic.values()) == len(prompts_file.read_text().splitlines())
    assert "## Error analysis by topic" in (out / "report.md").read_text()
    capsys.readouterr()
    topics.write_text("- just a list\n")
    assert main(["eval", str(tiny_model), str(tiny_model), "--prompts", str(prompts_file), "--topics", str(topics)]) == 2
    assert f"train: error: {topics}: --topics is a mapping of topic -> list of words" in capsys.readouterr().err
    assert main(["eval", str(tiny_model), str(tiny_model), "--prompts", str(prompts_file), "--batch-size", "0"]) == 2
    assert "--batch-size: must be at least 1, got 0" in capsys.readouterr().err


def test_chat_discourages_repetition_by_default_generate_does_not(tmp_path, tiny_model, monkeypatch, capsys):
    import train.generate as generate

    seen = {}
    monkeypatch.setattr(generate, "run_chat", lambda *a, **k: seen.setdefault("chat", k["repetition_penalty"]) and 0)
    monkeypatch.setattr(generate, "run_generate", lambda *a: seen.setdefault("generate", a[-1]) and 0)
    main(["chat", str(tiny_model)])
    main(["generate", str(tiny_model), "--prompts", str(tmp_path / "p.txt")])
    main(["chat", str(tiny_model), "--repetition-penalty", "1.3"])
    assert seen == {"chat": 1.1, "generate": 1.0}
    monkeypatch.undo()

    calls = []
    gen = generate.Generator.load(str(tiny_model), max_new_tokens=2, repetition_penalty=1.2)
    original = gen.model.generate
    gen.model.generate = lambda *a, **k: calls.append(k) or original(*a, **k)
    gen.reply([{"role": "user", "content": "Hi"}])
    assert calls[-1]["repetition_penalty"] == 1.2
    assert main(["chat", str(tiny_model), "--repetition-penalty", "0"]) == 2
    assert "--repetition-penalty: must be positive, got 0.0" in capsys.readouterr().err
