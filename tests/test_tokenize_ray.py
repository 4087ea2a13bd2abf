"""`corpus tokenize` on datatrove's Ray executor, on a local Ray cluster: the shards of a local run."""

from __future__ import annotations

import json
import os

import pytest

from corpus.execution import ExecutorConfig, RayOptions, run_stage
from corpus.ingest import ingest_job

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.mark.ray
@pytest.mark.slow
def test_tokenize_on_ray_matches_local(small_corpus, tmp_path):
    from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset
    from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, train_tokenizer

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sources = [
        {"paths": [small_corpus / "insurance"], "source": "hc", "domain": "insurance"},
        {"paths": [small_corpus / "general"], "source": "py", "domain": "general"},
    ]
    ingested = tmp_path / "ingested"
    run_stage(ingest_job(sources, "t"), ingested, ExecutorConfig(tasks=2, workers=1))  # two data files
    tokdir = tmp_path / "tok"
    train_tokenizer([str(ingested)], tokdir, TokenizerTrainConfig(vocab_size=400, compare=False))
    config = TokenizeConfig(tokenizer=str(tokdir), shard_size_mb=0.002, min_val_docs_per_domain=2)
    tokenize_dataset([str(ingested)], tmp_path / "local", config, executor=ExecutorConfig(tasks=1))
    on_ray = ExecutorConfig(type="ray", tasks=2, workers=2, ray=RayOptions(cpus_per_task=1, mem_per_cpu_gb=0.5))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        card = tokenize_dataset([str(ingested)], tmp_path / "ray", config, executor=on_ray)
    finally:
        ray.shutdown()
    assert card["executor"]["type"] == "ray"
    index = {name: json.loads((tmp_path / name / "index.json").read_text()) for name in ("local", "ray")}
    assert len(index["local"]["shards"]) > 2
    assert [(s["file"], s["sha256"]) for s in index["ray"]["shards"]] == [(s["file"], s["sha256"]) for s in index["local"]["shards"]]
