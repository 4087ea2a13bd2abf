"""`corpus mix`: the subcommand's arguments and how they become a dataset mix or an SFT mix."""

from __future__ import annotations

import os
import sys

from corpus.command_parser import parse_count
from corpus.errors import CorpusError


def cmd_mix(args) -> int:
    from pydantic import ValidationError

    from corpus.mix.plan import parse_weights

    options = {"budget_tokens": args.budget_tokens, "budget_docs": args.budget_docs, "by": args.by,
               "temperature": args.temperature, "max_epochs": args.max_epochs, "seed": args.seed,
               "strict": args.strict, "tokenizer": args.tokenizer, "estimate_sample": args.estimate_sample}  # fmt: skip
    if args.weights is not None:
        options["weights"] = parse_weights(args.weights)
    sft = args.format == "sft" or (args.format == "auto" and _all_sft_files(args.inputs))
    if sft:
        from corpus.mix.sft import SftMixConfig, mix_sft

        if args.estimate_sample is not None or args.by != "domain":
            raise CorpusError("--estimate-sample and --by apply to dataset folders; SFT inputs are grouped by file")
        options.pop("by")
        options.pop("estimate_sample")
        try:
            config = SftMixConfig(**options)
        except ValidationError as e:
            raise _mix_config_error(e) from None
        mix_sft(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
        return 0
    from corpus.cli import _executor
    from corpus.execution import run_stage
    from corpus.mix.stage import MixConfig, mix_job

    try:
        config = MixConfig(**options)
    except ValidationError as e:
        raise _mix_config_error(e) from None
    executor = _executor(args)
    job = mix_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config, args.output, executor, overwrite=args.overwrite)
    run_stage(job, args.output, executor, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def _mix_config_error(e) -> CorpusError:
    first = e.errors()[0]
    where = f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: " if first["loc"] else ""
    return CorpusError(where + first["msg"].removeprefix("Value error, ").replace("budget_", "--budget-").replace("estimate_sample", "--estimate-sample"))


def _all_sft_files(paths: list[str]) -> bool:
    return all(p.rpartition("=")[2].endswith((".json", ".jsonl")) for p in paths)


def add_mix_parser(sub) -> None:
    from corpus.cli import _executor_args

    p = sub.add_parser("mix", help="mix datasets (or SFT files) by domain/source ratio to a token or document budget")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders; or SFT files, NAME=FILE.jsonl or FILE.jsonl")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="a dataset folder; for SFT files, a .jsonl file")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-tokens", type=parse_count, metavar="N", help="tokens in the mix (e.g. 2M); needs --tokenizer")
    budget.add_argument("--budget-docs", type=parse_count, metavar="N", help="documents (SFT: rows) in the mix, repeats included")
    p.add_argument("--weights", help="group=weight,... (normalised), e.g. insurance=0.3,general=0.7")
    p.add_argument("--by", choices=["domain", "source"], default="domain", help="what --weights name (default domain)")
    p.add_argument("--temperature", type=float, help="without --weights: p_i ~ n_i^(1/T) from natural sizes (default 1)")
    p.add_argument("--max-epochs", type=float, default=4.0, help="most repeats of any source (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true", help="error, not warning, when a group cannot fill its share")
    p.add_argument("--tokenizer", metavar="TOKDIR", help="target tokenizer: exact token counts (n_tokens column)")
    p.add_argument("--estimate-sample", type=int, metavar="N",
                   help="with --tokenizer: count N sampled documents per group, estimate the rest from their size")
    p.add_argument("--format", choices=["auto", "dataset", "sft"], default="auto",
                   help="inputs are dataset folders or SFT JSON/JSONL files (auto: by name)")
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_mix)
