"""Progress output: tqdm bars on stderr for long work, silenced by --quiet."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")

QUIET_ENV = "CORPUS_QUIET"  # inherited by executor worker processes


def quiet() -> bool:
    return os.environ.get(QUIET_ENV) == "1"


def set_quiet(value: bool) -> None:
    os.environ[QUIET_ENV] = "1" if value else "0"


def task_progress(items: list[T], stage: str, rank: int, enabled: bool = True) -> Iterable[T]:
    """A bar over one task's items, one line per task."""
    if not enabled or quiet() or not items:
        return items
    from tqdm.auto import tqdm  # imported only for a bar: a tenth of a second that --quiet runs skip

    return tqdm(items, desc=f"{stage} task {rank}", unit="file", position=rank % 8, leave=False, file=sys.stderr)


def say(message: str) -> None:
    """A progress line for people; nothing under --quiet."""
    if not quiet():
        print(message, file=sys.stderr, flush=True)
