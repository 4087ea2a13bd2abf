from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """The Ctrl-C tests need Ctrl-C to work: a suite started as a background job (or under nohup)
    inherits SIGINT ignored, and so would every command it starts. A Python handler here becomes
    the default disposition in those commands again."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = REPO / "sample"
GLOSSARY = SAMPLE / "insurance" / "healthcare-gov-2013" / "glossary"
TUTORIAL = SAMPLE / "general" / "python-3.11-docs" / "tutorial"


def build_token_pipeline(base: Path, compare: bool = True) -> Path:
    """ingest -> tokenizer (1,000 tokens) -> tokenize on the glossary and the Python tutorial, run as a
    pipeline into `base/out`; each caller builds its own copy, so its tests cannot touch another's."""
    from corpus.cli import main

    (base / "p.yaml").write_text(
        f"""
name: {base.name}
output: out
executor: {{type: local, tasks: 1}}
sources:
  - {{path: {GLOSSARY}, source: healthcare_gov, domain: insurance}}
  - {{path: {TUTORIAL}, source: python_docs, domain: general}}
stages:
  - ingest: {{}}
  - tokenizer: {{vocab_size: 1000, weights: {{insurance: 0.5, general: 0.5}}, compare: {str(compare).lower()}}}
  - tokenize: {{shard_size_mb: 0.05, min_val_docs_per_domain: 5}}
""",
        encoding="utf-8",
    )
    assert main(["-q", "run", str(base / "p.yaml")]) == 0
    return base / "out"

os.environ.setdefault("CORPUS_QUIET", "1")  # no progress bars in test output


@pytest.fixture
def one_torch_thread():
    """Torch on one thread: two are slower than one on a busy 2-core machine, and a fixed count keeps
    CPU sums identical. Modules that train use it for every test (`pytestmark`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# ---------------------------------------------------------------- a tiny model for the trainer's tests

import os
import re
from pathlib import Path

import pytest

GLOSSARY = REPO / "sample" / "insurance" / "healthcare-gov-2013" / "glossary"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _sample_texts() -> list[str]:
    import json

    texts = [re.sub(r"\A---.*?---", "", p.read_text(encoding="utf-8"), flags=re.S) for p in sorted(GLOSSARY.rglob("*.md"))]
    for row in json.loads((FIXTURES / "sft" / "alpaca_en_demo.json").read_text(encoding="utf-8")):
        texts.append(row["instruction"] + "\n" + row["output"])
    return texts


def build_tiny_model(folder: Path, vocab_size: int = 800) -> Path:
    """A ~100K-parameter LlamaForCausalLM and a BPE tokenizer with corpus's special tokens and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from corpus.tokenize.train_tokenizer import BOS, EOS, PAD, UNK, save_hf_tokenizer, train_bpe

    tokenizer = train_bpe(iter(_sample_texts()), vocab_size, 2)
    save_hf_tokenizer(tokenizer, folder, {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK})
    hf = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(hf), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=hf.bos_token_id,
        eos_token_id=hf.eos_token_id, pad_token_id=hf.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))
