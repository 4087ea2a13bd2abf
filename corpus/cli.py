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


def cmd_dedup(args) -> int:
    from pydantic import ValidationError

    from corpus.dedup import DedupConfig, dedup_job
    from corpus.execution import run_stage

    try:
        config = DedupConfig(
            mode=args.mode,
            ngram=args.ngram,
            bands=args.bands,
            rows=args.rows,
            threshold=args.threshold,
            seed=args.seed,
            exact_normalisation=args.normalisation,
            source_priority=args.source_priority or [],
            quality_column=args.quality_column,
            against=[os.path.abspath(p) for p in args.against or []],
        )
    except ValidationError as e:
        first = e.errors()[0]
        raise CorpusError(f"--{'-'.join(map(str, first['loc']))}: {first['msg']}".replace("--: ", "")) from None
    job = dedup_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_run(args) -> int:
    from corpus.pipeline import run_pipeline

    written = run_pipeline(args.pipeline, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    if written:
        last = written[-1]
        print(f"output: {last}\ncard:   {last / 'README.md'} (and card.json)")
    return 0


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

    p = sub.add_parser("dedup", help="remove exact and near-duplicate documents (MinHash LSH)")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders (deduplicated together)")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--mode", choices=["exact", "minhash", "both"], default="both")
    p.add_argument("--ngram", type=int, default=5, help="words per shingle (default 5)")
    p.add_argument("--bands", type=int, default=14, help="LSH bands (default 14)")
    p.add_argument("--rows", type=int, default=8, help="permutations per band (default 8)")
    p.add_argument("--threshold", type=float, default=None,
                   help="verify candidates: keep a pair only if its estimated Jaccard is at least T (default: no check)")
    p.add_argument("--seed", type=int, default=1, help="seed of the MinHash permutations")
    p.add_argument("--normalisation", choices=["whitespace", "lowercase", "letters", "none"], default="whitespace",
                   help="what exact matching ignores (default: whitespace differences)")
    p.add_argument("--source-priority", nargs="+", metavar="SOURCE", help="keep these sources' copies first, in order")
    p.add_argument("--quality-column", help="numeric column: higher is kept first (before length)")
    p.add_argument("--against", action="append", metavar="DIR", help="dataset folder with a saved dedup index (repeatable)")
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("run", help="run a pipeline YAML (sources and stages)")
    p.add_argument("pipeline", metavar="PIPELINE.yaml")
    p.add_argument("--overwrite", action="store_true", help="redo stages whose output is already finished")
    p.set_defaults(func=cmd_run)
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
