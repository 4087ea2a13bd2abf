"""WARC.gz output with warcio: a request and a response record per stored page, files rotated by
size. A file being written is hidden (`.NAME.open`, which `corpus ingest` skips) and renamed when
closed; after a kill it is cut back to its last committed record, so it holds no half record."""

from __future__ import annotations

import io
import os
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpus import __version__
from corpus.crawl.fetch import Response
from corpus.crawl.state import CrawlState

WARC_DIR = "warc"
# Transfer details that no longer describe the stored (decoded) payload; kept under another name,
# the way Common Crawl keeps them, so a reader does not try to decode the payload again.
_RENAMED_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


def _open_name(name: str) -> str:
    return f".{name}.open"


class RotatingWarcWriter:
    def __init__(self, folder: Path, state: CrawlState, max_bytes: int, info: dict[str, str]):
        self.folder = Path(folder)
        self.state = state
        self.max_bytes = max_bytes
        self.info = info
        self._file = None
        self._writer: WARCWriter | None = None
        self._name: str | None = None

    # ---- recovery after a kill
    def recover(self) -> list[str]:
        """Cut open files back to their committed size and close them; returns what was done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        notes = []
        known = set()
        for row in self.state.warc_files():
            known.add(row["name"])
            if row["state"] != "open":
                continue
            hidden, final = self.folder / _open_name(row["name"]), self.folder / row["name"]
            if hidden.exists():
                size = hidden.stat().st_size
                if row["committed_bytes"] == 0:
                    hidden.unlink()
                    self.state.warc_removed(row["name"])
                    notes.append(f"{row['name']}: removed (nothing committed)")
                    continue
                if size > row["committed_bytes"]:
                    with open(hidden, "r+b") as f:
                        f.truncate(row["committed_bytes"])
                    notes.append(f"{row['name']}: cut {size - row['committed_bytes']} bytes of an unfinished record")
                os.replace(hidden, final)
            elif not final.exists():
                self.state.warc_removed(row["name"])
                notes.append(f"{row['name']}: missing, forgotten")
                continue
            self.state.warc_closed(row["name"])
        for stray in self.folder.glob(".*.open"):  # created, but killed before it was recorded
            if stray.name[1:-5] not in known:
                stray.unlink()
        self.state.commit()
        return notes

    # ---- writing
    def _open(self) -> None:
        names = [row["name"] for row in self.state.warc_files()]
        index = 1 + max((int(n.split("-")[1].split(".")[0]) for n in names), default=-1)
        self._name = f"crawl-{index:05d}.warc.gz"
        self.state.warc_opened(self._name)
        self.state.commit()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._file = open(self.folder / _open_name(self._name), "wb")
        self._writer = WARCWriter(self._file, gzip=True)
        info = {"software": f"corpus-crawler {__version__} (warcio)", "format": "WARC File Format 1.1", **self.info}
        self._writer.write_record(self._writer.create_warcinfo_record(self._name, info))
        self._file.flush()
        self.state.warc_committed(self._name, self._file.tell(), 1)
        self.state.commit()

    def write_page(self, response: Response) -> tuple[str, int]:
        """Write the request/response pair; returns (file name, bytes committed after it). The
        caller records that in the same transaction as the page's state, then calls after_commit."""
        if self._writer is None:
            self._open()
        w = self._writer
        request_headers = StatusAndHeaders(
            f"GET {response.request_target} HTTP/1.1", response.request_headers, is_http_request=True
        )
        request = w.create_warc_record(
            response.url, "request", payload=io.BytesIO(b""), length=0, http_headers=request_headers,
            warc_headers_dict={"WARC-IP-Address": response.ip},
        )  # fmt: skip
        headers = []
        for key, value in response.headers:
            headers.append((f"X-Crawler-{key}", value) if key.lower() in _RENAMED_HEADERS else (key, value))
        headers.append(("Content-Length", str(len(response.body))))
        http_headers = StatusAndHeaders(
            f"{response.status} {response.reason_phrase}".strip(), headers, protocol=response.http_version
        )
        warc_headers = {"WARC-IP-Address": response.ip}
        if response.charset:
            # not a standard WARC field: the charset the crawler used (header or detection), for readers
            warc_headers["WARC-Identified-Content-Charset"] = response.charset
        record = w.create_warc_record(
            response.url, "response", payload=io.BytesIO(response.body), length=len(response.body),
            http_headers=http_headers, warc_headers_dict=warc_headers,
        )  # fmt: skip
        w.write_request_response_pair(request, record)
        self._file.flush()
        return self._name, self._file.tell()

    def after_commit(self) -> None:
        if self._file is not None and self._file.tell() >= self.max_bytes:
            self.close()

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        os.replace(self.folder / _open_name(self._name), self.folder / self._name)
        self.state.warc_closed(self._name)
        self.state.commit()
        self._file = self._writer = self._name = None
