from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = REPO / "sample"
SHARED = REPO.parent / "shared" / "data"

os.environ.setdefault("CORPUS_QUIET", "1")  # no progress bars in test output


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def small_corpus(tmp_path) -> Path:
    """A few real Markdown and reStructuredText files in two folders."""
    ins = tmp_path / "insurance"
    gen = tmp_path / "general"
    shutil.copytree(FIXTURES / "md", ins)
    shutil.copytree(FIXTURES / "rst", gen)
    return tmp_path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).parent / "corpus"
    return subprocess.run([str(exe), "--quiet", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def read_folder(folder: Path, kind: str = "data") -> pl.DataFrame:
    files = sorted((folder / kind).glob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
