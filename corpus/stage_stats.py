"""Per-task statistics files that a stage's steps write and the finalising step merges."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

STATS_DIR = "task_stats"


def write_task_stats(work_dir: str | Path, step: str, rank: int, stats: dict) -> None:
    folder = Path(work_dir) / STATS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{step}-{rank:05d}.json"
    tmp = final.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stats, sort_keys=True), encoding="utf-8")
    os.replace(tmp, final)


def read_task_stats(work_dir: str | Path, step: str, world_size: int) -> list[dict]:
    folder = Path(work_dir) / STATS_DIR
    out = []
    for rank in range(world_size):
        path = folder / f"{step}-{rank:05d}.json"
        out.append(json.loads(path.read_text(encoding="utf-8")) if path.exists() else {})
    return out


def merge_counts(parts: list[dict], key: str) -> dict:
    total: Counter = Counter()
    for part in parts:
        total.update(part.get(key, {}))
    return dict(sorted(total.items()))
