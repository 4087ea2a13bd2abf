"""The length filter: documents shorter or longer than configured bounds, vectorised with Arrow."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpus.document import reject_where
from corpus.stages import Stage, declare


class LengthFilterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_chars: int = Field(0, ge=0, description="reject documents with fewer characters (reason too_short)")
    max_chars: int | None = Field(None, ge=1, description="reject documents with more characters (reason too_long)")
    min_words: int = Field(0, ge=0, description="reject documents with fewer words (reason too_few_words)")

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError(f"max_chars ({self.max_chars}) is below min_chars ({self.min_chars})")
        return self


class LengthFilter(PipelineStep):
    name = "length filter"
    type = "filter"

    def __init__(self, config: LengthFilterConfig):
        super().__init__()
        self.config = config

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        cfg = self.config
        for table in data:
            chars = pc.utf8_length(table.column("text"))
            table = reject_where(table, pc.less(chars, cfg.min_chars), "too_short")
            if cfg.max_chars is not None:
                table = reject_where(table, pc.greater(chars, cfg.max_chars), "too_long")
            if cfg.min_words:
                words = pc.count_substring_regex(table.column("text"), r"\S+")
                table = reject_where(table, pc.less(words, cfg.min_words), "too_few_words")
            yield table


def length_filter_job(inputs: list[str], name: str, config: LengthFilterConfig, progress: bool = True):
    from corpus.execution import DatasetReader, StageJob, dataset_inputs

    files, lineage = dataset_inputs(inputs)

    def make_steps(out_dir: str, work_dir: str):
        return [DatasetReader(files, work_dir, "length_filter", progress=progress), LengthFilter(config)]

    return StageJob(stage="length_filter", name=name, config=config.model_dump(), inputs=lineage, make_steps=make_steps)


def _run(run):
    return run.publish(length_filter_job([run.latest_dataset()], run.name, run.options, progress=run.progress))


declare(Stage("length_filter", LengthFilterConfig, _run, "reject documents outside length bounds"))
