"""Every kind of output keeps the same rerun contract (corpus.outputs): the same command again is up
to date (exit 0, the folder untouched); another option is refused in one line without --overwrite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from corpus.cli import main as corpus_main
from tests.conftest import FIXTURES, GLOSSARY, TUTORIAL

SFT = FIXTURES / "sft"
SMALL_PRETRAIN = ["--preset", "tiny", "--seq-len", "32", "--batch-size", "4", "--warmup-steps", "1", "--log-every", "1",
                  "--eval-windows", "4", "--eval-every", "0", "--no-tensorboard", "--max-steps", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Two small dataset folders, a tokenizer trained on them and their token shards."""
    base = tmp_path_factory.mktemp("rerun")
    ins, py, tok, shards = base / "ins", base / "py", base / "tok", base / "shards"
    assert corpus_main(["-q", "ingest", str(GLOSSARY), "-o", str(ins), "--source", "hc", "--domain", "insurance"]) == 0
    assert corpus_main(["-q", "ingest", str(TUTORIAL), "-o", str(py), "--source", "py", "--domain", "general"]) == 0
    assert corpus_main(["-q", "tokenizer", "train", str(ins), str(py), "-o", str(tok), "--vocab-size", "600", "--no-compare"]) == 0
    assert corpus_main(["-q", "tokenize", str(ins), str(py), "-o", str(shards), "--tokenizer", str(tok),
                        "--min-val-docs-per-domain", "2"]) == 0  # fmt: skip
    return {"ins": ins, "py": py, "tok": tok, "shards": shards}


def _corpus(args: list[str]) -> int:
    return corpus_main(args)


def _train(args: list[str]) -> int:
    from train.cli import main

    return main(args)


# kind -> (the command's entry point, its arguments before -o OUT, after, another option, what the
# up-to-date line names the stage); {ins} {py} {tok} {shards} {model} are filled in
KINDS = {
    "dataset stage": (_corpus, ["length-filter", "{ins}"], ["--min-chars", "50"], ["--min-chars", "60"], "length_filter"),
    "tokenizer": (_corpus, ["tokenizer", "train", "{ins}", "{py}"], ["--vocab-size", "500", "--no-compare"], ["--seed", "1"], "tokenizer"),
    "tokenize": (_corpus, ["tokenize", "{ins}"], ["--tokenizer", "{tok}", "--min-val-docs-per-domain", "1"], ["--seed", "1"], "tokenize"),
    "instruct": (_corpus, ["instruct", "{ins}"], [], ["--min-answer-chars", "30"], "instruct"),
    "classifier": (_corpus, ["classifier", "train", "--positive", "{ins}", "--negative", "{py}"], [], ["--seed", "1"], "classifier"),
    "sft mix": (_corpus, ["mix", f"a={SFT / 'v1_sft_demo_head30.jsonl'}", f"b={SFT / 'v1_sft_demo.jsonl'}"], ["--budget-docs", "40"],
                ["--seed", "1"], "mix"),
    "train sft run": (_train, ["sft", "--model", "{model}", "--data", str(SFT / "alpaca_en_demo_head40.json")],
                      ["--max-steps", "1", "--batch-size", "2", "--max-seq-len", "64"], ["--seed", "1"], "sft"),
    "train eval report": (_train, ["eval", "{model}", "{model}", "--prompts", str(SFT / "v1_sft_demo_head30.jsonl")],
                          ["--max-new-tokens", "3", "--batch-size", "16"], ["--max-new-tokens", "4"], "eval"),
}


def _state(out: Path) -> dict[str, tuple[int, str]]:
    """Every file under OUT (or OUT itself, a file) with its mtime and sha256."""
    files = [out] if out.is_file() else sorted(p for p in out.rglob("*") if p.is_file())
    return {str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_rerun_is_up_to_date_and_another_option_needs_overwrite(kind, inputs, tmp_path, capsys, request):
    run, head, tail, other, stage = KINDS[kind]
    names = {k: str(v) for k, v in inputs.items()}
    if "{model}" in head:
        names["model"] = str(request.getfixturevalue("tiny_model"))
    out = tmp_path / ("out.jsonl" if kind == "sft mix" else "out")
    args = [a.format(**names) for a in head] + ["-o", str(out)] + [a.format(**names) for a in tail]

    assert run(args) == 0
    before = _state(out)
    capsys.readouterr()
    assert run(args) == 0
    err = capsys.readouterr().err
    assert f"{stage}: {out} is up to date (same " in err and "; nothing to do" in err, err
    assert _state(out) == before

    assert run([*args, *other]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{out}: was made by another configuration; pass --overwrite to replace it" in err, err
    assert _state(out) == before


def test_a_finished_pretrain_run_is_up_to_date_and_resume_keeps_its_meaning(inputs, tmp_path, capsys):
    """`train pretrain` writes its run in place: the same command again is up to date; --time-limit
    (when an invocation stops) is not part of what the run is; --resume auto of a finished run, and
    another option without --resume, are the errors they always were."""
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(inputs["shards"]), "--tokenizer", str(inputs["tok"]), "-o", str(out), *SMALL_PRETRAIN]
    assert _train(args) == 0
    assert json.loads((out / "run.json").read_text())["fingerprint"]
    before = _state(out)
    capsys.readouterr()
    assert _train([*args, "--time-limit", "5"]) == 0
    assert f"pretrain: {out} is up to date (same inputs and config); nothing to do" in capsys.readouterr().err
    assert _state(out) == before
    assert _train([*args, "--resume", "auto"]) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert _train([*args, "--seed", "1"]) == 2
    assert "pass --resume auto" in capsys.readouterr().err
    assert _state(out) == before


def test_an_input_made_again_the_same_way_leaves_what_was_made_from_it_up_to_date(tmp_path, capsys):
    """A dataset counts by its fingerprint, not by its card's hash (which covers when the card was
    written): an input made again from the same inputs and config, at another time, leaves the
    stages after it up to date, and the same pipeline run again makes the same part files."""
    from corpus.outputs import card_hash

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "d.jsonl").write_text("".join(json.dumps({"text": f"document number {i} " * 20}) + "\n" for i in range(20)))
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\noutput: out\nsources:\n  - {path: docs, source: s, domain: d}\n"
                        "stages:\n  - ingest: {}\n  - length_filter: {min_chars: 10}\n  - dedup: {}\n"
                        "  - tokenizer: {vocab_size: 300, compare: false}\n")  # fmt: skip
    assert corpus_main(["-q", "run", str(pipeline)]) == 0
    for made_again in ("00-ingest", "02-dedup"):  # as if made again, at another time
        card_file = tmp_path / "out" / made_again / "card.json"
        card = json.loads(card_file.read_text())
        card["created"] = "2000-01-01T00:00:00+00:00"
        card["card_sha256"] = card_hash(card)
        card_file.write_text(json.dumps(card))
    later = [tmp_path / "out" / name for name in ("01-length_filter", "03-tokenizer")]  # made from them
    before = {str(p): _state(p) for p in later}
    capsys.readouterr()
    assert corpus_main(["run", str(pipeline)]) == 0
    err = capsys.readouterr().err
    assert "length_filter: " in err and "tokenizer: " in err and err.count("is up to date") == 4, err
    assert {str(p): _state(p) for p in later} == before
