"""Held-out splits by document id: one side of a seeded hash cut, as a dataset folder.

A document is held out when the hash of its id (mixed with the seed) falls below `fraction`. Ids
are the hash of the normalised text given at ingest and kept by every stage, so the same document
falls on the same side in the raw ingest and in any cleaned version of it: hold out 10% of a raw
and of a filtered dataset with the same seed, and the two held-out parts are the same documents.
`train ablate --holdout` uses this to evaluate every arm on documents none of them trained on.

`part: rest` keeps the other documents and rejects the held-out ones (reason `held_out`);
`part: held_out` keeps the held-out ones and rejects the rest (reason `not_held_out`).
"""

from __future__ import annotations

from typing import Iterator, Literal

import numpy as np
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field

from corpus.document import reject_where
from corpus.shard_format import id_hashes, mix_seed, unit_interval

STAGE = "split"


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(gt=0, lt=1, description="share of documents held out, by id hash")
    part: Literal["held_out", "rest"] = Field(description="which side is kept")
    seed: int = 0


def held_out_mask(ids: list[str], fraction: float, seed: int) -> np.ndarray:
    return unit_interval(mix_seed(id_hashes(ids), seed)) < fraction


class HoldOut(PipelineStep):
    name = "held-out split"
    type = "filter"

    def __init__(self, config: SplitConfig):
        super().__init__()
        self.config = config

    def run(self, data: Iterator[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        cfg = self.config
        for table in data:
            held = held_out_mask(table.column("id").to_pylist(), cfg.fraction, cfg.seed)
            if cfg.part == "rest":
                yield reject_where(table, pa.array(held), "held_out")
            else:
                yield reject_where(table, pa.array(~held), "not_held_out")


def split_job(inputs: list[str], name: str, config: SplitConfig, progress: bool = True):
    from corpus.execution import DatasetReader, StageJob, dataset_inputs

    files, lineage = dataset_inputs(inputs)

    def make_steps(out_dir: str, work_dir: str):
        return [DatasetReader(files, work_dir, STAGE, progress=progress), HoldOut(config)]

    return StageJob(stage=STAGE, name=name, config=config.model_dump(), inputs=lineage, make_steps=make_steps, threads=True)
