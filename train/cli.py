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

    from corpus.errors import CorpusError
    from train.pretrain import PretrainConfig, pretrain

    try:
        config = PretrainConfig(**{k: getattr(args, k) for k in PRETRAIN_KEYS})
    except ValidationError as e:
        first = e.errors()[0]
        flag = "-".join(str(p) for p in first["loc"]).replace("_", "-").replace("model-file", "model-config")
        message = first["msg"].removeprefix("Value error, ")
        raise CorpusError(f"--{flag}: {message}" if flag else message) from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pretrain(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description="Pretrain and instruction-tune on corpus token shards.")
    parser.add_argument("--version", action="version", version=f"train {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _pretrain_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from corpus.errors import CorpusError

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local folders only
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except CorpusError as e:
        # Every problem with the inputs (shards, tokenizer, model, run folder) is found before the
        # first step and is the user's to fix: one line, exit code 2.
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank finds it; one line is enough
            print(f"train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train: interrupted; continue from the last checkpoint with --resume auto", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line unless --debug
        if args.debug:
            traceback.print_exc()
        else:
            print(f"train: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
