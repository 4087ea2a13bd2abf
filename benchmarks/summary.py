"""One line per side-by-side measurement, for `make bench` (benchmarks/bench_quick.py).

A benchmark calls `record(...)` after it has printed its own figures. When the environment variable
BENCH_SUMMARY names a file, the measurement is appended to it as one JSON line; otherwise nothing
happens, so every benchmark still runs on its own exactly as before.
"""

from __future__ import annotations

import json
import os
import statistics


def load_average() -> float:
    """The 1-minute load average (how busy the machine was while we measured)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # not every platform has it
        return float("nan")


def median(values) -> float:
    return statistics.median(list(values))


def record(stage: str, measure: str, ours: float, peer: float, peer_name: str, unit: str, higher_is_better: bool = True,
           target: float | None = None, rounds: int | None = None) -> None:  # fmt: skip
    """`ours` and `peer` in `unit`; the ratio is how many times better ours is (>1: ours wins)."""
    path = os.environ.get("BENCH_SUMMARY")
    if not path:
        return
    ratio = ours / peer if higher_is_better else peer / ours
    row = {
        "stage": stage, "measure": measure, "ours": ours, "peer": peer, "peer_name": peer_name, "unit": unit,
        "ratio": ratio, "target": target, "rounds": rounds, "load": load_average(),
    }  # fmt: skip
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
