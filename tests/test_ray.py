"""The same stage on datatrove's Ray executor, on a local Ray cluster (one for the module)."""

from __future__ import annotations

import json
import os

import pytest

from corpus.dedup import DedupConfig, dedup_job
from corpus.execution import run_stage
from corpus.executors import ExecutorConfig, RayOptions
from corpus.filter.length import LengthFilterConfig, length_filter_job
from corpus.ingest import ingest_job
from tests.conftest import read_folder

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
ON_RAY = ExecutorConfig(type="ray", tasks=2, workers=2, ray=RayOptions(cpus_per_task=1, mem_per_cpu_gb=0.5))


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _ingest(small_corpus, out, copies: bool = True):
    sources = [
        {"paths": [small_corpus / "insurance"], "source": "hc", "domain": "insurance"},
        {"paths": [small_corpus / "general"], "source": "py", "domain": "general"},
    ]
    if copies:
        sources.append({"paths": [small_corpus / "insurance"], "source": "copy", "domain": "insurance"})  # duplicates for dedup
    run_stage(ingest_job(sources, "t"), out, ExecutorConfig(tasks=2, workers=1))  # two data files
    return out


@pytest.mark.ray
@pytest.mark.slow
def test_length_filter_on_ray_matches_local(small_corpus, tmp_path, ray_cluster):
    ingested = _ingest(small_corpus, tmp_path / "ingested")
    job = length_filter_job([ingested], "f", LengthFilterConfig(min_chars=300))
    local = run_stage(job, tmp_path / "local", ExecutorConfig(tasks=2, workers=1))
    dedup_local = run_stage(dedup_job([ingested], "d", DedupConfig()), tmp_path / "dedup-local", ExecutorConfig(tasks=2, workers=2))
    on_ray = run_stage(length_filter_job([ingested], "f", LengthFilterConfig(min_chars=300)), tmp_path / "ray", ON_RAY)
    # dedup's passes run as threads locally and as datatrove tasks on Ray: the same output
    dedup_ray = run_stage(dedup_job([ingested], "d", DedupConfig()), tmp_path / "dedup-ray", ON_RAY)
    assert dedup_ray["accounting"][-1] | {"seconds": 0} == dedup_local["accounting"][-1] | {"seconds": 0}
    for kind in ("data", "rejected"):
        a, b = read_folder(tmp_path / "dedup-ray", kind), read_folder(tmp_path / "dedup-local", kind)
        assert (a.height == b.height == 0) or a.sort("id").equals(b.sort("id"))
    assert read_folder(tmp_path / "dedup-ray").height > 0 and read_folder(tmp_path / "dedup-ray", "rejected").height > 0
    assert on_ray["accounting"][-1] | {"seconds": 0} == local["accounting"][-1] | {"seconds": 0}
    assert on_ray["executor"]["type"] == "ray"
    assert read_folder(tmp_path / "ray").sort("id").equals(read_folder(tmp_path / "local").sort("id"))


@pytest.mark.ray
@pytest.mark.slow
def test_tokenize_on_ray_matches_local(small_corpus, tmp_path, ray_cluster):
    from corpus.tokenize.shards import TokenizeConfig, tokenize_dataset
    from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, train_tokenizer

    ingested = _ingest(small_corpus, tmp_path / "ingested", copies=False)
    tokdir = tmp_path / "tok"
    train_tokenizer([str(ingested)], tokdir, TokenizerTrainConfig(vocab_size=400, compare=False))
    config = TokenizeConfig(tokenizer=str(tokdir), shard_size_mb=0.002, min_val_docs_per_domain=2)
    tokenize_dataset([str(ingested)], tmp_path / "local", config, executor=ExecutorConfig(tasks=1))
    card = tokenize_dataset([str(ingested)], tmp_path / "ray", config, executor=ON_RAY)
    assert card["executor"]["type"] == "ray"
    index = {name: json.loads((tmp_path / name / "index.json").read_text()) for name in ("local", "ray")}
    assert len(index["local"]["shards"]) > 2
    assert [(s["file"], s["sha256"]) for s in index["ray"]["shards"]] == [(s["file"], s["sha256"]) for s in index["local"]["shards"]]
