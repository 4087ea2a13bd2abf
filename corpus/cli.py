"""The `corpus` command line (click). A stage's options are generated from its pydantic config
(corpus/cli_options.py), so the command, the YAML stage and the Python API cannot drift; heavy
modules (and the config modules that import them) load inside the commands, not at start-up."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import click

from corpus import __version__, lifetime
from corpus.cli_options import (
    ConfigCommand,
    FlagGroup,
    GreedyOption,
    Parsed,
    config_from_options,
    global_flags,
    internal_error,
    load,
    namespace,
    usage_line,
)
from corpus.errors import CorpusError

lifetime.install()  # in a helper process the command started (datatrove's fork server): die with it


def _byte_size(text: str) -> int:
    """64MiB, 1.5GB, 1000: a positive number of bytes."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        value = int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise click.BadParameter(f"not a size: {text!r} (e.g. 64MiB, 2GiB, 1000000)") from None
    if value <= 0:
        raise click.BadParameter(f"must be more than 0, got {text!r}")
    return value


def _executor(args):
    from corpus.executors import ExecutorConfig

    if args.tasks < 1:
        raise CorpusError(f"--tasks must be at least 1, got {args.tasks}")
    return ExecutorConfig(type=args.executor, tasks=args.tasks, workers=args.workers)


def cmd_ingest(args) -> int:
    from corpus.execution import run_stage
    from corpus.ingest import ingest_job
    from corpus.ingest.stage import IngestConfig

    sources = [{"paths": args.paths, "source": args.source, "domain": args.domain, "format": args.format, "text_key": args.text_key}]
    if args.follow_symlinks:
        sources[0]["follow_symlinks"] = True
    if args.split != "document":
        sources[0]["split"] = args.split
    config = config_from_options(IngestConfig, args)
    job = ingest_job(sources, args.name or os.path.basename(os.path.normpath(args.output)), html_timeout=config.html_timeout,
                     limits=config.limits(), document_timeout=config.document_timeout)  # fmt: skip
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_length_filter(args) -> int:
    from corpus.execution import run_stage
    from corpus.filter.length import LengthFilterConfig, length_filter_job

    config = config_from_options(LengthFilterConfig, args)
    job = length_filter_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_filter(args) -> int:
    from corpus.execution import run_stage
    from corpus.filter.config import load_filter_config
    from corpus.filter.stage import filter_job

    config = load_filter_config(args.config, profile=args.profile)
    job = filter_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def _lean_imports() -> None:
    """Two libraries the dedup command never uses, kept out of its start-up (half a second on 2 cores).

    - pyarrow imports pandas on its first conversion of any Python or numpy value, only to learn
      whether the value is a pandas object; corpus never passes one. Its one import attempt is made
      to fail, so it stops looking (`import pandas` and `to_pandas` still work afterwards).
    - numba imports scipy.linalg (for np.dot and np.linalg in compiled code) when its numpy support
      loads; no corpus kernel uses them, so that support loads without BLAS.
    """
    blocked = [name for name in ("pandas", "scipy.linalg") if name not in sys.modules]

    class Blocker:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in blocked):
                raise ModuleNotFoundError(f"{name} is not imported by corpus dedup", name=name)

    sys.meta_path.insert(0, Blocker)
    try:
        import numba.np.arraymath  # noqa: F401
        import pyarrow as pa

        pa.array([0])
    finally:
        sys.meta_path.remove(Blocker)


def cmd_dedup(args) -> int:
    from corpus.dedup import DedupConfig, dedup_job

    if args.executor == "local":
        _lean_imports()
    from corpus.execution import run_stage

    config = config_from_options(DedupConfig, args, extra={"against": [os.path.abspath(p) for p in args.against]})
    job = dedup_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_decontaminate(args) -> int:
    from corpus.decontaminate import DecontaminateConfig, decontaminate_job
    from corpus.execution import run_stage

    config = config_from_options(DecontaminateConfig, args, extra={"against": [os.path.abspath(p) for p in args.against]})
    job = decontaminate_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_classifier_train(args) -> int:
    from corpus.classify.train import ClassifierConfig, train_classifier

    config = config_from_options(ClassifierConfig, args)
    train_classifier(args.positive, args.negative, args.output, config, pool=args.pool or None, name=_output_name(args),
                     overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])  # fmt: skip
    return 0


def cmd_classify(args) -> int:
    from corpus.classify import ClassifyConfig, classify_job
    from corpus.execution import run_stage

    config = config_from_options(ClassifyConfig, args, extra={"model": os.path.abspath(args.model)})
    job = classify_job(args.inputs, os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_stages(args) -> int:
    """The stages a pipeline can name, from the registry: each with its one-line help and options."""
    from corpus.stages import STAGE_MODULES, stage

    for name in STAGE_MODULES:
        declared = stage(name)
        print(f"{name:<15} {declared.help}")
        if args.options:
            for field, info in declared.config.model_fields.items():
                print(f"    {field}: {info.description or ''}".rstrip(": "))
    return 0


def cmd_run(args) -> int:
    from corpus.pipeline import run_pipeline

    written = run_pipeline(args.pipeline, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    models = [p for p in written if (p / "config.json").is_file() and (p / "run.json").is_file()]  # tuned models (sft, dpo)
    if models:
        print(f"model:  {models[-1]} (a Hugging Face folder: train chat {models[-1]})")
    evals = [p for p in written if (p / "report.md").is_file() and (p / "report.json").is_file()]
    if evals and evals[-1] != written[-1]:
        print(f"report: {evals[-1] / 'report.md'}")
    if written:
        last = written[-1]
        if (last / "README.md").is_file():
            print(f"output: {last}\ncard:   {last / 'README.md'} (and card.json)")
        else:  # a run folder (pretrain, sft) or an evaluation: no data card
            print(f"output: {last}" + (f"\nreport: {last / 'report.md'}" if (last / "report.md").is_file() else ""))
    return 0


def cmd_card(args) -> int:
    from corpus.cards import commands

    if args.card_command == "show":
        commands.show(args.dataset)
    elif args.card_command == "html":
        print(commands.to_html(args.dataset, args.output))
    elif args.card_command == "diff":
        print("\n".join(commands.diff(args.a, args.b)))
    elif args.card_command == "lineage":
        print("\n".join(commands.lineage(args.dataset)))
    elif args.card_command == "validate":
        problems = commands.validate(args.dataset)
        for line in problems:
            print(line)
        if problems:
            print(f"corpus: {args.dataset}: {len(problems)} mismatch(es) between the card and the data", file=sys.stderr)
            return 1
        print(f"{args.dataset}: card matches the data")
    return 0


def cmd_crawl(args) -> int:
    from corpus.crawl import CrawlConfig, crawl

    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise CorpusError(f"--ca-bundle {args.ca_bundle}: no such file")
    config = config_from_options(CrawlConfig, args, extra={"seeds": list(args.seeds)})
    card = crawl(config, args.output, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]], name=args.name)
    print(f"output: {args.output}/warc (ingest it with: corpus ingest {args.output}/warc ...)\n"
          f"card:   {args.output}/README.md (and card.json); {card['stats']['pages_stored']} pages stored")
    return 0


def _output_name(args) -> str:
    return args.name or os.path.basename(os.path.normpath(args.output))


def _comma_list(text: str) -> list[str]:
    """`a, b,c` -> ["a", "b", "c"]."""
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_tokenizer_train(args) -> int:
    from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, train_tokenizer

    config = config_from_options(TokenizerTrainConfig, args)
    from corpus.tokenize.fingerprints import tokenizer_fingerprint

    # the pipeline's tokenizer stage computes the same: a rerun with the same inputs and options is up to date
    train_tokenizer(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                    name=_output_name(args), fingerprint=tokenizer_fingerprint(config.model_dump(), args.inputs))  # fmt: skip
    return 0


def cmd_tokenize(args) -> int:
    from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset

    config = config_from_options(TokenizeConfig, args)
    from corpus.tokenize.fingerprints import tokenize_fingerprint

    # the pipeline's tokenize stage computes the same: a rerun with the same inputs and options is up to date
    tokenize_dataset(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                     name=_output_name(args), fingerprint=tokenize_fingerprint(config.model_dump(), args.inputs),
                     executor=_executor(args))  # fmt: skip
    return 0


def cmd_shards_verify(args) -> int:
    from corpus.shard_format import verify_shards

    totals = verify_shards(args.folder)
    splits = ", ".join(f"{k} {v['docs']:,} documents / {v['tokens']:,} tokens in {v['shards']} shards" for k, v in totals["by_split"].items())
    print(f"{args.folder}: ok ({splits or 'no documents'})")
    return 0

def cmd_instruct(args) -> int:
    from corpus.instruct import InstructConfig, build_instructions

    config = config_from_options(InstructConfig, args)
    build_instructions(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                       name=_output_name(args))  # fmt: skip
    return 0


# ---------------------------------------------------------------- the commands


def _run(func_name: str, **fixed):
    """A command's callback: the parsed options, the global flags and `fixed` as one namespace for
    cmd_* (looked up when called)."""

    def callback(**options):
        from corpus.progress import set_quiet

        args = namespace(click.get_current_context(), options, **fixed)
        set_quiet(args.quiet)
        func = load(func_name) if ":" in func_name else globals()[func_name]
        return func(args)

    return callback


def _inputs(help: str = "dataset folders", name: str = "inputs", metavar: str = "IN...") -> click.Argument:
    return click.Argument([name], nargs=-1, required=True, metavar=metavar)


def _output(metavar: str = "OUT", help: str | None = None, required: bool = True) -> click.Option:
    return click.Option(["-o", "--output"], required=required, metavar=metavar, help=help)


def _name(help: str = "dataset name in the card (default: the output folder's name)") -> click.Option:
    return click.Option(["--name"], help=help)


def _overwrite(help: str = "replace an existing output folder") -> click.Option:
    return click.Option(["--overwrite"], is_flag=True, help=help)


def execution_options() -> list[click.Option]:
    """--tasks, --workers, --executor, --overwrite: how a datatrove stage runs."""
    return [
        click.Option(["--tasks"], type=int, default=1, show_default=True, help="datatrove tasks (output files are split by task)"),
        click.Option(["--workers"], type=int, default=-1, help="tasks run at once (default: min(tasks, CPUs))"),
        click.Option(["--executor"], type=click.Choice(["local", "ray"]), default="local", show_default=True, help="datatrove executor"),
        _overwrite(),
    ]


def _command(name: str, func: str, help: str, params: list, config: str | None = None, **generated) -> click.Command:
    if config is None:
        return click.Command(name, callback=_run(func), params=params, help=help, short_help=help)
    return ConfigCommand(name, callback=_run(func), params=params, help=help, short_help=help, config=config, **generated)


def _size(default: str, help: str) -> dict:
    return {"type": Parsed(_byte_size, "SIZE"), "default": default, "help": help}


@click.group("corpus", cls=FlagGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, "--version", prog_name="corpus", message="%(prog)s %(version)s")
@global_flags
def cli() -> None:
    """Build training corpora whose every dataset explains itself."""


cli.add_command(_command("ingest", "cmd_ingest", "read JSONL, Parquet, WARC/WET, HTML, Markdown, text, PDF or DOCX into a dataset folder", [
    click.Argument(["paths"], nargs=-1, required=True, metavar="PATH..."),
    _output(),
    click.Option(["--source"], required=True, help="source name written on every document"),
    click.Option(["--domain"], required=True, help="domain name written on every document"),
    click.Option(["--format"], default="auto", help="auto (by name, then content), jsonl, parquet, warc, txt, md, html, pdf, docx"),
    click.Option(["--text-key"], default="text", help="JSONL/Parquet field holding the text (default: text)"),
    _name(),
    click.Option(["--split"], type=click.Choice(["document", "page", "section"]), default="document",
                 help="PDF/DOCX: one document per file (default), per page or per section (at each heading)"),
    click.Option(["--follow-symlinks"], is_flag=True, help="read symlinks in a folder that lead outside it"),
    *execution_options(),
], config="corpus.ingest.stage:IngestConfig", exclude=("sources",),  # a pipeline's ingest of some of its sources
    overrides={"max_record_bytes": _size("64MiB", "a longer JSONL line, txt/md/html file or WARC record is rejected"),
               "max_decompressed_bytes": _size("32GiB", "most bytes read out of one .gz/.zst file"),
               "max_decompressed_ratio": {"metavar": "R", "help": "most decompressed/compressed bytes of one file, checked past 64MiB out"},
               "max_pages": {"metavar": "N"}}))  # fmt: skip

cli.add_command(_command("length-filter", "cmd_length_filter", "reject documents outside length bounds",
                         [_inputs(), _output(), _name(), *execution_options()], config="corpus.filter.length:LengthFilterConfig"))

cli.add_command(_command(
    "filter", "cmd_filter", "sanitise, identify languages, score and decide quality rules (profiles general, web-strict)",
    [_inputs(), _output(), click.Option(["--config"], metavar="FILE", help="filter YAML (profile, sanitise, langid, quality); default: built-in defaults"),
     _name(), *execution_options()],
    config="corpus.filter.config:FilterConfig", exclude=("sanitise", "langid", "quality"),  # the sections: set in --config's YAML
    overrides={"profile": {"default": None, "help": "the defaults: general (every kind of text; the default) or web-strict "
                                                    "(datatrove's web rules); over a --config's"}},
))  # fmt: skip

cli.add_command(_command(
    "dedup", "cmd_dedup", "remove exact and near-duplicate documents (MinHash LSH)",
    [_inputs(metavar="IN..."), _output(), _name(), *execution_options()],
    config="corpus.dedup:DedupConfig",
    names={"exact_normalisation": "--normalisation", "verify": "--verify/--no-verify"},
    overrides={"source_priority": {"greedy": True, "metavar": "SOURCE"}, "against": {"metavar": "DIR"},
               # unset unless given: a threshold given with --mode exact or --no-verify is an error
               "threshold": {"default": None, "help": "verification: a MinHash candidate pair links its documents only if the "
                                                      "Jaccard of their shingle sets is at least T (default 0.7)"},
               "exact_normalisation": {"help": "what exact matching ignores (default: whitespace differences)"}},
))  # fmt: skip

cli.add_command(_command(
    "decontaminate", "cmd_decontaminate", "drop (or redact) documents that hold evaluation items: word n-gram matching",
    [_inputs(), _output(), _name(), *execution_options()],
    config="corpus.decontaminate:DecontaminateConfig",
    overrides={"against": {"greedy": True, "required": True, "metavar": "EVAL"},
               "mode": {"help": "reject the document, or cut the matching spans out"}},
))  # fmt: skip

cli.add_command(_command("stages", "cmd_stages", "the stages a pipeline YAML can name, with their help", [
    click.Option(["--options"], is_flag=True, help="also each stage's options")]))

cli.add_command(_command("run", "cmd_run", "run a pipeline YAML (sources and stages)", [
    click.Argument(["pipeline"], metavar="PIPELINE.yaml"), _overwrite("redo stages whose output is already finished")]))


@cli.group("card", cls=FlagGroup)
def card() -> None:
    """data cards: show, html, diff, validate, lineage"""


def _card(name: str, help: str, params: list) -> None:
    card.add_command(click.Command(name, callback=_run("cmd_card", card_command=name), params=params, help=help, short_help=help))


_card("show", "a readable terminal view of a dataset's card", [click.Argument(["dataset"], metavar="DIR")])
_card("html", "one self-contained HTML file with the plots embedded",
      [click.Argument(["dataset"], metavar="DIR"), _output(metavar="FILE", help="HTML file to write (default: DIR/card.html)", required=False)])
_card("diff", "what changed between two datasets", [click.Argument(["a"], metavar="A"), click.Argument(["b"], metavar="B")])
_card("validate", "check the card against the data; exit code 1 on any mismatch", [click.Argument(["dataset"], metavar="DIR")])
_card("lineage", "the chain of datasets back to the raw sources", [click.Argument(["dataset"], metavar="DIR")])

cli.add_command(_command(
    "crawl", "cmd_crawl", "crawl websites politely into WARC files (read them with ingest)",
    [click.Argument(["seeds"], nargs=-1, metavar="[SEED]..."), _output(help="crawl folder; rerunning resumes it"),
     _name("crawl name in the card (default: the output folder's name)"), _overwrite("delete a crawl in OUT and start over")],
    config="corpus.crawl:CrawlConfig", exclude=("seeds",),  # the arguments
    names={"sitemaps": "--sitemap", "allow_domains": "--allow-domain", "allow_networks": "--allow-network",
           "content_types": "--content-type"},
    overrides={"sitemaps": {"metavar": "URL"}, "allow_domains": {"metavar": "D"}, "include": {"metavar": "RE"},
               "exclude": {"metavar": "RE"}, "allow_networks": {"metavar": "CIDR"}, "user_agent": {"metavar": "UA",
               "help": "User-Agent header, also matched against robots.txt"}, "ca_bundle": {"metavar": "PEM"},
               "connect_timeout": {"help": "seconds"}, "max_redirects": {"help": "redirects followed from one URL"}},
))  # fmt: skip


@cli.group("tokenizer", cls=FlagGroup)
def tokenizer() -> None:
    """train a domain tokenizer"""


tokenizer.add_command(_command(
    "train", "cmd_tokenizer_train", "train a byte-level BPE on dataset folders, sampled by domain ratio",
    [_inputs(), _output("TOKDIR"), _name(), _overwrite("replace an existing TOKDIR")],
    config="corpus.tokenize.train_tokenizer:TokenizerTrainConfig",
    names={"domain_terms": "--terms", "compare": "--compare/--no-compare"},
    overrides={"vocab_size": {"required": True}, "weights": {"type": Parsed("corpus.tokenize.train_tokenizer:parse_weights", "D=W,..."),
               "help": "domain shares of the training sample, e.g. insurance=0.5,general=0.5 (default: natural)"},
               "domain_terms": {"type": Parsed(_comma_list, "T,..."), "multiple": False, "default": None,
                                "help": "comma-separated domain terms to report (default: health-insurance terms)"},
               "extend": {"metavar": "EXISTING_TOKDIR"}},
))  # fmt: skip

cli.add_command(_command(
    "tokenize", "cmd_tokenize", "tokenize dataset folders into Arrow IPC token shards",
    [_inputs(), _output(), _name(), *execution_options()],
    config="corpus.tokenize.shards:TokenizeConfig", overrides={"tokenizer": {"metavar": "TOKDIR"}},
))


@cli.group("shards", cls=FlagGroup)
def shards() -> None:
    """token shards"""


shards.add_command(_command("verify", "cmd_shards_verify", "check shard checksums and counts against index.json (exit 1 if not)",
                            [click.Argument(["folder"], metavar="DIR")]))


def _mix_command() -> click.Command:
    from corpus.mix.cli import mix_command

    return mix_command(_command, [_inputs(help="dataset folders; or SFT files, NAME=FILE.jsonl or FILE.jsonl"),
                                  _output(help="a dataset folder; for SFT files, a .jsonl file"), _name(), *execution_options()])


cli.add_command(_mix_command())

cli.add_command(_command(
    "instruct", "cmd_instruct", "build instruction pairs (messages JSONL) from dataset folders by rules",
    [_inputs(), _output(), _name(), _overwrite("replace an existing OUT")],
    config="corpus.instruct:InstructConfig",
    overrides={"rules": {"type": Parsed(_comma_list, "R,..."), "multiple": False, "default": None,
                         "help": "comma-separated rules (default: all)"},
               "domains": {"type": Parsed(_comma_list, "D,..."), "multiple": False, "help": "comma-separated domains to read (default: all)"}},
))  # fmt: skip


@cli.group("classifier", cls=FlagGroup)
def classifier() -> None:
    """fastText domain and quality classifiers"""


classifier.add_command(_command(
    "train", "cmd_classifier_train", "train a classifier on positive and negative seeds (dataset folders, pairs, files)",
    [GreedyOption(["--positive"], required=True, metavar="DS",
                  help="positive seeds: dataset folders, `corpus instruct` or `train sft` folders, .json/.jsonl/.txt files"),
     GreedyOption(["--negative"], required=True, metavar="DS", help="negative seeds (the same kinds)"),
     _output("CLFDIR"), GreedyOption(["--pool"], metavar="DS", help="unlabelled documents for the recall rounds"),
     _name("classifier name (default: the folder's name); the score column is NAME_score"), _overwrite("replace an existing CLFDIR")],
    config="corpus.classify.train:ClassifierConfig", exclude=("fasttext",),  # fastText's own parameters: YAML and Python only
    names={"positive_domains": "--positive-domain", "negative_domains": "--negative-domain"},
    overrides={"positive_domains": {"metavar": "D"}, "negative_domains": {"metavar": "D"}},
))  # fmt: skip

cli.add_command(_command(
    "classify", "cmd_classify", "score documents with a classifier; keep those above a threshold or the top share",
    [_inputs(), _output(), *execution_options()],
    config="corpus.classify:ClassifyConfig", overrides={"model": {"metavar": "CLFDIR"}, "keep_top": {"metavar": "FRACTION"}},
))


def parse_args(argv: list[str]) -> SimpleNamespace:
    """The options a command line gives, without running the command (for tests and tools)."""
    from corpus.cli_options import parse_only

    return parse_only(cli, argv, "corpus", {"quiet": False, "debug": False})


def main(argv: list[str] | None = None) -> int:
    from corpus.cli_options import run_group

    flags = {"quiet": False, "debug": False}
    try:
        return run_group(cli, argv, "corpus", flags)
    except click.ClickException as e:  # bad usage: an unknown option, a missing argument, a bad value
        print(f"corpus: error: {usage_line(e)}", file=sys.stderr)
        return e.exit_code
    except CorpusError as e:
        print(f"corpus: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as e:  # a bug, not bad input: one line unless --debug
        return internal_error("corpus", e, flags["debug"])


def _interrupted() -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while this line is written changes nothing
    print("corpus: interrupted; rerun the same command to resume", file=sys.stderr)
    return 130


def entry() -> None:
    """The `corpus` command: main(), then a quick exit. Everything is written and closed by then;
    the interpreter's teardown would only unload modules (numba's compiled code takes a few tenths
    of a second), so atexit handlers run and output is flushed, then the process ends."""
    import signal

    lifetime.install(command=True)  # helper processes die with this one, even after kill -9
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C outside main's own handlers (while it printed an error, say)
        code = _interrupted()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done or abandoned: a late Ctrl-C only cuts the exit short
    lifetime.stop_helpers()
    import atexit
    import threading

    if threading.active_count() > 1:  # a thread still running: let the interpreter wait for it
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
