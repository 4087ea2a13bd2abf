"""Model presets -> a transformers Llama config; a YAML file for anything else; `--init-from` a checkpoint.

The vocabulary always comes from the tokenizer, so a preset fits any tokenizer the corpus trained.
Parameter counts in the comments are for a 32,000-token vocabulary with tied embeddings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from corpus.errors import validation_message
from train.errors import TrainError


class ModelShape(BaseModel):
    """The shape of a Llama-style decoder; every key maps onto a `LlamaConfig` field."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int | None = Field(None, gt=0, description="grouped-query attention; unset: one per head")
    intermediate_size: int = Field(gt=0)
    max_position_embeddings: int = Field(2048, gt=0)
    rope_theta: float = Field(10_000.0, gt=0)
    rms_norm_eps: float = Field(1e-5, gt=0)
    tie_word_embeddings: bool = True
    initializer_range: float = Field(0.02, gt=0)

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}")
        kv = self.num_key_value_heads or self.num_attention_heads
        if self.num_attention_heads % kv:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of num_key_value_heads {kv}")
        return self


PRESETS: dict[str, ModelShape] = {
    # ~0.8M parameters besides the embeddings: seconds per hundred steps on a laptop CPU, for tests.
    "tiny": ModelShape(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384,
                       max_position_embeddings=1024),
    # ~27M: 14M in the blocks + 12M embeddings; learns a small domain corpus on one GPU in minutes.
    "small": ModelShape(hidden_size=384, num_hidden_layers=8, num_attention_heads=6, intermediate_size=1024,
                        max_position_embeddings=2048),
    # ~110M (GPT-2 small's shape with a Llama block).
    "125m": ModelShape(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=2048,
                       max_position_embeddings=2048),
    # ~1.0B (Llama 3.2 1B's shape): 16 layers, grouped-query attention with 8 key/value heads.
    "1b": ModelShape(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=8192, max_position_embeddings=4096, rope_theta=500_000.0),
}  # fmt: skip


def load_shape(preset: str | None, model_config: str | None) -> ModelShape:
    if model_config:
        from corpus.yaml_file import read_yaml

        path = Path(model_config)
        raw = read_yaml(path, "model config")
        try:
            return ModelShape.model_validate(raw or {})
        except ValidationError as e:
            raise TrainError(f"{path}: {validation_message(e)}") from None
    return PRESETS[preset or "tiny"]


def build_config(shape: ModelShape, vocab_size: int, specials: dict[str, tuple[str, int]]):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads or shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        rms_norm_eps=shape.rms_norm_eps,
        tie_word_embeddings=shape.tie_word_embeddings,
        initializer_range=shape.initializer_range,
        bos_token_id=specials.get("bos", (None, None))[1],
        eos_token_id=specials.get("eos", (None, None))[1],
        pad_token_id=specials.get("pad", (None, None))[1],
        attention_dropout=0.0,  # no dropout: a resumed run repeats the uninterrupted one exactly
        use_cache=False,
    )


def new_model(shape: ModelShape, vocab_size: int, specials: dict, seed: int):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)  # the initial weights depend on the seed only
    return LlamaForCausalLM(build_config(shape, vocab_size, specials))


def load_pretrained(folder: str | Path, vocab_size: int | None = None):
    """A causal LM from a local Hugging Face folder (never the hub); embeddings grown to `vocab_size`."""
    import torch
    from transformers import AutoModelForCausalLM

    from train.loading import load_errors, model_load_error

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise TrainError(f"{folder}: not a Hugging Face model folder (no config.json)")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    except load_errors() as e:  # a bad file, named if we can
        raise model_load_error(folder, str(folder), e) from None
    current = model.get_input_embeddings().weight.shape[0]
    if vocab_size is not None and vocab_size > current:
        # An extended tokenizer (`corpus tokenizer train --extend`): new rows start at the mean embedding.
        model.resize_token_embeddings(vocab_size, mean_resizing=True)
    model.config.use_cache = False
    return model


def count_parameters(model) -> tuple[int, int]:
    """(all parameters, parameters outside the token embeddings): the second drives the FLOPs per token."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return total, total - embedding
