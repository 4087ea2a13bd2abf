"""The stage registry: every stage declared once and found by name; a new stage is one new file
(the one docs/add-a-stage.md shows, run here); the engine does not import the trainer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from corpus.cli import main
from corpus.stages import STAGE_MODULES, stage
from tests.conftest import read_folder

REPO = Path(__file__).resolve().parents[1]


def test_import_corpus_pipeline_loads_neither_train_nor_torch():
    code = "import sys, corpus.pipeline; print(sorted({m.split('.')[0] for m in sys.modules} & {'train', 'torch', 'transformers'}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"


def test_a_pipeline_validates_only_the_stages_it_names():
    code = ("import sys; from corpus.pipeline import load_pipeline; load_pipeline('pipelines/quickstart.yaml'); "
            "print(sorted(m for m in sys.modules if m.startswith(('train', 'corpus.dedup', 'corpus.classify'))))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(STAGE_MODULES))
def test_every_listed_stage_is_declared_once_with_config_run_and_help(name):
    declared = stage(name)
    assert declared.name == name
    assert issubclass(declared.config, BaseModel) and declared.config.model_config.get("extra") == "forbid"
    assert callable(declared.run)
    assert declared.help and "\n" not in declared.help and len(declared.help) <= 100


def _guide_stage(tmp_path: Path, monkeypatch) -> None:
    """The stage file of docs/add-a-stage.md, importable as `keyword_stage` and listed in the registry."""
    text = (REPO / "docs" / "add-a-stage.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- stage example: begin -->\n```python\n(.*?)```\n<!-- stage example: end -->", text, re.S).group(1)
    (tmp_path / "keyword_stage.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(STAGE_MODULES, "keyword_filter", "keyword_stage")


def _pipeline(tmp_path: Path, options: str) -> str:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    texts = ["Our home policy covers fire and theft damage to the house.", "Win big at the Casino tonight with free spins.",
             "A lottery ticket is not insurance against anything at all.", "Claims are paid within thirty days of the report."]  # fmt: skip
    (docs / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(f"name: kw\noutput: out\nsources:\n  - {{path: docs, source: s, domain: d}}\n"
                    f"stages:\n  - ingest: {{}}\n  - keyword_filter: {options}\n", encoding="utf-8")  # fmt: skip
    return str(path)


def test_the_guides_stage_runs_in_a_pipeline_under_the_contract(tmp_path, monkeypatch, capsys):
    _guide_stage(tmp_path, monkeypatch)
    pipeline = _pipeline(tmp_path, "{words: [casino, lottery]}")
    assert main(["run", pipeline]) == 0
    out = tmp_path / "out" / "01-keyword_filter"
    kept, rejected = read_folder(out, "data"), read_folder(out, "rejected")
    assert sorted(kept["text"].str.slice(0, 5).to_list()) == ["Claim", "Our h"]
    assert sorted(rejected["text"].str.slice(0, 5).to_list()) == ["A lot", "Win b"]
    assert set(rejected["reason"].to_list()) == {"keyword"}
    accounting = json.loads((out / "card.json").read_text())["accounting"][-1]
    assert (accounting["docs_in"], accounting["kept"], accounting["rejected"]) == (4, 2, {"keyword": 2})
    capsys.readouterr()

    before = (out / "card.json").stat().st_mtime_ns
    assert main(["run", pipeline]) == 0  # the rerun: nothing to do
    assert "keyword_filter: " in capsys.readouterr().err and (out / "card.json").stat().st_mtime_ns == before
    assert main(["-q", "run", _pipeline(tmp_path, "{words: [casino]}")]) == 0  # other options: the pipeline's own folder is replaced
    assert len(read_folder(out, "rejected")) == 1


def test_the_guides_stage_options_are_checked_before_anything_runs(tmp_path, monkeypatch, capsys):
    _guide_stage(tmp_path, monkeypatch)
    pipeline = _pipeline(tmp_path, "{wrods: [casino]}")
    assert main(["-q", "run", pipeline]) == 2
    assert capsys.readouterr().err.strip() == f"corpus: error: {pipeline}: stages.1.keyword_filter.wrods: unknown key (and 1 more)"
    assert not (tmp_path / "out").exists()


def test_an_unknown_stage_is_one_line_naming_the_known_ones(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "d.jsonl").write_text(json.dumps({"text": "one two three"}) + "\n", encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text("name: t\noutput: out\nsources:\n  - {path: docs, source: s, domain: d}\n"
                    "stages:\n  - ingest: {}\n  - tokenizer: {vocab_size: 300}\n  - tokenize: {}\n  - unknown_stage: {}\n")  # fmt: skip
    assert main(["-q", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"corpus: error: {path}: stages: ") and "unknown stage 'unknown_stage'" in err and "\n" not in err


def test_a_pipeline_can_set_every_option_of_train_pretrain():
    from train.pretrain import PretrainConfig
    from train.stages import PretrainStageConfig

    from_the_pipeline = {"data", "tokenizer", "output", "resume", "quiet"}  # the stage's inputs, its folder, `resume auto`, -q
    assert set(PretrainConfig.model_fields) - set(PretrainStageConfig.model_fields) == from_the_pipeline


def test_corpus_stages_lists_the_registry_with_help_and_options(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from corpus.cli import cli

    _guide_stage(tmp_path, monkeypatch)
    result = CliRunner().invoke(cli, ["stages", "--options"])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if not line.startswith(" ")]
    assert names == list(STAGE_MODULES) and names[-1] == "keyword_filter"
    assert re.search(r"^keyword_filter +reject documents that hold any of the given words$", result.output, re.M)
    assert "    words: reject a document that holds any of these words (any case)" in result.output
