"""`corpus crawl`: a polite, safe, resumable crawler that writes WARC for `corpus ingest`.

    OUT/
      warc/crawl-NNNNN.warc.gz   request and response records, rotated by size
      crawl_state.sqlite         frontier, seen-set, requests, hosts (what a rerun resumes from)
      crawl_log.jsonl            every request and every URL's outcome
      card.json, README.md       statistics, skipped and failed URLs with reasons, WARC files
"""

from corpus.crawl.config import CrawlConfig
from corpus.crawl.crawler import STATE_DB, crawl
from corpus.crawl.warc import WARC_DIR

__all__ = ["CrawlConfig", "STATE_DB", "WARC_DIR", "crawl"]
