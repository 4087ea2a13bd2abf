"""The click command lines: options generated from the stages' configs, one-line errors, the
global flags anywhere, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from corpus.cli_options import ConfigCommand, config_from_options, config_options, load
from tests.conftest import REPO

# Config fields a command deliberately has no option for, and why.
EXCLUDED = {
    ("corpus", "filter"): {"sanitise", "langid", "quality"},  # nested sections: the --config YAML
    ("corpus", "crawl"): {"seeds"},  # the positional SEED arguments
    ("corpus", "ingest"): {"sources"},  # a pipeline's ingest of some of its sources; the command reads its PATHs
    ("corpus", "classifier", "train"): {"fasttext"},  # fastText's own parameters: YAML and Python
    ("train", "pretrain"): {"quiet"},  # the global -q/--quiet
    ("train", "ablate"): {"arms"},  # --arm NAME=DS,...
}


def _config_commands():
    from corpus.cli import cli as corpus_cli
    from train.cli import cli as train_cli

    def walk(group, path):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from walk(command, (*path, name))
            elif isinstance(command, ConfigCommand):
                yield (*path, name), command

    return [*walk(corpus_cli, ("corpus",)), *walk(train_cli, ("train",))]


def test_every_config_field_has_an_option_or_is_excluded_on_purpose():
    commands = dict(_config_commands())
    assert {("corpus", "dedup"), ("corpus", "mix"), ("corpus", "tokenizer", "train"), ("train", "pretrain"), ("train", "sft")} <= set(commands)
    for path, command in commands.items():
        fields = set(load(command.config).model_fields)
        options = {p.name for p in command.params}
        assert set(command.exclude) == EXCLUDED.get(path, set()), path
        assert fields - set(command.exclude) <= options, (path, fields - set(command.exclude) - options)


def test_generated_options_carry_the_configs_defaults_and_help():
    from corpus.cli import cli
    from corpus.dedup import DedupConfig

    params = {p.name: p for p in cli.commands["dedup"].params}
    for field in ("ngram", "bands", "rows", "seed", "mode"):
        info = DedupConfig.model_fields[field]
        assert params[field].default == info.default and params[field].help == info.description
        assert params[field].opts == ["--" + field]
    assert params["exact_normalisation"].opts == ["--normalisation"]  # today's name kept for the field
    assert "--no-verify" in params["verify"].secondary_opts
    assert list(params["mode"].type.choices) == ["exact", "minhash", "both"]  # Literal -> choices
    result = CliRunner().invoke(cli, ["dedup", "--help"])
    assert result.exit_code == 0
    assert "--quality-column" in result.output and "words per shingle" in result.output


def test_config_options_decorator_and_an_option_without_default_left_unset():
    from corpus.dedup import DedupConfig

    seen = {}

    @click.command()
    @config_options(DedupConfig, names={"exact_normalisation": "--normalisation"}, overrides={"threshold": {"default": None}})
    def dedup(**options):
        seen["config"] = config_from_options(DedupConfig, options)

    runner = CliRunner()
    assert runner.invoke(dedup, ["--ngram", "7", "--normalisation", "letters", "--mode", "exact"]).exit_code == 0
    assert "threshold" not in seen["config"].model_fields_set and seen["config"].threshold == 0.7  # the model's default
    assert "source_priority" not in seen["config"].model_fields_set  # a repeatable option not given
    assert (seen["config"].ngram, seen["config"].exact_normalisation) == (7, "letters")
    result = runner.invoke(dedup, ["--threshold", "1.5"])
    assert result.exit_code != 0 and "--threshold: Input should be less than or equal to 1" in str(result.exception)
    result = runner.invoke(dedup, ["--threshold", "0.8", "--mode", "exact"])  # a rule across fields: its own message
    assert str(result.exception).startswith("threshold applies to MinHash candidates")


def test_defaults_are_validated_as_a_yaml_stage_is(monkeypatch):
    """A float field whose default is written 512 is 512.0 from the CLI as from YAML (the same fingerprint)."""
    import corpus.cli

    seen = []

    def capture(args):
        from corpus.tokenize.train_tokenizer import TokenizerTrainConfig

        seen.append(config_from_options(TokenizerTrainConfig, args))
        return 0

    monkeypatch.setattr(corpus.cli, "cmd_tokenizer_train", capture)
    assert corpus.cli.main(["tokenizer", "train", "ds", "-o", "tok", "--vocab-size", "1000"]) == 0
    assert type(seen[0].sample_mb) is float and seen[0].domain_terms  # a list default not given stays the model's


@pytest.mark.parametrize("argv, line", [
    (["dedup", "in", "-o", "out", "--threshold", "1.5"], "corpus: error: --threshold: Input should be less than or equal to 1"),
    (["length-filter", "in", "-o", "out", "--min-chars", "-5"], "corpus: error: --min-chars: Input should be greater than or equal to 0"),
    (["mix", "in", "-o", "out"], "corpus: error: give exactly one of --budget-tokens and --budget-docs"),
    (["dedup", "in", "-o", "out", "--bogus"], "corpus: error: no such option '--bogus'"),
    (["dedup", "in", "-o", "out", "--mode", "fuzzy"], "corpus: error: invalid value for '--mode': 'fuzzy' is not one of"),
    (["dedup", "-o", "out"], "corpus: error: missing argument 'IN...'"),
    (["nosuch"], "corpus: error: no such command 'nosuch'"),
])  # fmt: skip
def test_bad_command_lines_are_one_line_exit_2(capsys, argv, line):
    from corpus.cli import main

    assert main(argv) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith(line), err


def test_train_bad_option_is_one_line(capsys):
    from train.cli import main

    assert main(["sft", "--model", "m", "--data", "d", "-o", "o", "--test-split", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: error: --test-split: "), err


def test_quiet_and_debug_after_nested_subcommands_reach_the_command(monkeypatch):
    import corpus.cli
    import train.cli
    from corpus.progress import QUIET_ENV, quiet

    monkeypatch.delenv(QUIET_ENV, raising=False)  # restored after the test
    seen = []
    monkeypatch.setattr(corpus.cli, "cmd_tokenizer_train", lambda args: seen.append(args) or 0)
    monkeypatch.setattr(train.cli, "cmd_sft", lambda args: seen.append(args) or 0)
    assert corpus.cli.main(["tokenizer", "train", "ds", "-o", "tok", "--vocab-size", "100", "-q"]) == 0
    assert corpus.cli.main(["--debug", "tokenizer", "train", "ds", "-o", "tok", "--vocab-size", "100"]) == 0
    assert train.cli.main(["sft", "--model", "m", "--data", "a", "b", "-o", "o", "--quiet"]) == 0
    assert [(a.quiet, a.debug) for a in seen] == [(True, False), (False, True), (True, False)]
    assert seen[0].vocab_size == 100 and seen[2].data == ["a", "b"]
    corpus.cli.main(["-q", "tokenizer", "train", "ds", "-o", "tok", "--vocab-size", "100"])
    assert quiet()
    corpus.cli.main(["tokenizer", "train", "ds", "-o", "tok", "--vocab-size", "100"])
    assert not quiet()


def test_an_option_with_several_values_stops_at_the_next_option():
    from corpus.cli import parse_args

    args = parse_args(["decontaminate", "in", "-o", "out", "--against", "e1", "e2", "--ngram", "8", "in2"])
    assert args.against == ["e1", "e2"] and args.ngram == 8 and args.inputs == ["in", "in2"]
    args = parse_args(["dedup", "in", "-o", "out", "--source-priority", "a", "b", "--against", "x", "--against", "y"])
    assert args.source_priority == ["a", "b"] and args.against == ["x", "y"]


def test_internal_error_one_line_unless_debug_and_ctrl_c(monkeypatch, capsys):
    import corpus.cli

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(corpus.cli, "cmd_filter", broken)
    assert corpus.cli.main(["filter", "in", "-o", "out"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "corpus: internal error: RuntimeError: a bug (rerun with --debug for the traceback)"]
    assert corpus.cli.main(["filter", "in", "-o", "out", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus.cli, "cmd_filter", interrupted)
    monkeypatch.setattr("signal.signal", lambda *a: None)
    assert corpus.cli.main(["filter", "in", "-o", "out"]) == 130
    assert capsys.readouterr().err.strip() == "corpus: interrupted; rerun the same command to resume"


def test_train_without_a_command_prints_help_and_version(capsys):
    from corpus import __version__
    from corpus.cli import main as corpus_main
    from train.cli import main

    assert main([]) == 0
    assert "pretrain" in capsys.readouterr().out
    assert corpus_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"corpus {__version__}"


@pytest.mark.parametrize("module, words, offered", [
    ("corpus.cli", "corpus fil", "filter"),
    ("corpus.cli", "corpus tokenizer tr", "train"),
    ("corpus.cli", "corpus dedup in --normal", "--normalisation"),
    ("train.cli", "train pre", "pretrain"),
])  # fmt: skip
def test_shell_completion(module, words, offered):
    prog = words.split()[0]
    env = {**os.environ, "PYTHONPATH": str(REPO), f"_{prog.upper()}_COMPLETE": "bash_complete",
           "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"plain,{offered}" in done.stdout.splitlines()


def test_completion_scripts_for_three_shells():
    for shell in ("bash", "zsh", "fish"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "_CORPUS_COMPLETE": f"{shell}_source"}
        done = subprocess.run([sys.executable, "-m", "corpus.cli"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "_CORPUS_COMPLETE" in done.stdout, (shell, done.stderr)


def test_help_imports_no_heavy_module():
    code = "import sys; from corpus.cli import main; main(['--help']); print(sorted(m for m in ('torch', 'pyarrow', 'datatrove') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
