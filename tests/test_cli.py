"""The command line as a user meets it: exit codes and one-line errors that name the culprit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, SAMPLE, read_folder, run_cli


def _one_line_error(proc, *needles: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("corpus: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_ingest_cli_end_to_end(small_corpus, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("ingest", str(small_corpus / "insurance"), str(FIXTURES / "warc"), "-o", str(out),
                   "--source", "hc", "--domain", "insurance", "--tasks", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "INFO" not in proc.stderr  # the pool workers' task logs go to their log files only
    card = json.loads((out / "card.json").read_text())
    acc = card["accounting"][-1]
    assert acc["docs_in"] == read_folder(out).height + read_folder(out, "rejected").height
    assert card["command"][:3] == ["corpus", "--quiet", "ingest"]


def test_missing_path_exit_2(tmp_path):
    proc = run_cli("ingest", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o"), "--source", "s", "--domain", "d")
    assert proc.returncode == 2
    _one_line_error(proc, "nowhere", "no such file")


def test_unreadable_path_exit_2(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    path = tmp_path / "secret.jsonl"
    path.write_text('{"text": "x"}\n')
    path.chmod(0)
    proc = run_cli("ingest", str(path), "-o", str(tmp_path / "o"), "--source", "s", "--domain", "d")
    assert proc.returncode == 2
    _one_line_error(proc, "secret.jsonl")


def test_unknown_format_exit_2(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01\x02")
    proc = run_cli("ingest", str(path), "-o", str(tmp_path / "o"), "--source", "s", "--domain", "d")
    assert proc.returncode == 2
    _one_line_error(proc, "blob.bin", "unknown format")


def test_existing_output_is_never_replaced_unless_ours(small_corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "something.txt").write_text("mine")
    args = ("ingest", str(small_corpus / "general"), "-o", str(out), "--source", "s", "--domain", "d")
    proc = run_cli(*args)
    assert proc.returncode == 2
    _one_line_error(proc, str(out), "not made by corpus")
    assert "--overwrite" not in proc.stderr  # the flag would not help: it is not offered
    proc = run_cli(*args, "--overwrite")
    assert proc.returncode == 2
    _one_line_error(proc, str(out), "not made by corpus")
    assert (out / "something.txt").read_text() == "mine"
    assert run_cli(*args[:3], str(tmp_path / "new"), *args[4:]).returncode == 0
    proc = run_cli(*args[:3], str(tmp_path / "new"), *args[4:], "--source", "t")  # another config: ours to replace
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert run_cli(*args[:3], str(tmp_path / "new"), *args[4:], "--source", "t", "--overwrite").returncode == 0


def _pipeline(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(body)
    return path


GOOD = """
name: mini
output: out
executor: {type: local, tasks: 2}
sources:
  - {path: corpus/insurance, source: hc, domain: insurance}
  - {path: corpus/general, source: py, domain: general}
stages:
  - ingest: {}
  - length_filter: {min_chars: 300}
"""


def test_run_pipeline(small_corpus, tmp_path):
    shutil.copytree(small_corpus, tmp_path / "corpus", dirs_exist_ok=True)
    path = _pipeline(tmp_path, GOOD)
    proc = run_cli("run", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "01-length_filter" in proc.stdout
    final = tmp_path / "out" / "01-length_filter"
    card = json.loads((final / "card.json").read_text())
    assert [a["stage"] for a in card["accounting"]] == ["ingest", "length_filter"]
    assert (final / card["pipeline_file"]).resolve() == path.resolve()
    # a rerun finds everything finished
    proc = run_cli("run", str(path))
    assert proc.returncode == 0
    assert json.loads((final / "card.json").read_text())["created"] == card["created"]


@pytest.mark.parametrize(
    "body,needles",
    [
        (GOOD.replace("min_chars", "min_char"), ["stages.1.length_filter.min_char", "unknown key"]),
        (GOOD.replace("name: mini", "name: mini\nouptut: x"), ["ouptut", "unknown key"]),
        (GOOD.replace("length_filter:", "lenght_filter:"), ["unknown stage 'lenght_filter'"]),
        (GOOD.replace("tasks: 2", "tasks: two"), ["executor.tasks"]),
        (GOOD.replace("domain: general}", "domain: general, format: xlsx}"), ["sources.1.format"]),
        (GOOD.replace("  - ingest: {}\n", ""), ["first stage must be 'ingest'"]),
        ("name: [unclosed\n", ["line", "not valid YAML"]),
        ("- just\n- a list\n", ["a pipeline is a YAML mapping"]),
    ],
)
def test_bad_pipeline_yaml_names_key_and_file(tmp_path, body, needles):
    path = _pipeline(tmp_path, body)
    proc = run_cli("run", str(path))
    assert proc.returncode == 2
    _one_line_error(proc, str(path), *needles)


def test_missing_pipeline_file(tmp_path):
    proc = run_cli("run", str(tmp_path / "none.yaml"))
    assert proc.returncode == 2
    _one_line_error(proc, "none.yaml")


def test_pipeline_source_path_missing(tmp_path):
    path = _pipeline(tmp_path, GOOD)
    proc = run_cli("run", str(path))
    assert proc.returncode == 2
    _one_line_error(proc, "corpus/insurance", "no such file")


@pytest.mark.slow
def test_quickstart_pipeline_on_the_bundled_sample(tmp_path):
    """The demo's pipeline, run from a copy so the repository's out/ is untouched."""
    shutil.copytree(SAMPLE, tmp_path / "sample")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(SAMPLE.parent / "pipelines" / "quickstart.yaml", tmp_path / "pipelines")
    proc = run_cli("run", str(tmp_path / "pipelines" / "quickstart.yaml"))
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "out" / "quickstart" / "01-length_filter" / "card.json").read_text())
    ingest = card["accounting"][0]
    assert ingest["docs_in"] > 1000
    assert card["stats"]["by_domain"].keys() == {"general", "insurance"}
    skipped = json.loads((tmp_path / "out" / "quickstart" / "00-ingest" / "card.json").read_text())["stage_facts"]
    assert {s["reason"] for s in skipped["skipped_files"]} == {"unknown_format"}  # the Jekyll .yml files


@pytest.mark.parametrize("prog, argv, quiet, debug", [
    ("corpus", ["tokenizer", "train", "ds", "-o", "tok", "--vocab-size", "100", "-q"], True, False),  # after a nested subcommand
    ("corpus", ["-q", "card", "show", "ds", "--debug"], True, True),  # before the command and after the nested one
    ("corpus", ["shards", "verify", "x"], False, False),
    ("train", ["sft", "--model", "m", "--data", "d", "-o", "o", "--quiet"], True, False),
    ("train", ["--debug", "pretrain", "--data", "d", "--tokenizer", "t", "-o", "o"], False, True),
])  # fmt: skip
def test_quiet_and_debug_before_or_after_any_subcommand(prog, argv, quiet, debug):
    if prog == "corpus":
        from corpus.cli import parse_args
    else:
        from train.cli import parse_args
    args = parse_args(argv)
    assert (args.quiet, args.debug) == (quiet, debug)
