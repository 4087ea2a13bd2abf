"""The fingerprints of `corpus tokenizer train` and `corpus tokenize` (and their pipeline stages):
what a finished output was made from, so that a rerun with the same inputs and options is up to date.
The shard format itself is corpus/shard_format.py; publishing an output is corpus/outputs.py."""

from __future__ import annotations

from pathlib import Path

from corpus.outputs import stage_fingerprint


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def tokenizer_fingerprint(config: dict, inputs: list[str | Path]) -> str:
    """`corpus tokenizer train` and the pipeline's tokenizer stage: the datasets and, with
    `extend`, the base tokenizer are the inputs."""
    extend = config.get("extend")
    if extend:
        config = {**config, "extend": _resolved(extend)}
    return stage_fingerprint("tokenizer", config, [*inputs, *([extend] if extend else [])])


def tokenize_fingerprint(config: dict, inputs: list[str | Path]) -> str:
    """`corpus tokenize` and the pipeline's tokenize stage: the datasets and the tokenizer are the
    inputs (the number of tasks is not: the shards do not depend on it)."""
    tokdir = config["tokenizer"]
    config = {**config, "tokenizer": _resolved(tokdir)}
    return stage_fingerprint("tokenize", config, [*inputs, tokdir])
