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

from corpus.document import is_dataset
from corpus.errors import CorpusError
from corpus.outputs import up_to_date
from corpus.progress import say
from corpus.tokenize.common import tokenize_fingerprint, tokenizer_fingerprint
from corpus.tokenize.shards import TokenizeConfig, is_shards_folder, tokenize_dataset
from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, is_tokenizer_folder, train_tokenizer


class TokenizeStageConfig(TokenizeConfig):
    tokenizer: str | None = None  # unset: the output of the pipeline's `tokenizer` stage


def run_tokenize_stage(kind: str, options, written: list[Path], out: Path, name: str, base: Path,
                       overwrite: bool, command: list[str] | None, pipeline_file: str, executor=None) -> Path | None:  # fmt: skip
    datasets = [p for p in written if is_dataset(p)]
    if not datasets:
        raise CorpusError(f"{pipeline_file}: stage {kind!r} needs a dataset stage before it")
    source = datasets[-1]
    if kind == "tokenizer":
        config = TokenizerTrainConfig.model_validate(options.model_dump())
        if config.extend:
            config = config.model_copy(update={"extend": str((base / config.extend).resolve())})
        fp = tokenizer_fingerprint(config.model_dump(), [source])  # the same as `corpus tokenizer train`'s
        if up_to_date(out, fp, is_tokenizer_folder) and not overwrite:
            say(f"tokenizer: {out} is up to date (same inputs and config); nothing to do")
            return out
        train_tokenizer([str(source)], out, config, overwrite=True, command=command, name=name, fingerprint=fp)
        return out
    tokenizers = [p for p in written if is_tokenizer_folder(p)]
    if options.tokenizer is not None:
        tokdir = (base / options.tokenizer).resolve()
    elif tokenizers:
        tokdir = tokenizers[-1]
    else:
        raise CorpusError(f"{pipeline_file}: stage 'tokenize' needs `tokenizer: PATH` or a 'tokenizer' stage before it")
    config = TokenizeConfig.model_validate({**options.model_dump(), "tokenizer": str(tokdir)})
    fp = tokenize_fingerprint(config.model_dump(), [source])  # the same as `corpus tokenize`'s
    if up_to_date(out, fp, is_shards_folder) and not overwrite:
        say(f"tokenize: {out} is up to date (same inputs and config); nothing to do")
        return out
    card = tokenize_dataset([str(source)], out, config, overwrite=True, command=command, name=name, fingerprint=fp, executor=executor)
    return None if card is None else out
