"""The `classifier` and `classify` stages of a pipeline YAML.

    stages:
      - dedup: {}
      - classifier: {positive: [dedup], positive_domains: [insurance], negative: [dedup], negative_domains: [general]}
      - classify: {inputs: [05-ingest]}        # model: the latest classifier stage, unless named

A seed source or input is an earlier stage (its kind, for the latest such stage, or its folder name,
e.g. `03-dedup`) or a path relative to the pipeline file. The classifier folder is not a dataset
folder: it is trained as one task here, and a rerun with the same seeds and options leaves it as it is.
"""

from __future__ import annotations

from pathlib import Path

from corpus.document import is_dataset
from corpus.errors import CorpusError
from corpus.progress import say


def run_classifier_stage(options, written: list[Path], out: Path, name: str, base: Path, overwrite: bool,
                         command: list[str] | None, resolve) -> Path:  # fmt: skip
    from corpus.classify.train import (
        ClassifierConfig,
        classifier_fingerprint,
        is_classifier_folder,
        train_classifier,
    )
    from corpus.outputs import up_to_date

    config = ClassifierConfig.model_validate(options.model_dump(exclude={"positive", "negative", "pool", "name"}))
    positive = [resolve(r, written, base) for r in options.positive]
    negative = [resolve(r, written, base) for r in options.negative]
    pool = [resolve(r, written, base) for r in options.pool]
    fp = classifier_fingerprint(config, positive, negative, pool)
    if up_to_date(out, fp, is_classifier_folder) and not overwrite:
        say(f"classifier: {out} is up to date (same seeds and config); nothing to do")
        return out
    train_classifier(positive, negative, out, config, pool=pool, name=options.name or name.split("/")[0],
                     overwrite=True, command=command, fingerprint=fp)  # fmt: skip
    return out


def classify_stage_job(options, written: list[Path], name: str, base: Path, pipeline_file: Path, resolve, progress: bool):
    from corpus.classify import ClassifyConfig, classify_job
    from corpus.classify.train import is_classifier_folder

    if options.model is not None:
        model = resolve(options.model, written, base)
    else:
        found = [p for p in written if is_classifier_folder(p)]
        if not found:
            raise CorpusError(f"{pipeline_file}: stage 'classify' needs `model: PATH` or a 'classifier' stage before it")
        model = str(found[-1])
    if options.inputs:
        inputs = [resolve(r, written, base) for r in options.inputs]
    else:
        source = next((p for p in reversed(written) if is_dataset(p)), None)
        if source is None:
            raise CorpusError(f"{pipeline_file}: stage 'classify' needs a dataset stage before it")
        inputs = [str(source)]
    config = ClassifyConfig(model=model, name=options.name, threshold=options.threshold, keep_top=options.keep_top,
                            score_only=options.score_only)  # fmt: skip
    return classify_job(inputs, name, config, progress=progress)
