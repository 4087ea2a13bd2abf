"""`corpus mix`: the command's options (generated from MixConfig) and how they become a dataset mix or an SFT mix."""

from __future__ import annotations

import os
import sys

import click

from corpus.errors import CorpusError


def cmd_mix(args) -> int:
    from corpus.cli_options import config_from_options

    sft = args.format == "sft" or (args.format == "auto" and _all_sft_files(args.inputs))
    if sft:
        from corpus.mix.sft import SftMixConfig, mix_sft

        if args.estimate_sample is not None or args.by != "domain":
            raise CorpusError("--estimate-sample and --by apply to dataset folders; SFT inputs are grouped by file")
        config = config_from_options(SftMixConfig, args, messages_name_options=True)
        mix_sft(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
        return 0
    from corpus.cli import _executor
    from corpus.execution import run_stage
    from corpus.mix.stage import MixConfig, mix_job

    config = config_from_options(MixConfig, args, messages_name_options=True)
    executor = _executor(args)
    job = mix_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config, args.output, executor, overwrite=args.overwrite)
    run_stage(job, args.output, executor, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def _all_sft_files(paths: list[str]) -> bool:
    return all(p.rpartition("=")[2].endswith((".json", ".jsonl")) for p in paths)


def mix_command(command, params: list) -> click.Command:
    """The `mix` command: `params` (inputs, output, name, execution) and MixConfig's options; the
    SFT mix takes the same options but --by and --estimate-sample."""
    from corpus.cli_options import Parsed

    count = {"type": Parsed("corpus.cli_options:parse_count", "N")}
    params = [*params, click.Option(["--format"], type=click.Choice(["auto", "dataset", "sft"]), default="auto", show_default=True,
                                    help="inputs are dataset folders or SFT JSON/JSONL files (auto: by name)")]  # fmt: skip
    return command(
        "mix", "corpus.mix.cli:cmd_mix", "mix datasets (or SFT files) by domain/source ratio to a token or document budget", params,
        config="corpus.mix.stage:MixConfig",
        overrides={"budget_tokens": {**count, "help": "tokens in the mix (e.g. 2M); needs --tokenizer"},
                   "budget_docs": {**count, "help": "documents (SFT: rows) in the mix, repeats included"},
                   "weights": {"type": Parsed("corpus.mix.plan:parse_weights", "G=W,..."),
                               "help": "group=weight,... (normalised), e.g. insurance=0.3,general=0.7"},
                   "by": {"help": "what --weights name (default domain)"}, "tokenizer": {"metavar": "TOKDIR"},
                   "estimate_sample": {"metavar": "N"}},
    )  # fmt: skip
