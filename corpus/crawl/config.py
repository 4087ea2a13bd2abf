"""The crawl's configuration: one small pydantic model, shared by the CLI and pipeline YAML."""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from corpus import __version__

DEFAULT_USER_AGENT = f"corpus-crawler/{__version__}"
DEFAULT_CONTENT_TYPES = ["text/html", "application/xhtml+xml", "text/plain"]


class CrawlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeds: list[str] = Field(default_factory=list, description="start URLs (depth 0)")
    sitemaps: list[str] = Field(default_factory=list, description="sitemap or sitemap-index URLs; their URLs are depth 0")
    allow_domains: list[str] = Field(default_factory=list, description="hosts (and their subdomains) besides the seeds' own")
    include: list[str] = Field(default_factory=list, description="a discovered URL must match one of these regexes")
    exclude: list[str] = Field(default_factory=list, description="a discovered URL matching one of these regexes is skipped")
    max_depth: int = Field(5, ge=0, description="links followed from a seed")
    max_pages: int | None = Field(None, ge=1, description="pages stored, over all runs of this crawl")
    max_bytes: int | None = Field(None, ge=1, description="response bytes downloaded, over all runs of this crawl")
    max_page_bytes: int = Field(5 << 20, ge=1024, description="cap on one response, on the wire and decompressed")
    delay: float = Field(1.0, ge=0, description="seconds between requests to one host (robots Crawl-delay wins if larger)")
    concurrency: int = Field(4, ge=1, le=64, description="requests in flight in all")
    host_concurrency: int = Field(1, ge=1, le=16, description="requests in flight per host")
    user_agent: str = DEFAULT_USER_AGENT
    allow_private: bool = Field(False, description="allow private, loopback and link-local addresses")
    allow_networks: list[str] = Field(default_factory=list, description="CIDR ranges allowed although private")
    ca_bundle: str | None = Field(None, description="PEM file of CA certificates to trust instead of the system's")
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(20.0, gt=0, description="seconds of silence allowed while reading a response")
    page_timeout: float = Field(60.0, gt=0, description="seconds allowed for one whole response")
    retries: int = Field(2, ge=0, le=10, description="retries after a 5xx, a timeout or a dropped connection")
    backoff: float = Field(1.0, ge=0, description="first retry waits this long, each next one twice as long")
    max_redirects: int = Field(5, ge=0, le=30)
    content_types: list[str] = Field(default_factory=lambda: list(DEFAULT_CONTENT_TYPES))
    warc_max_bytes: int = Field(1 << 30, ge=1024, description="a WARC file is closed and a new one begun past this size")
    max_sitemap_urls: int = Field(100_000, ge=1, description="URLs taken from all sitemaps together")

    @field_validator("include", "exclude")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {e}") from None
        return patterns

    @field_validator("allow_networks")
    @classmethod
    def _networks_parse(cls, networks: list[str]) -> list[str]:
        for net in networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network (expected CIDR such as 127.0.0.0/8)") from None
        return networks

    @field_validator("allow_domains")
    @classmethod
    def _domains_lower(cls, domains: list[str]) -> list[str]:
        return [d.strip().lower().strip(".") for d in domains if d.strip()]

    @field_validator("content_types")
    @classmethod
    def _types_lower(cls, types: list[str]) -> list[str]:
        return [t.strip().lower() for t in types]

    def scope_fingerprint_fields(self) -> dict:
        """What decides which URLs belong to the crawl. Limits, pacing and timeouts may change between
        runs of one crawl (rerun with a larger --max-pages to go on); these may not."""
        return self.model_dump(include={"seeds", "sitemaps", "allow_domains", "include", "exclude", "max_depth"})
