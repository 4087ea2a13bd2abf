"""The `tokenizer` and `tokenize` stages of a pipeline YAML.

    stages:
      - ingest: {}
      - length_filter: {min_chars: 100}
      - tokenizer: {vocab_size: 8000, weights: {insurance: 0.5, general: 0.5}}
      - tokenize: {val_fraction: 0.01}          # tokenizer: the pipeline's tokenizer stage, unless named

Both read the last dataset folder the pipeline wrote. Their outputs are not dataset folders, so they
do not go through `run_stage`: the tokenizer is trained as one task, and tokenize runs its own
passes on the pipeline's executor. A rerun with the same inputs and options leaves a finished
output as it is (the number of tasks is not part of that: the shards do not depend on it).
"""

from __future__ import annotations

from pathlib import Path

from corpus.outputs import up_to_date
from corpus.progress import say
from corpus.stages import Stage, StageRun, declare
from corpus.tokenize.fingerprints import tokenize_fingerprint, tokenizer_fingerprint
from corpus.tokenize.shards import TokenizeConfig, is_shards_folder, tokenize_dataset
from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, is_tokenizer_folder, train_tokenizer


class TokenizeStageConfig(TokenizeConfig):
    tokenizer: str | None = None  # unset: the output of the pipeline's `tokenizer` stage


def run_tokenizer_stage(run: StageRun) -> Path:
    config = TokenizerTrainConfig.model_validate(run.options.model_dump())
    if config.extend:
        config = config.model_copy(update={"extend": str((run.base / config.extend).resolve())})
    source, out = run.latest_dataset(), run.out
    fp = tokenizer_fingerprint(config.model_dump(), [source])  # the same as `corpus tokenizer train`'s
    if up_to_date(out, fp, is_tokenizer_folder) and not run.overwrite:
        say(f"tokenizer: {out} is up to date (same inputs and config); nothing to do")
        return out
    train_tokenizer([source], out, config, overwrite=True, command=run.command, name=run.name, fingerprint=fp)
    return out


def run_tokenize_stage(run: StageRun) -> Path | None:
    source, out = run.latest_dataset(), run.out
    if run.options.tokenizer is not None:
        tokdir = (run.base / run.options.tokenizer).resolve()
    elif (tokdir := run.latest(is_tokenizer_folder)) is None:
        raise run.fail("needs `tokenizer: PATH` or a 'tokenizer' stage before it")
    config = TokenizeConfig.model_validate({**run.options.model_dump(), "tokenizer": str(tokdir)})
    fp = tokenize_fingerprint(config.model_dump(), [source])  # the same as `corpus tokenize`'s
    if up_to_date(out, fp, is_shards_folder) and not run.overwrite:
        say(f"tokenize: {out} is up to date (same inputs and config); nothing to do")
        return out
    card = tokenize_dataset([source], out, config, overwrite=True, command=run.command, name=run.name, fingerprint=fp,
                            executor=run.executor)  # fmt: skip
    return None if card is None else out


declare(Stage("tokenizer", TokenizerTrainConfig, run_tokenizer_stage, "train a byte-level BPE tokenizer on the latest dataset"))
declare(Stage("tokenize", TokenizeStageConfig, run_tokenize_stage, "tokenize the latest dataset into Arrow token shards"))
