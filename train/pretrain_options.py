"""The options of a pretraining run (pydantic only: a pipeline validates them without torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PretrainOptions(BaseModel):
    """What a pretraining run is: the same options for `train pretrain` and a pipeline's `pretrain` stage."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["tiny", "small", "125m", "1b"] | None = None
    model_file: str | None = Field(None, description="a YAML model shape instead of a preset")
    init_from: str | None = Field(None, description="continue pretraining this Hugging Face model folder")
    seq_len: int = Field(512, gt=0)
    batch_size: int = Field(8, gt=0, description="windows per micro-batch per process")
    grad_accum: int = Field(1, gt=0)
    lr: float | None = Field(None, gt=0, description="peak learning rate (default: by preset)")
    min_lr: float | None = Field(None, ge=0, description="final learning rate of the cosine (default: lr / 10)")
    warmup_steps: int = Field(100, ge=0)
    max_steps: int = Field(1000, gt=0)
    stop_at: int | None = Field(None, gt=0, description="end this invocation after this step (a checkpoint is saved)")
    time_limit: float | None = Field(None, gt=0, description="end this invocation after this many minutes of training (a checkpoint is saved)")
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="0: no clipping")
    eval_every: int = Field(100, ge=0, description="steps between validations (0: only at the end)")
    eval_windows: int = Field(256, ge=0, description="validation windows per evaluation (0: all)")
    save_every: int = Field(500, ge=0, description="steps between checkpoints (0: only at the end)")
    keep_last: int = Field(3, gt=0)
    log_every: int = Field(10, gt=0)
    seed: int = 0
    compile: bool = False
    fsdp: bool = Field(False, description="shard weights, gradients and optimizer state across processes (FSDP2) instead of DDP")
    doc_mask: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tensorboard: bool = True
    peak_tflops: float | None = Field(None, gt=0, description="the accelerator's peak bf16 TFLOP/s, for MFU")
    verify: bool = Field(True, description="check every shard's sha256 against index.json before training")
    validation: bool = Field(True, description="evaluate on the shards' val split (false: the run has no val split and "
                                             "is evaluated elsewhere, as `train ablate` does)")
