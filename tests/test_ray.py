"""The same stage on datatrove's Ray executor, on a local Ray cluster."""

from __future__ import annotations

import os

import pytest

from corpus.dedup import DedupConfig, dedup_job
from corpus.execution import ExecutorConfig, RayOptions, run_stage
from corpus.filter.length import LengthFilterConfig, length_filter_job
from corpus.ingest import ingest_job
from tests.conftest import read_folder

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.mark.ray
@pytest.mark.slow
def test_length_filter_on_ray_matches_local(small_corpus, tmp_path):
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sources = [
        {"paths": [small_corpus / "insurance"], "source": "hc", "domain": "insurance"},
        {"paths": [small_corpus / "general"], "source": "py", "domain": "general"},
        {"paths": [small_corpus / "insurance"], "source": "copy", "domain": "insurance"},  # duplicates for dedup
    ]
    ingested = tmp_path / "ingested"
    run_stage(ingest_job(sources, "t"), ingested, ExecutorConfig(tasks=2, workers=1))
    job = length_filter_job([ingested], "f", LengthFilterConfig(min_chars=300))
    local = run_stage(job, tmp_path / "local", ExecutorConfig(tasks=2, workers=1))
    dedup_local = run_stage(dedup_job([ingested], "d", DedupConfig()), tmp_path / "dedup-local", ExecutorConfig(tasks=2, workers=2))
    on_ray_executor = ExecutorConfig(type="ray", tasks=2, workers=2, ray=RayOptions(cpus_per_task=1, mem_per_cpu_gb=0.5))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        on_ray = run_stage(length_filter_job([ingested], "f", LengthFilterConfig(min_chars=300)), tmp_path / "ray", on_ray_executor)
        # dedup's passes run as threads locally and as datatrove tasks on Ray: the same output
        dedup_ray = run_stage(dedup_job([ingested], "d", DedupConfig()), tmp_path / "dedup-ray", on_ray_executor)
    finally:
        ray.shutdown()
    assert dedup_ray["accounting"][-1] | {"seconds": 0} == dedup_local["accounting"][-1] | {"seconds": 0}
    for kind in ("data", "rejected"):
        a, b = read_folder(tmp_path / "dedup-ray", kind), read_folder(tmp_path / "dedup-local", kind)
        assert (a.height == b.height == 0) or a.sort("id").equals(b.sort("id"))
    assert read_folder(tmp_path / "dedup-ray").height > 0 and read_folder(tmp_path / "dedup-ray", "rejected").height > 0
    assert on_ray["accounting"][-1] | {"seconds": 0} == local["accounting"][-1] | {"seconds": 0}
    assert on_ray["executor"]["type"] == "ray"
    assert read_folder(tmp_path / "ray").sort("id").equals(read_folder(tmp_path / "local").sort("id"))
