"""URL normalisation (courlan) and the crawl's scope: which URLs belong to it, and why not."""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from courlan import normalize_url

from corpus.crawl.config import CrawlConfig

ALLOWED_SCHEMES = ("http", "https")


class BadURL(ValueError):
    """A URL that cannot be crawled at all; the message is the skip reason's detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def normalise(url: str, base: str | None = None) -> str:
    """The seen-set key of a URL: absolute, no fragment, lowercased host, default port dropped,
    dot segments and query order normalised (courlan). Raises BadURL."""
    url = url.strip()
    if base is not None:
        url = urljoin(base, url)
    url, _fragment = urldefrag(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise BadURL("invalid_url", f"{url}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BadURL("unsupported_scheme", f"{url}: scheme {scheme or 'none'!r} (only http and https)")
    if not parts.hostname:
        raise BadURL("invalid_url", f"{url}: no host")
    if port == 0:
        raise BadURL("invalid_url", f"{url}: port 0")
    if "/." in parts.path:  # courlan keeps dot segments; the stdlib removes them (RFC 3986 5.2.4)
        path = urlsplit(urljoin(f"{scheme}://x/", parts.path)).path
        url = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    try:
        normal = normalize_url(url, strict=False)
    except (ValueError, UnicodeError) as e:
        raise BadURL("invalid_url", f"{url}: {e}") from None
    try:
        (urlsplit(normal).hostname or "").encode("idna")
    except UnicodeError as e:
        raise BadURL("invalid_url", f"{url}: host is not a valid domain name: {e}") from None
    if not urlsplit(normal).path:
        normal += "/"  # http://host and http://host/ are one page
    return normal


def host_of(url: str) -> str:
    """host[:port] of a normalised URL: the unit of politeness (delay, concurrency, robots.txt)."""
    return urlsplit(url).netloc


class Scope:
    """Same host as a seed by default, plus allowed domains and their subdomains; include and
    exclude regexes apply to discovered URLs, not to seeds."""

    def __init__(self, config: CrawlConfig, seed_hosts: set[str]):
        self.seed_hosts = {h.lower() for h in seed_hosts}
        self.allow_domains = list(config.allow_domains)
        self.include = [re.compile(p) for p in config.include]
        self.exclude = [re.compile(p) for p in config.exclude]

    def host_allowed(self, hostname: str) -> bool:
        hostname = hostname.lower()
        if hostname in self.seed_hosts:
            return True
        return any(hostname == d or hostname.endswith("." + d) for d in self.allow_domains)

    def check(self, url: str) -> tuple[str, str] | None:
        """None when a discovered URL is in scope, else (reason, detail)."""
        hostname = urlsplit(url).hostname or ""
        if not self.host_allowed(hostname):
            return "out_of_scope", f"host {hostname} is not a seed host or an allowed domain"
        for pattern in self.exclude:
            if pattern.search(url):
                return "excluded_pattern", f"matches --exclude {pattern.pattern!r}"
        if self.include and not any(p.search(url) for p in self.include):
            return "not_included", "matches no --include pattern"
        return None
