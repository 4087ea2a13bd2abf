"""One HTTP request, safely: the host's address checked before connecting, the connection made to
that checked address (no second DNS lookup to rebind), sizes capped on the wire and decompressed.

urllib3 does the HTTP; redirects, retries and decompression are ours because each needs a check
(a redirect's target, a retry's backoff, a decompressed size) that urllib3 would skip.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from corpus.crawl.config import CrawlConfig

ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1"
ACCEPT_ENCODING = "gzip, deflate"  # only what we can decompress under a cap
READ_CHUNK = 64 * 1024


class FetchError(Exception):
    """A request that produced no usable response. `reason` is the short statistic name."""

    def __init__(self, reason: str, detail: str, retryable: bool = False, status: int | None = None, wire_bytes: int = 0):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.status = status
        self.wire_bytes = wire_bytes


# ---------------------------------------------------------------- addresses
#
# An explicit allow rule: an address is crawled only if it is public unicast. An IPv6 address that
# carries an IPv4 address (mapped, compatible, NAT64, 6to4) is judged by that IPv4 address, so
# ::127.0.0.1 or 64:ff9b::a00:1 cannot reach loopback or a private network. Teredo is never crawled.


def _v4(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)


def _v6(cidr: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(cidr)


# (network, kind, lifted by allow_private). The first match wins, so a narrow range comes before a
# wide one. Source: the IANA IPv4 and IPv6 special-purpose address registries.
IPV4_NOT_PUBLIC = [
    (_v4("0.0.0.0/32"), "an unspecified", False),
    (_v4("0.0.0.0/8"), "a 'this network' (0.0.0.0/8)", False),
    (_v4("10.0.0.0/8"), "a private", True),
    (_v4("100.64.0.0/10"), "a carrier-grade NAT (100.64.0.0/10)", True),
    (_v4("127.0.0.0/8"), "a loopback", True),
    (_v4("169.254.0.0/16"), "a link-local", True),
    (_v4("172.16.0.0/12"), "a private", True),
    (_v4("192.0.0.0/24"), "an IETF protocol assignment (192.0.0.0/24)", False),
    (_v4("192.0.2.0/24"), "a documentation", False),
    (_v4("192.88.99.0/24"), "a 6to4 relay anycast (deprecated)", False),
    (_v4("192.168.0.0/16"), "a private", True),
    (_v4("198.18.0.0/15"), "a benchmarking", False),
    (_v4("198.51.100.0/24"), "a documentation", False),
    (_v4("203.0.113.0/24"), "a documentation", False),
    (_v4("224.0.0.0/4"), "a multicast", False),
    (_v4("255.255.255.255/32"), "a broadcast", False),
    (_v4("240.0.0.0/4"), "a reserved", False),
]
# Inside 2001::/23 (IETF protocol assignments) only these blocks are globally reachable unicast.
IPV6_IETF_GLOBAL = [_v6("2001:1::1/128"), _v6("2001:1::2/128"), _v6("2001:1::3/128"), _v6("2001:3::/32"),
                    _v6("2001:4:112::/48"), _v6("2001:30::/28")]  # fmt: skip
IPV6_NOT_PUBLIC = [
    (_v6("::/128"), "an unspecified", False),
    (_v6("::1/128"), "a loopback", True),
    (_v6("ff00::/8"), "a multicast", False),
    (_v6("fe80::/10"), "a link-local", True),
    (_v6("fec0::/10"), "a site-local (deprecated)", True),
    (_v6("fc00::/7"), "a unique local", True),
    (_v6("2001:db8::/32"), "a documentation", False),
    (_v6("3fff::/20"), "a documentation", False),
    (_v6("2001:2::/48"), "a benchmarking", False),
    (_v6("2001:10::/28"), "an ORCHID", False),
    (_v6("2001:20::/28"), "an ORCHID", False),
]
GLOBAL_UNICAST_V6 = _v6("2000::/3")
IETF_V6 = _v6("2001::/23")
MAPPED = _v6("::ffff:0:0/96")
COMPATIBLE = _v6("::/96")
NAT64 = _v6("64:ff9b::/96")
NAT64_LOCAL = _v6("64:ff9b:1::/48")
SIX_TO_FOUR = _v6("2002::/16")
TEREDO = _v6("2001::/32")


@dataclass(frozen=True)
class AddressVerdict:
    """Why an address is refused: `kind` ("a loopback"), the IPv4 address an IPv6 form carries and
    how (`via`), and whether --allow-private lifts the refusal."""

    kind: str
    via: str | None = None
    private: bool = False

    def describe(self, hint: str = "") -> str:
        notes = "; ".join(n for n in (self.via, hint) if n)
        return f"{self.kind} address" + (f" ({notes})" if notes else "")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries, and the form's name; None for native IPv6 (and Teredo,
    which is refused whole)."""
    value = int(addr)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if addr in MAPPED:
        return low32, "IPv4-mapped IPv6"
    if addr in COMPATIBLE and value > 1:  # :: and ::1 are IPv6's own
        return low32, "IPv4-compatible IPv6"
    if addr in NAT64:
        return low32, "NAT64 IPv6"
    if addr in NAT64_LOCAL:
        return low32, "local-use NAT64 IPv6"
    if addr in SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF), "6to4 IPv6"
    return None


def _ipv4_verdict(addr: ipaddress.IPv4Address) -> AddressVerdict | None:
    for net, kind, private in IPV4_NOT_PUBLIC:
        if addr in net:
            return AddressVerdict(kind, None, private)
    return None


def _ipv6_verdict(addr: ipaddress.IPv6Address) -> AddressVerdict | None:
    for net, kind, private in IPV6_NOT_PUBLIC:
        if addr in net:
            return AddressVerdict(kind, None, private)
    if addr in TEREDO:
        value = int(addr)
        server = ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address((value & 0xFFFFFFFF) ^ 0xFFFFFFFF)
        return AddressVerdict("a Teredo tunnel", f"server {server}, client {client}; Teredo is never crawled")
    if addr not in GLOBAL_UNICAST_V6:
        return AddressVerdict("a reserved", "outside 2000::/3, the global unicast range")
    if addr in IETF_V6 and not any(addr in net for net in IPV6_IETF_GLOBAL):
        return AddressVerdict("an IETF protocol assignment", "2001::/23")
    return None


def judge_address(ip: str, config: CrawlConfig) -> AddressVerdict | None:
    """None if `ip` may be crawled, else why not. --allow-network wins over everything and matches
    the address or the IPv4 address it carries; --allow-private lifts private, loopback, link-local,
    carrier-grade NAT, unique local and site-local refusals (of a carried IPv4 address too)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])  # fe80::1%eth0: the zone does not change the verdict
    carried = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else None
    candidates = [addr] + ([carried[0]] if carried else [])
    for net in config.allow_networks:
        network = ipaddress.ip_network(net, strict=False)
        if any(a.version == network.version and a in network for a in candidates):
            return None
    if carried:
        v4, form = carried
        verdict = _ipv4_verdict(v4)
        if verdict is not None:
            verdict = AddressVerdict(verdict.kind, f"{form} of {v4}", verdict.private)
        elif form.startswith("local-use NAT64"):  # translated by a local gateway: never public
            verdict = AddressVerdict("a local-use NAT64", f"{form} of {v4}", True)
    elif isinstance(addr, ipaddress.IPv4Address):
        verdict = _ipv4_verdict(addr)
    else:
        verdict = _ipv6_verdict(addr)
    if verdict is not None and verdict.private and config.allow_private:
        return None
    return verdict


def address_refusal(ip: str, config: CrawlConfig) -> str | None:
    """Why an address may not be crawled, e.g. "a loopback address (IPv4-compatible IPv6 of
    127.0.0.1)"; None if it may."""
    verdict = judge_address(ip, config)
    return verdict.describe() if verdict else None


def resolve_allowed(hostname: str, port: int, config: CrawlConfig) -> str:
    """The address to connect to, or FetchError. Every address the name resolves to must be
    allowed: a name that mixes public and private addresses is refused."""
    try:
        ipaddress.ip_address(hostname)
        addresses = [hostname]  # a literal address: nothing to look up
    except ValueError:
        try:
            infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise FetchError("dns_error", f"cannot resolve {hostname}: {e}") from None
        # IPv4 first: a name with an AAAA record is often not reachable over IPv6 from a crawler
        addresses = sorted(dict.fromkeys(info[4][0] for info in infos), key=lambda ip: ":" in ip)
        if not addresses:
            raise FetchError("dns_error", f"cannot resolve {hostname}: no address")
    for ip in addresses:
        verdict = judge_address(ip, config)
        if verdict:
            hint = "pass --allow-private to crawl it" if verdict.private and not config.allow_private else ""
            name = f"{ip} is" if ip == hostname else f"{hostname} is {ip},"
            raise FetchError("private_address", f"{name} {verdict.describe(hint)}")
    return addresses[0]


# ---------------------------------------------------------------- responses


@dataclass
class Response:
    url: str
    ip: str
    status: int
    reason_phrase: str
    http_version: str
    headers: list[tuple[str, str]]
    request_target: str
    request_headers: list[tuple[str, str]]
    body: bytes = b""  # decompressed
    wire_bytes: int = 0
    media_type: str = ""
    charset: str | None = None
    charset_source: str | None = None  # "header" or "detected"
    seconds: float = 0.0
    links: list[str] = field(default_factory=list)
    nofollow: bool = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def media_type_of(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def charset_param(content_type: str) -> str | None:
    from email.message import Message

    msg = Message()
    msg["content-type"] = content_type
    charset = msg.get_param("charset")
    return str(charset).strip().lower() if charset else None


def detect_charset(body: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body[: 256 * 1024]).best()
    return best.encoding if best else None


def inflate(raw: bytes, encoding: str, cap: int, what: str) -> bytes:
    """Decompress gzip or deflate bytes, refusing output past `cap` without producing it."""
    if encoding in ("gzip", "x-gzip"):
        attempts = [16 + zlib.MAX_WBITS]
    else:  # "deflate" is zlib-wrapped by the spec, raw in some servers
        attempts = [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    last_error: Exception | None = None
    for wbits in attempts:
        out = bytearray()
        data = raw
        try:
            while data:
                decompressor = zlib.decompressobj(wbits)
                out += decompressor.decompress(data, cap + 1 - len(out))
                if len(out) > cap or decompressor.unconsumed_tail:
                    raise FetchError("decompressed_too_large", f"{what}: more than {cap:,} bytes after {encoding} decoding")
                data = decompressor.unused_data  # a further gzip member
                if not decompressor.eof:
                    break
            return bytes(out)
        except zlib.error as e:
            last_error = e
    raise FetchError("bad_content_encoding", f"{what}: cannot decode {encoding}: {last_error}")


class Fetcher:
    """Connection pools per (scheme, host, port, address), shared by the worker threads."""

    def __init__(self, config: CrawlConfig):
        self.config = config
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}

    def _pool(self, scheme: str, hostname: str, port: int, ip: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, hostname, port, ip)
        pool = self._pools.get(key)
        if pool is None:
            kwargs = dict(maxsize=self.config.host_concurrency, block=False, retries=False)
            if scheme == "https":
                ascii_host = hostname.encode("idna").decode("ascii")
                # connect to the checked address, verify the certificate for the name
                pool = urllib3.HTTPSConnectionPool(
                    ip, port, server_hostname=ascii_host, assert_hostname=ascii_host, cert_reqs="CERT_REQUIRED",
                    ca_certs=self.config.ca_bundle, **kwargs,
                )  # fmt: skip
            else:
                pool = urllib3.HTTPConnectionPool(ip, port, **kwargs)
            self._pools[key] = pool
        return pool

    def fetch(self, url: str, ip: str, read_types: tuple[str, ...] | None, cap: int | None = None) -> Response:
        """GET `url` from address `ip`. The body is read when the status is 2xx and the media
        type is in `read_types` (None: any type); otherwise only the headers are returned."""
        cfg = self.config
        cap = cap or cfg.max_page_bytes
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        hostname = parts.hostname or ""
        ascii_host = hostname.encode("idna").decode("ascii")
        host_header = ascii_host if parts.port is None else f"{ascii_host}:{parts.port}"
        if ":" in ascii_host:  # IPv6 literal
            host_header = f"[{ascii_host}]" + (f":{parts.port}" if parts.port else "")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request_headers = [
            ("Host", host_header),
            ("User-Agent", cfg.user_agent),
            ("Accept", ACCEPT),
            ("Accept-Encoding", ACCEPT_ENCODING),
        ]
        pool = self._pool(parts.scheme, hostname, port, ip)
        started = time.monotonic()
        try:
            raw = pool.urlopen(
                "GET",
                target,
                headers=dict(request_headers),
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=cfg.connect_timeout, read=cfg.read_timeout),
            )
        except NewConnectionError as e:
            raise FetchError("connection_error", f"{url}: {_short(e)}", retryable=True) from None
        except ConnectTimeoutError:
            raise FetchError("connect_timeout", f"{url}: no connection in {cfg.connect_timeout}s", retryable=True) from None
        except ReadTimeoutError:
            raise FetchError("read_timeout", f"{url}: no response in {cfg.read_timeout}s", retryable=True) from None
        except SSLError as e:
            raise FetchError("tls_error", f"{url}: {_short(e)}") from None
        except (ProtocolError, HTTPError, OSError) as e:
            raise FetchError("connection_error", f"{url}: {_short(e)}", retryable=True) from None

        try:
            headers = list(raw.headers.items())
            version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(raw.version, "HTTP/1.1")
            content_type = raw.headers.get("Content-Type", "")
            response = Response(
                url=url,
                ip=ip,
                status=raw.status,
                reason_phrase=raw.reason or "",
                http_version=version,
                headers=headers,
                request_target=target,
                request_headers=request_headers,
                media_type=media_type_of(content_type),
            )
            if not 200 <= raw.status < 300:
                return response
            if read_types is not None and response.media_type not in read_types:
                raise FetchError("content_type", f"{url}: content type {response.media_type or 'none'!r} is not in the allowlist",
                                 status=raw.status)  # fmt: skip
            response.body, response.wire_bytes = self._read_body(raw, url, cap, started)
            response.seconds = time.monotonic() - started
            encoding = (raw.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding in ("gzip", "x-gzip", "deflate"):
                response.body = inflate(response.body, encoding, cap, url)
            elif encoding != "identity":
                raise FetchError("unsupported_content_encoding", f"{url}: Content-Encoding {encoding!r}", status=raw.status)
            response.charset = charset_param(content_type)
            response.charset_source = "header" if response.charset else None
            return response
        except FetchError as e:
            e.status = e.status or raw.status
            raise
        finally:
            raw.release_conn() if raw.isclosed() else raw.close()

    def _read_body(self, raw, url: str, cap: int, started: float) -> tuple[bytes, int]:
        cfg = self.config
        declared = raw.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > cap:
            raise FetchError("too_large", f"{url}: Content-Length {int(declared):,} is over the cap of {cap:,} bytes")
        body = bytearray()
        try:
            for chunk in raw.stream(READ_CHUNK, decode_content=False):
                body += chunk
                if len(body) > cap:
                    raise FetchError("too_large", f"{url}: more than {cap:,} bytes", wire_bytes=len(body))
                if time.monotonic() - started > cfg.page_timeout:
                    raise FetchError("page_timeout", f"{url}: not complete after {cfg.page_timeout}s",
                                     retryable=True, wire_bytes=len(body))  # fmt: skip
        except ReadTimeoutError:
            raise FetchError("read_timeout", f"{url}: body stalled for {cfg.read_timeout}s", retryable=True,
                             wire_bytes=len(body)) from None  # fmt: skip
        except (ProtocolError, HTTPError, OSError) as e:
            raise FetchError("connection_error", f"{url}: {_short(e)}", retryable=True, wire_bytes=len(body)) from None
        return bytes(body), len(body)


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
