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


def cmd_filter(args) -> int:
    from corpus.execution import run_stage
    from corpus.filter.config import load_filter_config
    from corpus.filter.stage import filter_job

    config = load_filter_config(args.config)
    job = filter_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
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

    p = sub.add_parser("filter", help="sanitise, identify languages, score and apply Gopher/C4/FineWeb quality rules")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--config", metavar="FILE", help="filter YAML (sanitise, langid, quality); default: built-in defaults")
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_filter)

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
