"""What the proxy's front served, read from its access log over HTTP.

The front writes one JSON line per request (``front.LOG_FORMAT``) and serves the file at
``/_orchestrator/access.log``, ranges allowed. A build notes the log's size before it
runs (``Watch.start``) and reads only what was written after (a ``Range`` request), so
no Docker call and no file access is needed, from any machine that reaches the proxy.
What it reads is the front's records of a time span, each with its cache status and bytes:
after a failed build, the projects the cache could not serve (``Span.missing``); for the
cache report, what was a hit and what was fetched. Other builds running at the same time
write into the same span: a record says which client and agent sent it, not which build.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from orchestrator.proxy.front import ACCESS_LOG_PATH, OFFLINE_PREFIX
from orchestrator.proxy.httpclient import Exchange, exchange
from orchestrator.proxy.probe import PROBE_AGENT

READ_TIMEOUT = 2.0  # seconds to read the log after a build; it is on this machine's loopback
# What $upstream_cache_status says when the answer came from the cache.
CACHE_HITS = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})
_SEPARATORS = re.compile(r"[-_.]+")
_CONTENT_RANGE = re.compile(r"bytes (?:\d+-\d+|\*)/(\d+)")
_RANGE_START = re.compile(r"bytes (\d+)-")
# The end of the log read after a build whose start was not noted (``Watch.later``): some
# 800 requests of a build and its neighbours; more is read when all of it is that recent.
TAIL_BYTES = 256 * 1024


def normalize(name: str) -> str:
    """A project name as PEP 503 compares them."""
    return _SEPARATORS.sub("-", name).lower()


@dataclass(frozen=True)
class Record:
    """One request the front answered."""

    time: float  # seconds since the epoch, when it was answered
    method: str
    uri: str
    status: int
    bytes: int
    cache: str  # HIT, MISS, STALE, UPDATING, EXPIRED, BYPASS, REVALIDATED or ""
    upstream_status: str  # what proxpi (or the offline dead end) answered, "" if not asked
    request_time: float
    client: str
    agent: str

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.uri).path)

    @property
    def offline(self) -> bool:
        """Served by the cache-only ``/offline/`` route (proxpi is never asked there)."""
        return self.path.startswith(f"{OFFLINE_PREFIX}/")

    @property
    def _parts(self) -> list[str]:
        path = self.path.removeprefix(OFFLINE_PREFIX)
        return path.split("/")[1:] if path.startswith("/index/") else []

    @property
    def kind(self) -> str:
        """``page`` (a project's index page), ``file`` (a distribution or its metadata), or
        ``other`` (the project list, the front's own paths)."""
        parts = self._parts
        if len(parts) == 3 and parts[1] and parts[2] == "":
            return "page"
        if len(parts) == 3 and parts[1] and parts[2]:
            return "file"
        return "other"

    @property
    def project(self) -> str | None:
        """The normalised project a page or file belongs to."""
        parts = self._parts
        if self.kind in ("page", "file"):
            return normalize(parts[1])
        return None

    @property
    def hit(self) -> bool:
        """Answered from the front's cache."""
        return self.cache in CACHE_HITS

    @property
    def asked_proxpi(self) -> bool:
        """Passed on to proxpi (which may have asked the upstream in turn)."""
        return not self.offline and self.upstream_status not in ("", "-")

    @property
    def probe(self) -> bool:
        """orchestrator's own readiness check, not a package request."""
        return self.agent == PROBE_AGENT

    @property
    def failed(self) -> bool:
        return self.status >= 400

    @property
    def installer(self) -> str:
        """The client's product as its user agent names it (``pip/24.0 {...}`` is pip):
        pip, uv, poetry... or ``-`` when it sent none."""
        return self.agent.partition("/")[0].lower() or "-"


def parse(text: str) -> list[Record]:
    """The records among the log's lines; a torn or foreign line is skipped."""
    return list(_records(text.splitlines()))


def _records(lines: Iterable[str]) -> Iterator[Record]:
    for raw in lines:
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
            yield Record(
                time=float(data["msec"]),
                method=str(data.get("method", "")),
                uri=str(data["uri"]),
                status=int(data["status"]),
                bytes=int(data.get("bytes", 0) or 0),
                cache=str(data.get("cache", "") or ""),
                upstream_status=str(data.get("upstream_status", "") or ""),
                request_time=float(data.get("request_time", 0) or 0),
                client=str(data.get("client", "")),
                agent=str(data.get("agent", "")),
            )
        except (ValueError, KeyError, TypeError):
            continue


@dataclass(frozen=True)
class Span:
    """The front's records of one stretch of time (one build, and whatever ran beside it)."""

    records: tuple[Record, ...]

    @property
    def requests(self) -> tuple[Record, ...]:
        """Package requests: pages and files, orchestrator's own probes left out."""
        return tuple(r for r in self.records if r.kind in ("page", "file") and not r.probe)

    def missing(self) -> list[str]:
        """Projects whose page or file the proxy could not serve, in the order first seen."""
        found = [r.project for r in self.requests if r.failed and r.project]
        return list(dict.fromkeys(found))

    def statuses(self, project: str) -> list[int]:
        """What the proxy answered for one project's failed requests."""
        return sorted({r.status for r in self.requests if r.failed and r.project == project})

    @property
    def hits(self) -> tuple[Record, ...]:
        return tuple(r for r in self.requests if r.hit)

    @property
    def fetched(self) -> tuple[Record, ...]:
        """Requests passed on to proxpi: the only ones that can reach the upstream."""
        return tuple(r for r in self.requests if r.asked_proxpi)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.requests)

    def since(self, started: float) -> Span:
        """The records answered from ``started`` on (seconds since the epoch)."""
        return Span(tuple(r for r in self.records if r.time >= started))


def log_url(index_url: str) -> str:
    """Where the front serves its access log, from any index URL of the proxy."""
    parts = urlsplit(index_url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{ACCESS_LOG_PATH}"


def size(index_url: str, timeout: float = READ_TIMEOUT, *, via: Exchange = exchange) -> int | None:
    """The log's size now, None when there is no front's log at that URL."""
    try:
        status, headers, _ = _request("HEAD", log_url(index_url), {}, timeout, via=via)
    except (OSError, ValueError, IndexError):
        return None
    length = headers.get("content-length")
    return int(length) if status == 200 and length and length.isdigit() else None


def read(
    index_url: str, since: int = 0, timeout: float = READ_TIMEOUT, *, via: Exchange = exchange
) -> Span | None:
    """The records written from byte ``since`` on; None when the log cannot be read.

    A log rotated meanwhile (smaller than ``since``) is read from its start: its earlier
    part went to the rotated file, which is not served.
    """
    url = log_url(index_url)
    try:
        ranged = {"Range": f"bytes={since}-"}
        status, headers, body = _request("GET", url, ranged, timeout, via=via)
        if status == 416:
            total = _CONTENT_RANGE.match(headers.get("content-range", ""))
            if total is None or int(total.group(1)) >= since:
                return Span(())  # nothing new
            status, headers, body = _request("GET", url, {}, timeout, via=via)
    except (OSError, ValueError, IndexError):
        return None
    if status not in (200, 206):
        return None
    return Span(tuple(parse(body.decode("utf-8", "replace"))))


def tail(
    index_url: str, started: float, timeout: float = READ_TIMEOUT, *, via: Exchange = exchange
) -> Span | None:
    """The records answered from ``started`` on, read from the log's end: its last
    ``TAIL_BYTES``, or more when all of those are that recent (the rest may be too)."""
    url, want = log_url(index_url), TAIL_BYTES
    while True:
        try:
            status, headers, body = _request(
                "GET", url, {"Range": f"bytes=-{want}"}, timeout, via=via
            )
        except (OSError, ValueError, IndexError):
            return None
        if status == 416:
            return Span(())  # an empty log
        if status not in (200, 206):
            return None
        records = parse(body.decode("utf-8", "replace"))  # a torn first line is skipped
        begins = _RANGE_START.match(headers.get("content-range", ""))
        whole = status == 200 or begins is None or int(begins.group(1)) == 0
        if whole or (records and records[0].time < started):
            return Span(tuple(records)).since(started)
        want *= 8


@dataclass(frozen=True)
class Watch:
    """A build's view of the log: where it stood when the build began (``offset``), or
    only when (None: read from the end afterwards, one request fewer)."""

    index_url: str
    offset: int | None
    started: float
    via: Exchange = exchange

    @classmethod
    def start(
        cls, index_url: str, timeout: float = 0.5, *, via: Exchange = exchange
    ) -> Watch | None:
        """Note the log's size now; None when the proxy has no front's log (external)."""
        offset = size(index_url, timeout, via=via)
        return None if offset is None else cls(index_url, offset, time.time(), via)

    @classmethod
    def later(cls, index_url: str, *, via: Exchange) -> Watch:
        """Nothing asked before the build: where each question costs a trip to the engine
        (``reach``), the log is read once, from its end, when the build is over."""
        return cls(index_url, None, time.time(), via)

    def span(self, timeout: float = READ_TIMEOUT) -> Span | None:
        """What the front served since ``start``."""
        if self.offset is None:
            return tail(self.index_url, self.started - 1.0, timeout, via=self.via)
        found = read(self.index_url, self.offset, timeout, via=self.via)
        if found is None:
            return None
        return found.since(self.started - 1.0)


def _request(
    method: str, url: str, headers: dict[str, str], timeout: float, *, via: Exchange
) -> tuple[int, dict[str, str], bytes]:
    """Plain http over a socket (``httpclient.exchange``: every build in proxy mode notes the
    log's size, and http.client's import alone is a fifth of the overhead budget), or from
    the engine's side when this machine's loopback is not the engine's (``reach``)."""
    return via(method, url, {"User-Agent": PROBE_AGENT, **headers}, timeout)
