"""`train pretrain`: a Llama-style decoder on corpus token shards, exact to the batch across restarts.

    RUN/
      run.json                     the configuration and what was checked at the first start
      metrics.jsonl  metrics.csv   train loss/lr/grad norm/tokens per second; validation loss and
                                   perplexity per domain
      tb/                          the same metrics for TensorBoard
      checkpoints/step-00001000/   save_pretrained (weights, config) + the tokenizer + trainer_state.pt
                                   (optimizer, scheduler, loader position, RNG), the last --keep-last

The loop is the usual one (nanoGPT's shape): fetch the step's micro-batches, forward, sum of token
losses divided by the step's target-token count, backward, clip, AdamW step, LR schedule step.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from train.data import IGNORE_INDEX, WindowLoader
from train.errors import CheckpointError, TrainError
from train.loading import check_model_files, load_torch_file
from train.model import count_parameters, load_pretrained, load_shape, new_model
from train.pretrain_options import PretrainOptions

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.pt"
RUN_JSON = "run.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
DEFAULT_LR = {"tiny": 1e-3, "small": 6e-4, "125m": 6e-4, "1b": 3e-4}
# Dense bf16 peak FLOP/s by device name, for MFU; --peak-tflops for anything else.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}
# Keys that decide which batches are read and how each step updates the weights: a resumed run must
# keep them, or it would not continue the run it resumes.
RESUME_KEYS = ("seq_len", "batch_size", "grad_accum", "seed", "doc_mask", "lr", "min_lr", "warmup_steps",
               "weight_decay", "beta1", "beta2", "grad_clip", "fsdp")  # fmt: skip
# Keys that say where and when an invocation ends or how it talks, not what the finished run is: not
# part of the run's fingerprint (a run stopped by --time-limit is unfinished; a rerun resumes it).
NOT_FINGERPRINTED = ("output", "resume", "stop_at", "time_limit", "quiet", "verify")


class PretrainConfig(PretrainOptions):
    """`train pretrain`: the options, plus the run's data, tokenizer and folder."""

    data: str = Field(description="a token-shards folder (`corpus tokenize`)")
    tokenizer: str = Field(description="the tokenizer folder the shards were made with")
    output: str = Field(description="the run folder")
    resume: str | None = Field(None, description="'auto' (the run's latest checkpoint, if any) or a checkpoint folder")
    quiet: bool = False

    @model_validator(mode="after")
    def _defaults(self):
        if sum(x is not None for x in (self.preset, self.model_file, self.init_from)) > 1:
            raise ValueError("choose one of --preset, --model-config and --init-from")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.preset or "tiny"] if self.init_from is None else 1e-4
        if self.min_lr is None:
            self.min_lr = self.lr / 10
        if self.min_lr > self.lr:
            raise ValueError(f"--min-lr {self.min_lr} is above --lr {self.lr}")
        return self


# ---------------------------------------------------------------- processes and devices


class Dist:
    """This process's place under torchrun (rank 0 of 1 without it)."""

    def __init__(self, device_kind: str):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_kind == "cuda" or (device_kind == "auto" and torch.cuda.is_available())
        if device_kind == "cuda" and not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available")
        self.device = torch.device(f"cuda:{self.local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def say(message: str, config: PretrainConfig, dist: Dist) -> None:
    if dist.main and not config.quiet:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------- checks before the first step


def shards_fingerprint(index: dict) -> str:
    """The shards' identity: their checksums, in order (a moved folder is still the same data)."""
    return hashlib.sha256("".join(s["sha256"] for s in index["shards"]).encode()).hexdigest()


def check_inputs(config: PretrainConfig) -> tuple[dict, dict, int]:
    """The shards, and that the tokenizer is the one they were made with: (index, specials, vocab size)."""
    from corpus.shard_format import load_tokenizer, read_index, tokenizer_sha256, verify_shards, vocab_extent

    index = read_index(config.data)
    if config.verify:
        verify_shards(config.data)
    tokenizer, specials = load_tokenizer(config.tokenizer)
    made_with = index.get("tokenizer", {})
    ours = tokenizer_sha256(Path(config.tokenizer))
    if made_with.get("sha256") != ours:
        raise TrainError(
            f"{config.data}: the shards were made with another tokenizer ({made_with.get('path')}, "
            f"{made_with.get('vocab_size')} tokens, sha256 {str(made_with.get('sha256'))[:12]}) than {config.tokenizer} "
            f"(sha256 {ours[:12]}); pass the tokenizer the shards were made with, or tokenize again"
        )
    vocab_size = vocab_extent(tokenizer)
    if made_with.get("vocab_size") != vocab_size:
        raise TrainError(f"{config.data}: index.json says {made_with.get('vocab_size')} tokens, {config.tokenizer} has {vocab_size}")
    return index, specials, vocab_size


STEP_FOLDER = re.compile(r"step-(\d+)")
STATE_KEYS = ("step", "optimizer", "scheduler", "loader", "rng", "config", "tokens_seen", "shards_fingerprint", "world_size")


def checkpoint_folders(run: Path) -> list[Path]:
    """Every `step-N` folder, oldest first, whole or not (`step-N.tmp` is a save in progress or
    interrupted, never a checkpoint)."""
    folder = run / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if STEP_FOLDER.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def find_checkpoints(run: Path) -> list[Path]:
    """Finished checkpoints (with their trainer state), oldest first."""
    return [p for p in checkpoint_folders(run) if (p / TRAINER_STATE).is_file()]


def verify_checkpoint(path: Path) -> dict:
    """The trainer state of a whole, readable checkpoint. CheckpointError names the first file that
    is missing, truncated, corrupt or holds pickled objects, or a state whose step is not the folder's."""
    state_file = path / TRAINER_STATE
    state = load_torch_file(state_file)
    if not isinstance(state, dict) or any(key not in state for key in STATE_KEYS):
        missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
        raise CheckpointError(f"{state_file}: not a trainer state of `train pretrain` (no {', '.join(missing)})")
    match = STEP_FOLDER.fullmatch(path.name)
    if match and int(match.group(1)) != state["step"]:
        raise CheckpointError(f"{state_file}: says step {state['step']}, but it is in {path.name}")
    check_model_files(path)
    return state


def resume_checkpoint(config: PretrainConfig) -> tuple[Path, dict] | None:
    """The checkpoint to resume from and its trainer state, or None for a new run. `--resume auto`
    takes the latest checkpoint that verifies, warning about each later one that does not."""
    run = Path(config.output)
    if config.resume is None:
        existing = find_checkpoints(run)
        if existing:
            raise TrainError(f"{run}: already holds checkpoints (latest {existing[-1].name}); pass --resume auto to continue it, or another -o")
        return None
    if config.resume != "auto":
        path = Path(config.resume)
        if not (path / TRAINER_STATE).is_file():
            raise TrainError(f"--resume {path}: not a checkpoint of `train pretrain` (no {TRAINER_STATE})")
        try:
            return path, verify_checkpoint(path)
        except CheckpointError as e:
            raise CheckpointError(f"--resume {path}: {e}") from None
    folders = checkpoint_folders(run)
    problems = []
    for path in reversed(folders):
        try:
            state = verify_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            continue
        for problem in problems:
            warn(f"skipping a checkpoint that does not verify: {problem}; resuming from {path.name}")
        return path, state
    if folders:
        # Starting over would overwrite the run's metrics and, in time, these checkpoints.
        raise CheckpointError(f"{run / CHECKPOINTS}: no checkpoint verifies ({'; '.join(problems)}); "
                              "repair or remove them, or start a new run in another folder")  # fmt: skip
    return None


def run_fingerprint(config: PretrainConfig, index: dict) -> str:
    """What a finished run was made from: its options (but NOT_FINGERPRINTED), the shards and the
    tokenizer by content, the --init-from model by its files, and the trainer's version."""
    import train
    from corpus.outputs import fingerprint_of
    from train.loading import model_identity, resolve_model

    options = config.model_dump(exclude={*NOT_FINGERPRINTED, "data", "tokenizer", "init_from"})
    init = model_identity(resolve_model(config.init_from)) if config.init_from else None
    return fingerprint_of({"stage": "pretrain", "config": options, "data": shards_fingerprint(index),
                           "tokenizer": index["tokenizer"]["sha256"], "init_from": init, "version": train.__version__})  # fmt: skip


def finished_run(config: PretrainConfig, index: dict) -> int | None:
    """The last step of a run in RUN that was finished with this configuration, or None. A rerun of
    it without --resume has nothing to do (with --resume it is checked as a resume, as always)."""
    from corpus.outputs import stored_fingerprint

    run = Path(config.output)
    if config.resume is not None:
        return None
    existing = find_checkpoints(run)
    if not existing or int(existing[-1].name.split("-")[1]) < config.max_steps:
        return None
    stored = stored_fingerprint(run, RUN_JSON)
    if stored is None or stored != run_fingerprint(config, index):
        return None
    return int(existing[-1].name.split("-")[1])


def record_finished(run: Path, fingerprint: str) -> None:
    """Keep the fingerprint of the configuration that finished the run in its run.json."""
    from corpus.outputs import atomic_write

    record = json.loads((run / RUN_JSON).read_text(encoding="utf-8"))
    record["fingerprint"] = fingerprint
    with atomic_write(run / RUN_JSON) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def warn(message: str) -> None:
    """One line on stderr, from rank 0 only, even with --quiet."""
    if os.environ.get("RANK", "0") == "0":
        print(f"train: warning: {message}", file=sys.stderr)


def check_resume(state: dict, config: PretrainConfig, fingerprint: str, world_size: int, path: Path) -> None:
    before = state["config"]
    changed = [k for k in RESUME_KEYS if before.get(k) != getattr(config, k)]
    if state["shards_fingerprint"] != fingerprint:
        changed.append("data (other shards)")
    if state["world_size"] != world_size:
        changed.append(f"processes ({state['world_size']} -> {world_size})")
    if changed:
        raise TrainError(f"--resume {path}: the run was started with other settings: {', '.join(changed)}; "
                          "resume with the same ones, or start a new run in another folder")  # fmt: skip
    if state["step"] >= config.max_steps:
        raise TrainError(f"--resume {path}: the checkpoint is at step {state['step']}, --max-steps is {config.max_steps}: nothing to do")


# ---------------------------------------------------------------- optimizer and schedule


def make_optimizer(model: torch.nn.Module, config: PretrainConfig, fused: bool) -> torch.optim.AdamW:
    """Weight decay on matrices (linear layers, embeddings) only; never on norms' gains or biases."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=1e-8, fused=fused or None)


def lr_factor(step: int, config: PretrainConfig) -> float:
    """Linear warmup to lr, then cosine down to min_lr at max_steps (a multiple of lr, for LambdaLR)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    floor = config.min_lr / config.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- checkpoints


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, gauss))


def gather_state(model, optimizer, fsdp: bool) -> tuple[dict | None, dict]:
    """(model state dict, optimizer state dict) to save; under FSDP every rank must call this, since
    the full tensors are gathered from the shards (onto rank 0's CPU)."""
    if not fsdp:
        return None, optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model, optimizer, state: dict, fsdp: bool) -> None:
    if not fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))


def save_checkpoint(run: Path, step: int, model, model_state: dict | None, optimizer_state: dict, scheduler,
                    loader: WindowLoader, extra: dict, config: PretrainConfig) -> Path:  # fmt: skip
    """Written under `step-N.tmp` and renamed, so a checkpoint folder is either whole or absent: a kill
    during a save leaves the previous checkpoint the latest."""
    final = run / CHECKPOINTS / f"step-{step:08d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), state_dict=model_state)
    for name in TOKENIZER_FILES:  # a checkpoint loads alone with AutoTokenizer/AutoModelForCausalLM
        if (Path(config.tokenizer) / name).is_file():
            shutil.copy2(Path(config.tokenizer) / name, tmp / name)
    torch.save(
        {
            "step": step,
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "loader": loader.state_dict(),
            "rng": rng_state(),
            "config": config.model_dump(),
            **extra,
        },
        tmp / TRAINER_STATE,
    )
    if final.exists():  # a step saved again (after a resume from an earlier checkpoint): set the old one aside first
        replaced = final.with_name(final.name + ".replaced")
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(final, replaced)
        os.replace(tmp, final)
        shutil.rmtree(replaced)
    else:
        os.replace(tmp, final)
    for old in find_checkpoints(run)[: -config.keep_last]:
        shutil.rmtree(old)
    return final


# ---------------------------------------------------------------- metrics


CSV_FIELDS = ["step", "split", "domain", "loss", "ppl", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu", "elapsed_s"]


class MetricsLog:
    """metrics.jsonl (one record per event), metrics.csv (one row per domain) and TensorBoard, on rank 0."""

    def __init__(self, run: Path, resume_step: int | None, tensorboard: bool):
        self.jsonl = run / "metrics.jsonl"
        self.csv = run / "metrics.csv"
        if resume_step is not None:
            self._truncate(resume_step)  # steps logged after the checkpoint will be logged again
        else:
            for path in (self.jsonl, self.csv):
                path.unlink(missing_ok=True)
        new_csv = not self.csv.exists()
        self._csv_file = open(self.csv, "a", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._csv_file, CSV_FIELDS)
        if new_csv:
            self._csv.writeheader()
        self._jsonl_file = open(self.jsonl, "a", encoding="utf-8")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"), purge_step=resume_step)

    def _truncate(self, step: int) -> None:
        if self.jsonl.exists():
            kept = [line for line in self.jsonl.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= step]
            self.jsonl.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        if self.csv.exists():
            with open(self.csv, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
            with open(self.csv, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, CSV_FIELDS)
                writer.writeheader()
                writer.writerows(rows)

    def write(self, record: dict) -> None:
        self._jsonl_file.write(json.dumps(record) + "\n")
        self._jsonl_file.flush()
        rows = [record]
        if "by_domain" in record:
            rows = [{**record, "domain": "all"}] + [{"step": record["step"], "split": record["split"], "domain": d, **v}
                                                     for d, v in record["by_domain"].items()]  # fmt: skip
        for row in rows:
            self._csv.writerow({k: row.get(k) for k in CSV_FIELDS})
        self._csv_file.flush()
        if self.tb is not None:
            step = record["step"]
            for key in ("loss", "ppl", "lr", "grad_norm", "tokens_per_s", "mfu"):
                if record.get(key) is not None:
                    self.tb.add_scalar(f"{record['split']}/{key}", record[key], step)
            for domain, values in record.get("by_domain", {}).items():
                self.tb.add_scalar(f"{record['split']}/loss_{domain}", values["loss"], step)

    def close(self) -> None:
        self._jsonl_file.close()
        self._csv_file.close()
        if self.tb is not None:
            self.tb.close()


# ---------------------------------------------------------------- validation


@torch.no_grad()
def evaluate(model, loader: WindowLoader, max_windows: int | None, dist: Dist, autocast) -> dict:
    """Mean token loss and perplexity over `max_windows` windows of the loader's split (0 or None: all),
    overall and per document domain."""
    was_training = model.training
    model.eval()
    n_domains = len(loader.domain_names)
    loss_sum = torch.zeros(n_domains, dtype=torch.float64, device=dist.device)
    count = torch.zeros(n_domains, dtype=torch.float64, device=dist.device)
    for batch in loader.eval_batches(max_windows):
        batch = batch.to(dist.device)
        with autocast():
            logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits  # (B, T, V)
        losses = F.cross_entropy(logits.float().flatten(0, 1), batch.labels.flatten(), reduction="none")  # (B*T,)
        counted = batch.labels.flatten() != IGNORE_INDEX
        domains = batch.target_domains.flatten()[counted]
        loss_sum.index_add_(0, domains, losses[counted].double())
        count.index_add_(0, domains, torch.ones_like(domains, dtype=torch.float64))
    dist.all_sum(loss_sum)
    dist.all_sum(count)
    model.train(was_training)
    total = loss_sum.sum().item() / max(1.0, count.sum().item())
    by_domain = {
        name: {"loss": s / c, "ppl": math.exp(min(s / c, 50)), "tokens": int(c)}
        for name, s, c in zip(loader.domain_names, loss_sum.tolist(), count.tolist())
        if c > 0
    }
    return {"loss": total, "ppl": math.exp(min(total, 50)), "tokens": int(count.sum().item()), "by_domain": by_domain}


# ---------------------------------------------------------------- the run


def peak_flops(config: PretrainConfig, device: torch.device) -> float | None:
    if config.peak_tflops:
        return config.peak_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def flops_per_token(model, seq_len: int) -> float:
    """6 FLOPs per matmul weight per token (forward + backward) plus attention (PaLM, appendix B)."""
    total, _ = count_parameters(model)
    c = model.config
    embedding = model.get_input_embeddings().weight.numel()
    matmul_weights = total if c.tie_word_embeddings else total - embedding  # the LM head is a matmul
    return 6 * matmul_weights + 12 * c.num_hidden_layers * c.hidden_size * seq_len


def pretrain(config: PretrainConfig) -> dict:
    """Train; returns the last train and validation records. Raises TrainError on bad input, before step 1."""
    from corpus.outputs import OutputLock, check_output

    dist = Dist(config.device)
    lock = None
    try:
        if dist.main:  # one run at a time writes RUN (the other ranks follow rank 0)
            lock = OutputLock(check_output(config.output, [config.data, config.tokenizer])).acquire()
        return _pretrain(config, dist)
    finally:
        if lock is not None:
            lock.release()
        dist.close()


def build_model(config: PretrainConfig, vocab_size: int, specials: dict, fingerprint: str, world_size: int):
    """The model to train: from the latest checkpoint of RUN (resuming), from --init-from, or new.
    Returns (model, the checkpoint's trainer state or None, a line saying where it came from)."""
    resumed = resume_checkpoint(config)
    if resumed is not None:
        checkpoint, state = resumed
        check_resume(state, config, fingerprint, world_size, checkpoint)
        model, origin = load_pretrained(checkpoint), f"resumed from {checkpoint} at step {state['step']}"
    elif config.init_from:
        model, state, origin = load_pretrained(config.init_from, vocab_size), None, f"initialised from {config.init_from}"
    else:
        model = new_model(load_shape(config.preset, config.model_file), vocab_size, specials, config.seed)
        state, origin = None, f"new {config.model_file or config.preset or 'tiny'} model"
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        raise TrainError(f"the model has {model.get_input_embeddings().weight.shape[0]} token embeddings, the tokenizer {vocab_size}")
    if config.seq_len > model.config.max_position_embeddings:
        raise TrainError(f"--seq-len {config.seq_len} is longer than the model's {model.config.max_position_embeddings} positions")
    return model, state, origin


def make_loaders(config: PretrainConfig, dist: Dist, index: dict) -> tuple[WindowLoader, WindowLoader]:
    """The train (shuffled) and validation loaders of this rank; refuses splits too small to use."""

    def loader(split: str, shuffle: bool) -> WindowLoader:
        return WindowLoader(config.data, split, config.seq_len, config.batch_size, seed=config.seed, rank=dist.rank,
                            world_size=dist.world_size, doc_mask=config.doc_mask, shuffle=shuffle)  # fmt: skip

    train_loader, val_loader = loader("train", True), loader("val", False)
    split_tokens = index.get("totals", {}).get("by_split", {})
    if train_loader.batches_per_epoch() == 0:
        raise TrainError(f"{config.data}: the train split holds {train_loader.num_windows} windows of {config.seq_len + 1} tokens "
                          f"({split_tokens.get('train', {}).get('tokens', 0):,} tokens), fewer than one batch of "
                          f"{train_loader.windows_per_batch}; lower --seq-len or --batch-size")  # fmt: skip
    if config.validation and val_loader.num_windows < dist.world_size:
        raise TrainError(f"{config.data}: the validation split is empty at --seq-len {config.seq_len} "
                          f"({split_tokens.get('val', {}).get('tokens', 0):,} tokens in {len(val_loader.shards)} shards); "
                          "tokenize with a larger --val-fraction or lower --seq-len")  # fmt: skip
    return train_loader, val_loader


def shard_model(model) -> None:
    """FSDP2: one all-gather per decoder layer in the forward pass, then the rest (embeddings, final
    norm, the tied head) as the root group. Before the optimizer: sharding replaces the parameters."""
    from torch.distributed.fsdp import fully_shard

    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)


def wrap_model(model, config: PretrainConfig, dist: Dist):
    """What the forward pass calls: the model, compiled and/or wrapped in DDP (the optimizer, the
    checkpoints and evaluation keep using the model itself)."""
    if config.compile:
        model = torch.compile(model)
    if dist.world_size > 1 and not config.fsdp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    return model


class Step(NamedTuple):
    loss_sum: torch.Tensor  # sum of this rank's token losses (float64 scalar)
    targets: float  # target tokens of the whole step, all ranks
    grad_norm: torch.Tensor  # before clipping (a tensor: reading it would wait for the device every step)
    lr: float  # the learning rate the step used


def train_step(model, raw_model, optimizer, scheduler, micro_batches: list, config: PretrainConfig, dist: Dist, autocast) -> Step:
    """One optimizer step. All its micro-batches are fetched first, so the loss can be divided by the
    number of target tokens of the whole step (on every rank): sum of token losses / tokens, whatever
    the number of ignored targets in each micro-batch."""
    n_targets = torch.tensor(float(sum(int((b.labels != IGNORE_INDEX).sum()) for b in micro_batches)), dtype=torch.float64)
    n_targets = dist.all_sum(n_targets.to(dist.device)).item()
    # DDP averages gradients over ranks: dividing by tokens/world_size makes that average the global sum / tokens.
    divisor = max(1.0, n_targets) / dist.world_size
    step_loss = torch.zeros((), dtype=torch.float64, device=dist.device)
    for i, batch in enumerate(micro_batches):
        batch = batch.to(dist.device)
        last = i == len(micro_batches) - 1
        if config.fsdp:
            raw_model.set_requires_gradient_sync(last)  # reduce-scatter once per step
            sync = contextlib.nullcontext()
        else:
            sync = contextlib.nullcontext() if (last or dist.world_size == 1) else model.no_sync()
        with sync:
            with autocast():
                logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits  # (B, T, V)
            token_loss = F.cross_entropy(logits.float().flatten(0, 1), batch.labels.flatten(), reduction="sum")  # sum over (B*T,)
            (token_loss / divisor).backward()
        step_loss += token_loss.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.grad_clip if config.grad_clip > 0 else float("inf"))
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return Step(step_loss, n_targets, grad_norm, lr)


class TrainMeter:
    """Train loss (per target token), tokens/s and MFU between two log lines. Time spent validating
    and saving is paused out, so tokens/s is the training loop's own."""

    def __init__(self, step: int, step_tokens: int, flops_token: float, peak: float | None, dist: Dist):
        self.step_tokens, self.flops_token, self.peak, self.dist = step_tokens, flops_token, peak, dist
        self.loss = torch.zeros((), dtype=torch.float64, device=dist.device)
        self.targets = 0.0
        self.started = self.since = time.perf_counter()
        self.since_step = step

    def add(self, step: Step) -> None:
        self.loss += step.loss_sum
        self.targets += step.targets

    def pause(self, seconds: float) -> None:
        self.since += seconds

    def record(self, step: int, last: Step, tokens_seen: int, epoch: int) -> dict:
        loss = self.dist.all_sum(self.loss.clone()).item() / max(1.0, self.targets)
        if self.dist.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        tokens_per_s = (step - self.since_step) * self.step_tokens / (now - self.since)
        record = {"step": step, "split": "train", "loss": loss, "lr": last.lr, "grad_norm": float(last.grad_norm),
                  "tokens": tokens_seen, "tokens_per_s": tokens_per_s, "epoch": epoch, "elapsed_s": now - self.started}  # fmt: skip
        if self.peak:
            record["mfu"] = self.flops_token * tokens_per_s / self.dist.world_size / self.peak
        self.loss.zero_()
        self.targets = 0.0
        self.since, self.since_step = now, step
        return record


def write_run_json(run: Path, config: PretrainConfig, dist: Dist, origin: str, model, parameters: tuple[int, int], vocab_size: int,
                   fingerprint: str, index: dict, train_loader: WindowLoader, val_loader: WindowLoader) -> None:  # fmt: skip
    total_params, non_embedding = parameters
    run.mkdir(parents=True, exist_ok=True)
    (run / RUN_JSON).write_text(json.dumps({
        "config": config.model_dump(), "world_size": dist.world_size, "origin": origin,
        "parameters": total_params, "non_embedding_parameters": non_embedding, "vocab_size": vocab_size,
        "shards_fingerprint": fingerprint, "tokenizer_sha256": index["tokenizer"]["sha256"],
        "train_windows": train_loader.num_windows, "val_windows": val_loader.num_windows,
        "model_config": model.config.to_dict()}, indent=2, default=str) + "\n", encoding="utf-8")  # fmt: skip


def _pretrain(config: PretrainConfig, dist: Dist) -> dict:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's bar would break into ours
    run = Path(config.output)
    if config.fsdp and dist.world_size < 2:
        raise TrainError("--fsdp shards the model across processes: start it with torchrun --nproc_per_node N (N >= 2)")
    index, specials, vocab_size = check_inputs(config)
    if config.doc_mask:
        import transformers.masking_utils as masking

        if not hasattr(masking, "find_packed_sequence_indices"):
            raise TrainError("--doc-mask needs a newer transformers (one whose masking_utils builds per-document masks from position ids)")
    fingerprint = shards_fingerprint(index)
    done = finished_run(config, index)
    if done is not None:
        say(f"pretrain: {run} is up to date (same inputs and config); nothing to do", config, dist)
        return {"train": None, "val": None, "step": done, "run": str(run)}
    raw_model, state, origin = build_model(config, vocab_size, specials, fingerprint, dist.world_size)
    train_loader, val_loader = make_loaders(config, dist, index)

    raw_model.to(dist.device)  # `raw_model` is what is saved and evaluated; `model` what the forward pass calls
    raw_model.train()
    if config.fsdp:
        shard_model(raw_model)
    optimizer = make_optimizer(raw_model, config, fused=dist.device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
    start_step, tokens_seen = 0, 0
    if state is not None:
        load_optimizer_state(raw_model, optimizer, state["optimizer"], config.fsdp)
        scheduler.load_state_dict(state["scheduler"])
        train_loader.load_state_dict(state["loader"])
        set_rng_state(state["rng"])
        start_step, tokens_seen = state["step"], state["tokens_seen"]
    model = wrap_model(raw_model, config, dist)
    use_bf16 = dist.device.type == "cuda"  # CPU trains in fp32: bf16 matmuls are slow there and not exact

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    total_params, non_embedding = count_parameters(raw_model)
    step_tokens = config.batch_size * config.seq_len * config.grad_accum * dist.world_size
    if dist.main and state is None:
        write_run_json(run, config, dist, origin, raw_model, (total_params, non_embedding), vocab_size, fingerprint, index, train_loader,
                       val_loader)  # fmt: skip
    dist.barrier()
    say(f"pretrain: {origin}, {total_params / 1e6:.2f}M parameters ({non_embedding / 1e6:.2f}M besides embeddings), "
        f"{dist.world_size} process(es) on {dist.device.type}{' bf16' if use_bf16 else ' fp32'}; "
        f"{train_loader.num_windows:,} train windows of {config.seq_len} tokens, {step_tokens:,} tokens per step", config, dist)  # fmt: skip
    log = MetricsLog(run, state["step"] if state else None, config.tensorboard) if dist.main else None

    def validate(step: int) -> dict:
        result = evaluate(raw_model, val_loader, config.eval_windows, dist, autocast)
        record = {"step": step, "split": "val", "tokens": tokens_seen, **result}
        if log:
            log.write(record)
        domains = "  ".join(f"{d} {v['loss']:.4f}" for d, v in result["by_domain"].items())
        say(f"step {step}: val loss {result['loss']:.4f}  ppl {result['ppl']:.2f}  ({domains})", config, dist)
        return record

    last_train, last_val = None, None
    if state is None and config.eval_every and config.validation:
        last_val = validate(0)  # the starting point of the curve
    stop = min(config.max_steps, config.stop_at or config.max_steps)
    bar = None
    if dist.main and not config.quiet:
        from tqdm import tqdm

        bar = tqdm(total=config.max_steps, initial=start_step, desc="pretrain", unit="step", file=sys.stderr, dynamic_ncols=True)
    meter = TrainMeter(start_step, step_tokens, flops_per_token(raw_model, config.seq_len), peak_flops(config, dist.device), dist)
    step = start_step
    deadline = meter.started + config.time_limit * 60 if config.time_limit else None
    while step < stop:
        micro_batches = [train_loader.next_batch() for _ in range(config.grad_accum)]
        done = train_step(model, raw_model, optimizer, scheduler, micro_batches, config, dist, autocast)
        step += 1
        tokens_seen += step_tokens
        if deadline is not None:
            # Every rank must stop at the same step: rank 0's clock decides.
            out_of_time = torch.tensor(float(time.perf_counter() > deadline and dist.main), device=dist.device)
            if dist.all_sum(out_of_time).item() > 0 and step < stop:
                stop = step
                say(f"step {step}: --time-limit of {config.time_limit:g} minutes reached; continue with --resume auto", config, dist)
        meter.add(done)
        if step % config.log_every == 0 or step == stop:
            last_train = meter.record(step, done, tokens_seen, train_loader.epoch)
            if log:
                log.write(last_train)
            if bar is not None:
                bar.set_postfix(loss=f"{last_train['loss']:.4f}", tok_s=f"{last_train['tokens_per_s']:,.0f}",
                                **({"mfu": f"{last_train['mfu']:.1%}"} if "mfu" in last_train else {}))  # fmt: skip
        if bar is not None:
            bar.update(1)
        t_pause = time.perf_counter()  # validation and saving do not count against tokens/s
        if config.validation and ((config.eval_every and step % config.eval_every == 0) or step == config.max_steps
                                or (step == stop and deadline)):  # fmt: skip
            last_val = validate(step)
        if (config.save_every and step % config.save_every == 0) or step == stop:
            model_state, optimizer_state = gather_state(raw_model, optimizer, config.fsdp)
            if dist.main:
                extra = {"tokens_seen": tokens_seen, "shards_fingerprint": fingerprint, "world_size": dist.world_size}
                saved = save_checkpoint(run, step, raw_model, model_state, optimizer_state, scheduler, train_loader, extra, config)
                say(f"step {step}: checkpoint {saved}", config, dist)
            dist.barrier()
        meter.pause(time.perf_counter() - t_pause)
    if bar is not None:
        bar.close()
    if log:
        log.close()
    if dist.main and step >= config.max_steps:
        record_finished(run, run_fingerprint(config, index))
    return {"train": last_train, "val": last_val, "step": step, "run": str(run)}
