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

from pydantic import BaseModel, ConfigDict, Field

from corpus.classify.train import ClassifierConfig
from corpus.progress import say
from corpus.stages import Stage, StageRun, declare


class ClassifierStageConfig(ClassifierConfig):
    """`corpus classifier train` in a pipeline: seeds are earlier stages (kind or folder name) or paths."""

    positive: list[str] = Field(min_length=1)
    negative: list[str] = Field(min_length=1)
    pool: list[str] = Field(default_factory=list)
    name: str | None = None


class ClassifyStageConfig(BaseModel):
    """`corpus classify` in a pipeline. `model`: a classifier stage or folder (default: the latest
    classifier stage); `inputs`: earlier stages or dataset folders (default: the latest dataset)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    inputs: list[str] = Field(default_factory=list)
    name: str | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    keep_top: float | None = Field(None, gt=0, le=1)
    score_only: bool = False


def run_classifier_stage(run: StageRun) -> Path:
    from corpus.classify.train import classifier_fingerprint, is_classifier_folder, train_classifier
    from corpus.outputs import up_to_date

    options, out = run.options, run.out
    config = ClassifierConfig.model_validate(options.model_dump(exclude={"positive", "negative", "pool", "name"}))
    positive = [run.earlier_or_path(r) for r in options.positive]
    negative = [run.earlier_or_path(r) for r in options.negative]
    pool = [run.earlier_or_path(r) for r in options.pool]
    fp = classifier_fingerprint(config, positive, negative, pool)
    if up_to_date(out, fp, is_classifier_folder) and not run.overwrite:
        say(f"classifier: {out} is up to date (same seeds and config); nothing to do")
        return out
    train_classifier(positive, negative, out, config, pool=pool, name=options.name or run.name.split("/")[0],
                     overwrite=True, command=run.command, fingerprint=fp)  # fmt: skip
    return out


def run_classify_stage(run: StageRun) -> Path | None:
    from corpus.classify import ClassifyConfig, classify_job
    from corpus.classify.train import is_classifier_folder

    options = run.options
    if options.model is not None:
        model = run.earlier_or_path(options.model)
    else:
        found = run.latest(is_classifier_folder)
        if found is None:
            raise run.fail("needs `model: PATH` or a 'classifier' stage before it")
        model = str(found)
    inputs = [run.earlier_or_path(r) for r in options.inputs] if options.inputs else [run.latest_dataset()]
    config = ClassifyConfig(model=model, name=options.name, threshold=options.threshold, keep_top=options.keep_top,
                            score_only=options.score_only)  # fmt: skip
    return run.publish(classify_job(inputs, run.name, config, progress=run.progress))


declare(Stage("classifier", ClassifierStageConfig, run_classifier_stage, "train a fastText classifier on positive and negative seeds"))
declare(Stage("classify", ClassifyStageConfig, run_classify_stage, "score documents with a classifier; keep those above a threshold"))
