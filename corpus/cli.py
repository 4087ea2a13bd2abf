"""The `corpus` command line."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from corpus import __version__, lifetime
from corpus.errors import CorpusError

lifetime.install()  # in a helper process the command started (datatrove's fork server): die with it


def _executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--tasks", type=int, default=1, help="datatrove tasks (output files are split by task)")
    g.add_argument("--workers", type=int, default=-1, help="tasks run at once (default: min(tasks, CPUs))")
    g.add_argument("--executor", choices=["local", "ray"], default="local", help="datatrove executor")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def _byte_size(text: str) -> int:
    """64MiB, 1.5GB, 1000: a positive number of bytes."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        value = int(TypeAdapter(ByteSize).validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB, 2GiB, 1000000)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _executor(args):
    from corpus.executors import ExecutorConfig

    if args.tasks < 1:
        raise CorpusError(f"--tasks must be at least 1, got {args.tasks}")
    return ExecutorConfig(type=args.executor, tasks=args.tasks, workers=args.workers)


def cmd_ingest(args) -> int:
    from corpus.execution import run_stage
    from corpus.ingest import IngestLimits, ingest_job

    sources = [{"paths": args.paths, "source": args.source, "domain": args.domain, "format": args.format, "text_key": args.text_key}]
    if args.follow_symlinks:
        sources[0]["follow_symlinks"] = True
    if args.split != "document":
        sources[0]["split"] = args.split
    if args.document_timeout <= 0:
        raise CorpusError(f"--document-timeout must be more than 0, got {args.document_timeout:g}")
    if args.max_pages < 1:
        raise CorpusError(f"--max-pages must be at least 1, got {args.max_pages}")
    if args.max_decompressed_ratio <= 1:
        raise CorpusError(f"--max-decompressed-ratio must be more than 1, got {args.max_decompressed_ratio:g}")
    limits = IngestLimits(max_record_bytes=args.max_record_bytes, max_decompressed_bytes=args.max_decompressed_bytes,
                          max_decompressed_ratio=args.max_decompressed_ratio, max_pages=args.max_pages)  # fmt: skip
    job = ingest_job(sources, args.name or os.path.basename(os.path.normpath(args.output)), html_timeout=args.html_timeout,
                     limits=limits, document_timeout=args.document_timeout)  # fmt: skip
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
    from pydantic import ValidationError

    from corpus.dedup import DedupConfig, dedup_job

    if args.executor == "local":
        _lean_imports()
    from corpus.execution import run_stage

    try:
        config = DedupConfig(
            mode=args.mode,
            ngram=args.ngram,
            bands=args.bands,
            rows=args.rows,
            verify=args.verify,
            **({} if args.threshold is None else {"threshold": args.threshold}),
            seed=args.seed,
            exact_normalisation=args.normalisation,
            source_priority=args.source_priority or [],
            quality_column=args.quality_column,
            against=[os.path.abspath(p) for p in args.against or []],
        )
    except ValidationError as e:
        raise _config_error(e) from None
    job = dedup_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_decontaminate(args) -> int:
    from pydantic import ValidationError

    from corpus.decontaminate import DecontaminateConfig, decontaminate_job
    from corpus.execution import run_stage

    try:
        config = DecontaminateConfig(against=[os.path.abspath(p) for p in args.against], ngram=args.ngram,
                                     min_words=args.min_words, mode=args.mode)  # fmt: skip
    except ValidationError as e:
        raise _config_error(e) from None
    job = decontaminate_job(args.inputs, args.name or os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def cmd_classifier_train(args) -> int:
    from pydantic import ValidationError

    from corpus.classify.train import ClassifierConfig, train_classifier

    try:
        config = ClassifierConfig(holdout=args.holdout, seed=args.seed, min_precision=args.min_precision, rounds=args.rounds,
                                  round_threshold=args.round_threshold, positive_domains=args.positive_domain or [],
                                  negative_domains=args.negative_domain or [])  # fmt: skip
    except ValidationError as e:
        raise _config_error(e) from None
    train_classifier(args.positive, args.negative, args.output, config, pool=args.pool, name=_output_name(args),
                     overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])  # fmt: skip
    return 0


def cmd_classify(args) -> int:
    from pydantic import ValidationError

    from corpus.classify import ClassifyConfig, classify_job
    from corpus.execution import run_stage

    try:
        config = ClassifyConfig(model=os.path.abspath(args.model), name=args.name, threshold=args.threshold,
                                keep_top=args.keep_top, score_only=args.score_only)  # fmt: skip
    except ValidationError as e:
        raise _config_error(e) from None
    job = classify_job(args.inputs, os.path.basename(os.path.normpath(args.output)), config)
    run_stage(job, args.output, _executor(args), overwrite=args.overwrite, command=["corpus", *sys.argv[1:]])
    return 0


def _classify_parsers(sub) -> None:
    p = sub.add_parser("classifier", help="fastText domain and quality classifiers")
    clf_sub = p.add_subparsers(dest="classifier_command", required=True, metavar="ACTION")
    p = clf_sub.add_parser("train", help="train a classifier on positive and negative seeds (dataset folders, pairs, files)")
    p.add_argument("--positive", required=True, nargs="+", metavar="DS",
                   help="positive seeds: dataset folders, `corpus instruct` or `train sft` folders, .json/.jsonl/.txt files")
    p.add_argument("--negative", required=True, nargs="+", metavar="DS", help="negative seeds (the same kinds)")
    p.add_argument("-o", "--output", required=True, metavar="CLFDIR")
    p.add_argument("--positive-domain", action="append", metavar="D", help="read only this domain of positive dataset folders (repeatable)")
    p.add_argument("--negative-domain", action="append", metavar="D", help="read only this domain of negative dataset folders (repeatable)")
    p.add_argument("--holdout", type=float, default=0.1, help="share of each class held out for the threshold and metrics (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-precision", type=float, default=None,
                   help="threshold: the lowest reaching this held-out precision (default: best F1)")
    p.add_argument("--rounds", type=int, default=0, help="recall rounds: add confidently positive --pool documents and retrain")
    p.add_argument("--pool", nargs="+", metavar="DS", help="unlabelled documents for the recall rounds")
    p.add_argument("--round-threshold", type=float, default=0.9, help="score a pool document needs to join the positives (default 0.9)")
    p.add_argument("--name", help="classifier name (default: the folder's name); the score column is NAME_score")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CLFDIR")
    p.set_defaults(func=cmd_classifier_train)

    p = sub.add_parser("classify", help="score documents with a classifier; keep those above a threshold or the top share")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--model", required=True, metavar="CLFDIR", help="a folder made by `corpus classifier train`")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument("--threshold", type=float, help="keep documents scoring at least T (default: the classifier's own)")
    cut.add_argument("--keep-top", type=float, metavar="FRACTION", help="keep this share of documents, the best scored")
    p.add_argument("--score-only", action="store_true", help="keep every document; only add the score column")
    p.add_argument("--name", help="the score column is NAME_score and the reason NAME_below_threshold (default: the classifier's name)")
    _executor_args(p)
    p.set_defaults(func=cmd_classify)


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
    from pydantic import ValidationError

    from corpus.crawl import CrawlConfig, crawl

    options = {k: v for k, v in vars(args).items() if k in CrawlConfig.model_fields and v is not None}
    options["seeds"], options["sitemaps"] = args.seeds, args.sitemap or []
    options["allow_domains"], options["allow_networks"] = args.allow_domain or [], args.allow_network or []
    options["include"], options["exclude"] = args.include or [], args.exclude or []
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise CorpusError(f"--ca-bundle {args.ca_bundle}: no such file")
    try:
        config = CrawlConfig(**options)
    except ValidationError as e:
        first = e.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "crawl"
        raise CorpusError(f"{flag}: {first['msg']}") from None
    card = crawl(config, args.output, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]], name=args.name)
    print(f"output: {args.output}/warc (ingest it with: corpus ingest {args.output}/warc ...)\n"
          f"card:   {args.output}/README.md (and card.json); {card['stats']['pages_stored']} pages stored")
    return 0


def _output_name(args) -> str:
    return args.name or os.path.basename(os.path.normpath(args.output))


def _config_error(e) -> CorpusError:
    """A config's first validation error as one line: the option, or for a rule across options
    (a model validator, which has no field) the rule's own message."""
    first = e.errors()[0]
    msg = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        return CorpusError(msg)
    return CorpusError(f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: {msg}")


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
    from corpus.tokenize.fingerprints import tokenizer_fingerprint

    # the pipeline's tokenizer stage computes the same: a rerun with the same inputs and options is up to date
    train_tokenizer(args.inputs, args.output, config, overwrite=args.overwrite, command=["corpus", *sys.argv[1:]],
                    name=_output_name(args), fingerprint=tokenizer_fingerprint(config.model_dump(), args.inputs))  # fmt: skip
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
    from pydantic import ValidationError

    from corpus.instruct import InstructConfig, build_instructions

    options = {"min_answer_chars": args.min_answer_chars, "max_answer_chars": args.max_answer_chars, "test_split": args.test_split}
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
    from corpus.instruct_rules import RULES

    p = sub.add_parser("instruct", help="build instruction pairs (messages JSONL) from dataset folders by rules")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--rules", help=f"comma-separated rules (default: all of {','.join(RULES)})")
    p.add_argument("--domains", help="comma-separated domains to read (default: all)")
    p.add_argument("--min-answer-chars", type=int, default=20)
    p.add_argument("--max-answer-chars", type=int, default=6000)
    p.add_argument("--test-split", type=float, default=0.0,
                   help="hold out this share of pairs in test.jsonl (train.jsonl: the rest, minus pairs sharing a 13-gram with a test pair)")
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
    _executor_args(p)
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("shards", help="token shards")
    shards_sub = p.add_subparsers(dest="shards_command", required=True, metavar="ACTION")
    p = shards_sub.add_parser("verify", help="check shard checksums and counts against index.json (exit 1 if not)")
    p.add_argument("folder", metavar="DIR")
    p.set_defaults(func=cmd_shards_verify)


def build_parser() -> argparse.ArgumentParser:
    from corpus.command_parser import CommandParser

    parser = CommandParser(prog="corpus", description="Build training corpora whose every dataset explains itself.", global_flags=True)
    parser.add_argument("--version", action="version", version=f"corpus {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="read JSONL, Parquet, WARC/WET, HTML, Markdown, text, PDF or DOCX into a dataset folder")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--source", required=True, help="source name written on every document")
    p.add_argument("--domain", required=True, help="domain name written on every document")
    p.add_argument("--format", default="auto", help="auto (by name, then content), jsonl, parquet, warc, txt, md, html, pdf, docx")
    p.add_argument("--text-key", default="text", help="JSONL/Parquet field holding the text (default: text)")
    p.add_argument("--name", help="dataset name in the card (default: the output folder's name)")
    p.add_argument("--html-timeout", type=float, default=30.0, help="seconds allowed per HTML page")
    p.add_argument("--document-timeout", type=float, default=300.0, help="seconds allowed per PDF or DOCX file")
    p.add_argument("--split", choices=("document", "page", "section"), default="document",
                   help="PDF/DOCX: one document per file (default), per page or per section (at each heading)")
    g = p.add_argument_group("limits (docs/ingest.md, Limits)")
    g.add_argument("--max-record-bytes", type=_byte_size, default="64MiB", metavar="SIZE",
                   help="a longer JSONL line, txt/md/html file or WARC record is rejected (default 64MiB)")
    g.add_argument("--max-decompressed-bytes", type=_byte_size, default="32GiB", metavar="SIZE",
                   help="most bytes read out of one .gz/.zst file (default 32GiB)")
    g.add_argument("--max-decompressed-ratio", type=float, default=100.0, metavar="R",
                   help="most decompressed/compressed bytes of one file, checked past 64MiB out (default 100)")
    g.add_argument("--max-pages", type=int, default=5000, metavar="N", help="a PDF with more pages is rejected (default 5000)")
    g.add_argument("--follow-symlinks", action="store_true", help="read symlinks in a folder that lead outside it")
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

    p = sub.add_parser("card", help="data cards: show, html, diff, validate, lineage")
    card_sub = p.add_subparsers(dest="card_command", required=True, metavar="CARD_COMMAND")
    c = card_sub.add_parser("show", help="a readable terminal view of a dataset's card")
    c.add_argument("dataset", metavar="DIR")
    c = card_sub.add_parser("html", help="one self-contained HTML file with the plots embedded")
    c.add_argument("dataset", metavar="DIR")
    c.add_argument("-o", "--output", help="HTML file to write (default: DIR/card.html)")
    c = card_sub.add_parser("diff", help="what changed between two datasets")
    c.add_argument("a", metavar="A")
    c.add_argument("b", metavar="B")
    c = card_sub.add_parser("validate", help="check the card against the data; exit code 1 on any mismatch")
    c.add_argument("dataset", metavar="DIR")
    c = card_sub.add_parser("lineage", help="the chain of datasets back to the raw sources")
    c.add_argument("dataset", metavar="DIR")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("crawl", help="crawl websites politely into WARC files (read them with ingest)")
    p.add_argument("seeds", nargs="*", metavar="SEED", help="start URLs (http or https)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="crawl folder; rerunning resumes it")
    p.add_argument("--sitemap", action="append", metavar="URL", help="sitemap or sitemap index (repeatable)")
    p.add_argument("--allow-domain", action="append", metavar="D", help="also crawl host D and its subdomains (repeatable)")
    p.add_argument("--include", action="append", metavar="RE", help="follow only URLs matching one of these (repeatable)")
    p.add_argument("--exclude", action="append", metavar="RE", help="never follow URLs matching this (repeatable)")
    p.add_argument("--max-depth", type=int, help="links followed from a seed (default 5)")
    p.add_argument("--max-pages", type=int, help="pages stored in all, over reruns (default: no limit)")
    p.add_argument("--max-bytes", type=int, help="bytes downloaded in all, over reruns (default: no limit)")
    p.add_argument("--max-page-bytes", type=int, help="cap on one response, on the wire and decompressed (default 5 MiB)")
    p.add_argument("--delay", type=float, help="seconds between requests to one host (default 1; robots Crawl-delay wins)")
    p.add_argument("--concurrency", type=int, help="requests in flight in all (default 4)")
    p.add_argument("--host-concurrency", type=int, help="requests in flight per host (default 1)")
    p.add_argument("--user-agent", metavar="UA", help="User-Agent header, also matched against robots.txt")
    p.add_argument("--allow-private", action="store_true", default=None, help="allow private, loopback and link-local addresses (also carried in IPv6 forms)")
    p.add_argument("--allow-network", action="append", metavar="CIDR", help="allow this private range only (repeatable)")
    p.add_argument("--retries", type=int, help="retries after 5xx, timeouts and dropped connections (default 2)")
    p.add_argument("--ca-bundle", metavar="PEM", help="CA certificates to trust instead of the system's (internal sites)")
    p.add_argument("--max-redirects", type=int, help="redirects followed from one URL (default 5)")
    p.add_argument("--connect-timeout", type=float, help="seconds (default 10)")
    p.add_argument("--read-timeout", type=float, help="seconds of silence while reading (default 20)")
    p.add_argument("--warc-max-bytes", type=int, help="start a new WARC file past this size (default 1 GiB)")
    p.add_argument("--name", help="crawl name in the card (default: the output folder's name)")
    p.add_argument("--overwrite", action="store_true", help="delete a crawl in OUT and start over")
    p.set_defaults(func=cmd_crawl)
    p = sub.add_parser("filter", help="sanitise, identify languages, score and decide quality rules (profiles general, web-strict)")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--config", metavar="FILE", help="filter YAML (profile, sanitise, langid, quality); default: built-in defaults")
    p.add_argument("--profile", choices=["general", "web-strict"],
                   help="the defaults: general (every kind of text; the default) or web-strict (datatrove's web rules); over a --config's")
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_filter)

    p = sub.add_parser("dedup", help="remove exact and near-duplicate documents (MinHash LSH)")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders (deduplicated together)")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--mode", choices=["exact", "minhash", "both"], default="both")
    p.add_argument("--ngram", type=int, default=5, help="words per shingle (default 5)")
    p.add_argument("--bands", type=int, default=14, help="LSH bands (default 14)")
    p.add_argument("--rows", type=int, default=8, help="permutations per band (default 8)")
    p.add_argument("--threshold", type=float, default=None,
                   help="verification: a MinHash candidate pair links its documents only if the Jaccard of their "
                        "shingle sets is at least T (default 0.7)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="link every MinHash candidate pair without reading the texts again (faster, less precise)")
    p.add_argument("--seed", type=int, default=1, help="seed of the MinHash permutations")
    p.add_argument("--normalisation", choices=["whitespace", "lowercase", "letters", "none"], default="whitespace",
                   help="what exact matching ignores (default: whitespace differences)")
    p.add_argument("--source-priority", nargs="+", metavar="SOURCE", help="keep these sources' copies first, in order")
    p.add_argument("--quality-column", help="numeric column: higher is kept first (before length)")
    p.add_argument("--against", action="append", metavar="DIR", help="dataset folder with a saved dedup index (repeatable)")
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("decontaminate", help="drop (or redact) documents that hold evaluation items: word n-gram matching")
    p.add_argument("inputs", nargs="+", metavar="IN", help="dataset folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--against", required=True, nargs="+", metavar="EVAL",
                   help="eval sources: dataset folders, `train sft` run folders (their test split), .json/.jsonl(.gz) or .txt files")
    p.add_argument("--ngram", type=int, default=13, help="words per n-gram (default 13)")
    p.add_argument("--min-words", type=int, default=6, help="shorter items are listed as too short, not matched (default 6)")
    p.add_argument("--mode", choices=["drop", "redact"], default="drop", help="reject the document, or cut the matching spans out")
    p.add_argument("--name")
    _executor_args(p)
    p.set_defaults(func=cmd_decontaminate)

    p = sub.add_parser("run", help="run a pipeline YAML (sources and stages)")
    p.add_argument("pipeline", metavar="PIPELINE.yaml")
    p.add_argument("--overwrite", action="store_true", help="redo stages whose output is already finished")
    p.set_defaults(func=cmd_run)
    _tokenize_parsers(sub)
    from corpus.mix.cli import add_mix_parser

    add_mix_parser(sub)
    _instruct_parser(sub)
    _classify_parsers(sub)
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
        return _interrupted()
    except Exception as e:  # a bug, not bad input: one line unless --debug
        from corpus.errors import missing_extra

        hint = missing_extra(e) if isinstance(e, ModuleNotFoundError) and not args.debug else None
        if hint:  # an optional extra that is not installed: say which
            print(f"corpus: error: {hint}", file=sys.stderr)
            return 2
        if args.debug:
            traceback.print_exc()
        else:
            print(f"corpus: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


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
