"""`corpus crawl`: a polite, safe, resumable crawler that writes WARC for `corpus ingest`.

    OUT/
      warc/crawl-NNNNN.warc.gz   request and response records, rotated by size
      crawl_state.sqlite         frontier, seen-set, requests, hosts (what a rerun resumes from)
      crawl_log.jsonl            every request and every URL's outcome
      card.json, README.md       statistics, skipped and failed URLs with reasons, WARC files
"""

from pathlib import Path

from corpus.crawl.config import CrawlConfig
from corpus.crawl.crawler import STATE_DB, crawl
from corpus.crawl.warc import WARC_DIR

__all__ = ["CrawlConfig", "STATE_DB", "WARC_DIR", "crawl", "crawl_source"]


def crawl_source(config: CrawlConfig, output: Path, source: str, domain: str, overwrite: bool,
                 command: list[str] | None) -> dict:  # fmt: skip
    """A pipeline source given as `crawl:`: crawl (or resume, or find finished) into `output`, and
    return the ingest source spec that reads its WARC files. A crawl there of other seeds or scope
    is the pipeline's own stale output, so it is replaced, as stale stage outputs are."""
    crawl(config, output, overwrite=overwrite, command=command, name=f"{source} crawl", replace_other_scope=True)
    return {"paths": [str(Path(output) / WARC_DIR)], "source": source, "domain": domain, "format": "warc"}
