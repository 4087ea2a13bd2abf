"""The `corpus` command line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from corpus import __version__
from corpus.errors import CorpusError


def _executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--tasks", type=int, default=1, help="datatrove tasks (output files are split by task)")
    g.add_argument("--workers", type=int, default=-1, help="tasks run at once (default: min(tasks, CPUs))")
    g.add_argument("--executor", choices=["local", "ray"], default="local", help="datatrove executor")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def _executor(args):
    from corpus.execution import ExecutorConfig

    if args.tasks < 1:
        raise CorpusError(f"--tasks must be at least 1, got {args.tasks}")
    return ExecutorConfig(type=args.executor, tasks=args.tasks, workers=args.workers)


def cmd_ingest(args) -> int:
    from corpus.execution import run_stage
    from corpus.ingest import ingest_job

    sources = [{"paths": args.paths, "source": args.source, "domain": args.domain, "format": args.format, "text_key": args.text_key}]
    job = ingest_job(sources, args.name or os.path.basename(os.path.normpath(args.output)), html_timeout=args.html_timeout)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_length_filter(args) -> int:
    from corpus.execution import run_stage
    from corpus.filter.length import LengthFilterConfig, length_filter_job

    try:
        config = LengthFilterConfig(min_chars=args.min_chars, max_chars=args.max_chars, min_words=args.min_words)
    except ValueError as e:
        raise CorpusError(" ".join(str(e).split("\n")[1:2]).strip() or str(e)) from None
    job = length_filter_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_run(args) -> int:
    from corpus.pipeline import run_pipeline

    written = run_pipeline(args.pipeline, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    if written:
        last = written[-1]
        print(f"output: {last}\ncard:   {last / 'README.md'} (and card.json)")
    return 0


def _output_name(args) -> str:
    return args.name or os.path.basename(os.path.normpath(args.output))


def _config_error(e) -> CorpusError:
    first = e.errors()[0]
    return CorpusError(f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: {first['msg']}")


def cmd_tokenizer_train(args) -> int:
    from pydantic import ValidationError

    from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, parse_weights, train_tokenizer

    options = {"vocab_size": args.vocab_size, "weights": parse_weights(args.weights), "sample_mb": args.sample_mb,
               "min_frequency": args.min_frequency, "general_domain": args.general_domain, "seed": args.seed,
               "compare": not args.no_compare, "extend": args.extend}  # fmt: skip
    if args.terms:
        options["domain_terms"] = [t.strip() for t in args.terms.split(",") if t.strip()]
    try:
        config = TokenizerTrainConfig(**options)
    except ValidationError as e:
        raise _config_error(e) from None
    train_tokenizer(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                    name=_output_name(args))  # fmt: skip
    return 0


def cmd_tokenize(args) -> int:
    from pydantic import ValidationError

    from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset

    try:
        config = TokenizeConfig(
            tokenizer=args.tokenizer, val_fraction=args.val_fraction, min_val_docs_per_domain=args.min_val_docs_per_domain,
            shard_size_mb=args.shard_size_mb, bos=args.bos, seed=args.seed, dtype=args.dtype, batch_mb=args.batch_mb,
        )  # fmt: skip
    except ValidationError as e:
        raise _config_error(e) from None
    tokenize_dataset(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                     name=_output_name(args))  # fmt: skip
    return 0


def cmd_shards_verify(args) -> int:
    from corpus.tokenize.verify import verify_shards

    totals = verify_shards(args.folder)
    splits = ", ".join(f"{k} {v['docs']:,} documents / {v['tokens']:,} tokens in {v['shards']} shards" for k, v in totals["by_split"].items())
    print(f"{args.folder}: ok ({splits})")
    return 0


def cmd_instruct(args) -> int:
    from pydantic import ValidationError

    from corpus.instruct import InstructConfig, build_instructions

    options = {"min_answer_chars": args.min_answer_chars, "max_answer_chars": args.max_answer_chars}
    if args.rules:
        options["rules"] = [r.strip() for r in args.rules.split(",") if r.strip()]
    if args.domains:
        options["domains"] = [d.strip() for d in args.domains.split(",") if d.strip()]
    try:
        config = InstructConfig(**options)
    except ValidationError as e:
        raise _config_error(e) from None
    build_instructions(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                       name=_output_name(args))  # fmt: skip
    return 0


def _instruct_parser(sub) -> None:
    from corpus.instruct import RULES

    p = sub.add_parser("instruct", help="build instruction pairs (messages JSONL) from dataset folders by rules")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--rules", help=f"comma-separated rules (default: all of {','.join(RULES)})")
    p.add_argument("--domains", help="comma-separated domains to read (default: all)")
    p.add_argument("--min-answer-chars", type=int, default=20)
    p.add_argument("--max-answer-chars", type=int, default=6000)
    p.add_argument("--name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=cmd_instruct)


def _tokenize_parsers(sub) -> None:
    p = sub.add_parser("tokenizer", help="train a domain tokenizer")
    tok_sub = p.add_subparsers(dest="tokenizer_command", required=True, metavar="ACTION")
    p = tok_sub.add_parser("train", help="train a byte-level BPE on dataset folders, sampled by domain ratio")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="TOKDIR")
    p.add_argument("--vocab-size", type=int, required=True, help="tokens, special tokens included")
    p.add_argument("--weights", help="domain shares of the training sample, e.g. insurance=0.5,general=0.5 (default: natural)")
    p.add_argument("--sample-mb", type=float, default=512, help="most text to train on (default 512)")
    p.add_argument("--min-frequency", type=int, default=2)
    p.add_argument("--general-domain", default="general", help="domain of the general-only comparison tokenizer")
    p.add_argument("--no-compare", action="store_true", help="skip the comparison tokenizer in the report")
    p.add_argument("--terms", help="comma-separated domain terms to report (default: health-insurance terms)")
    p.add_argument("--extend", metavar="EXISTING_TOKDIR", help="add domain merges to this tokenizer instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing TOKDIR")
    p.set_defaults(func=cmd_tokenizer_train)

    p = sub.add_parser("tokenize", help="tokenize dataset folders into Arrow IPC token shards")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--tokenizer", required=True, metavar="TOKDIR")
    p.add_argument("--val-fraction", type=float, default=0.01)
    p.add_argument("--min-val-docs-per-domain", type=int, default=10)
    p.add_argument("--shard-size-mb", type=float, default=256, help="target token bytes per shard")
    p.add_argument("--bos", action="store_true", help="start every document with BOS (EOS always ends it)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed")
    p.add_argument("--dtype", choices=["auto", "uint16", "uint32"], default="auto")
    p.add_argument("--batch-mb", type=float, default=2, help="text per encode_batch call")
    p.add_argument("--name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("shards", help="token shards")
    shards_sub = p.add_subparsers(dest="shards_command", required=True, metavar="ACTION")
    p = shards_sub.add_parser("verify", help="check shard checksums and counts against index.json (exit 1 if not)")
    p.add_argument("folder", metavar="DIR")
    p.set_defaults(func=cmd_shards_verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corpus", description="Build training corpora whose every dataset explains itself.")
    parser.add_argument("--version", action="version", version=f"corpus {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="read JSONL, Parquet, WARC/WET, HTML, Markdown or text into a dataset folder")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--source", required=True, help="source name written on every document")
    p.add_argument("--domain", required=True, help="domain name written on every document")
    p.add_argument("--format", default="auto", help="auto (by name, then content), jsonl, parquet, warc, txt, md, html")
    p.add_argument("--text-key", default="text", help="JSONL/Parquet field holding the text (default: text)")
    p.add_argument("--name", help="dataset name in the card (default: the output folder's name)")
    p.add_argument("--html-timeout", type=float, default=30.0, help="seconds allowed per HTML page")
    _executor_args(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("length-filter", help="reject documents outside length bounds")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--min-chars", type=int, default=0)
    p.add_argument("--max-chars", type=int, default=None)
    p.add_argument("--min-words", type=int, default=0)
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_length_filter)

    p = sub.add_parser("run", help="run a pipeline YAML (sources and stages)")
    p.add_argument("pipeline", metavar="PIPELINE.yaml")
    p.add_argument("--overwrite", action="store_true", help="redo stages whose output is already finished")
    p.set_defaults(func=cmd_run)
    _tokenize_parsers(sub)
    _instruct_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from corpus.progress import set_quiet

    args = build_parser().parse_args(argv)
    set_quiet(args.quiet)
    try:
        return args.func(args)
    except CorpusError as e:
        print(f"corpus: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("corpus: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"corpus: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
