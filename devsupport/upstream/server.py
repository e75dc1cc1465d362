#!/usr/bin/env python3
"""A hermetic, PyPI-like package index upstream for tests (standard library only).

Serves a static PEP 503 tree (``simple/`` + ``files/``, see ``devsupport/index.py``) the way
PyPI serves its simple API and files, as far as clients and caching proxies can tell:

* ``/files/...``: ``Cache-Control: max-age=365000000, immutable, public``, ``Content-Length``,
  a strong ``ETag`` (the file's sha256) and ``Last-Modified``; ``If-None-Match`` gives 304;
  ``Range: bytes=...`` with one range gives 206 and that part (416 beyond the end), as
  PyPI's file host does: uv and poetry read a wheel's METADATA that way when the index does
  not publish it, and would otherwise fetch the whole file once more for it.
* ``/simple/`` and ``/simple/<name>/``: ``Cache-Control: max-age=600, public``, an ``ETag``,
  ``Vary: Accept``, and the format chosen from the request's ``Accept`` header as PyPI
  chooses it (``negotiate``): PEP 691 JSON (``index.json`` beside the page, served as
  exactly ``application/vnd.pypi.simple.v1+json``, the type proxpi and PyPI's clients
  compare) when the client ranks it above both HTML types, else ``text/html`` or
  ``application/vnd.pypi.simple.v1+html``; 406 if none is acceptable.
* ``/simple`` and ``/simple/<name>`` (no slash) or a non-normalised name: 301 to
  ``/simple/<normalized-name>/``; an unknown project: 404.
* GET and HEAD; any other method: 405.

Every request is logged as one JSON line on stdout (flushed)::

    {"ts": ..., "method": "GET", "path": "/files/x.whl", "status": 200, "bytes": 1234,
     "client": "172.18.0.3", "user_agent": "pip/23.0.1 ...", "duration_ms": 1.2}

``bytes`` counts body bytes actually written.  A readiness line goes to stderr once the socket is
listening.

Fault injection: while a file named ``FAULT`` exists at the root of the served tree, every request
is answered with the status code written in it (500 when it holds no number), with a plain-text
body and ``Cache-Control: no-store``, and its log line carries ``"fault": true``.  The file is read
per request, so a test outside the container turns a healthy upstream into a failing one and back
by writing and removing one file in the bind-mounted tree.

Configuration: ``--root``/``UPSTREAM_ROOT`` (default ``/srv/index``),
``--port``/``UPSTREAM_PORT`` (8080), ``--host``/``UPSTREAM_HOST`` (0.0.0.0), and, to imitate a
remote index, ``--delay-ms``/``UPSTREAM_DELAY_MS`` (latency added before every response) and
``--rate``/``UPSTREAM_RATE_BPS`` (bytes per second per response body; 0 = unlimited).
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, TextIO

FILE_CACHE_CONTROL = "max-age=365000000, immutable, public"
INDEX_CACHE_CONTROL = "max-age=600, public"
ERROR_CACHE_CONTROL = "no-store"
TEXT_HTML = "text/html"
V1_HTML = "application/vnd.pypi.simple.v1+html"
LATEST_HTML = "application/vnd.pypi.simple.latest+html"
V1_JSON = "application/vnd.pypi.simple.v1+json"
LATEST_JSON = "application/vnd.pypi.simple.latest+json"
READY_MARKER = "upstream: listening"
FAULT_FILE = "FAULT"  # at the tree's root: its presence makes every request fail
DEFAULT_FAULT_STATUS = 500
CHUNK = 64 * 1024

_SEPARATORS = re.compile(r"[-_.]+")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_PROJECT_PATH = re.compile(r"^/simple/([^/]+)(/?)$")
_LOG_LOCK = threading.Lock()


def normalize(name: str) -> str:
    return _SEPARATORS.sub("-", name).lower()


def fault_status(root: Path) -> int | None:
    """The status every request gets while ``root/FAULT`` exists, None when it does not."""
    try:
        text = (root / FAULT_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return DEFAULT_FAULT_STATUS
    try:
        status = HTTPStatus(int(text))
    except ValueError:
        return DEFAULT_FAULT_STATUS
    return int(status) if 400 <= status <= 599 else DEFAULT_FAULT_STATUS


def log_json(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """Write ``record`` as one JSON line and flush (a lock keeps threads' lines whole)."""
    line = json.dumps(record, separators=(",", ":")) + "\n"
    out = stream if stream is not None else sys.stdout
    with _LOG_LOCK:
        out.write(line)
        out.flush()


def parse_accept(header: str | None) -> list[tuple[str, float]]:
    """``Accept`` header -> [(media range, q)], parameters other than q ignored."""
    if header is None or not header.strip():
        return [("*/*", 1.0)]
    ranges: list[tuple[str, float]] = []
    for item in header.split(","):
        fields = [field.strip() for field in item.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


def quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """q of ``media_type`` per RFC 9110: the most specific matching range wins."""
    kind = media_type.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for media, q in ranges:
        if media == media_type:
            specificity = 2
        elif media == f"{kind}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, q)
    return best[1]


def negotiate(accept: str | None, *, json: bool = True) -> str | None:
    """Content type for a simple page, or None when the client accepts none on offer.

    PyPI's order (warehouse's ``_select_content_type``): the highest weight wins, and a tie
    goes to ``text/html``, then the PyPI HTML type, then JSON. So JSON only when the client
    ranks it strictly higher than both HTML types, as pip (``v1+json, v1+html;q=0.1,
    text/html;q=0.01``), uv and proxpi (``v1+json, v1+html;q=0.1``) do; ``*/*`` or no header
    gets ``text/html``. ``json=False``: a page with no JSON beside it offers HTML only.
    """
    ranges = parse_accept(accept)
    q_text = quality(ranges, TEXT_HTML)
    q_pypi = max(quality(ranges, V1_HTML), quality(ranges, LATEST_HTML))
    q_json = max(quality(ranges, V1_JSON), quality(ranges, LATEST_JSON)) if json else 0.0
    if q_json > 0 and q_json > q_text and q_json > q_pypi:
        return V1_JSON
    if q_text <= 0 and q_pypi <= 0:
        return None
    return V1_HTML if q_pypi > q_text else TEXT_HTML


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range a ``Range`` header asks of a ``size``-byte file, as (first, last),
    both included; None for a header served with the whole file (several ranges, another
    unit, nonsense). ValueError for a range that starts beyond the end (416)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first, last = match.groups()
    if not first:  # bytes=-N: the last N bytes
        if int(last) == 0:
            raise ValueError("empty suffix range")
        return max(0, size - int(last)), size - 1
    start = int(first)
    if start >= size:
        raise ValueError("range starts beyond the end")
    if last and int(last) < start:
        return None
    return start, min(int(last), size - 1) if last else size - 1


class _FileInfo:
    __slots__ = ("etag", "mtime_ns", "size")

    def __init__(self, size: int, mtime_ns: int, etag: str) -> None:
        self.size = size
        self.mtime_ns = mtime_ns
        self.etag = etag


class IndexServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        root: Path,
        *,
        delay_s: float = 0.0,
        rate_bps: int = 0,
        log_stream: TextIO | None = None,
    ) -> None:
        super().__init__(address, Handler)
        self.root = root
        self.log_stream = log_stream
        self.delay_s = delay_s
        self.rate_bps = rate_bps
        self._etags: dict[str, _FileInfo] = {}
        self._etags_lock = threading.Lock()

    def file_etag(self, path: Path, stat: os.stat_result) -> str:
        key = str(path)
        with self._etags_lock:
            cached = self._etags.get(key)
            if cached and cached.size == stat.st_size and cached.mtime_ns == stat.st_mtime_ns:
                return cached.etag
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        etag = f'"{digest.hexdigest()}"'
        with self._etags_lock:
            self._etags[key] = _FileInfo(stat.st_size, stat.st_mtime_ns, etag)
        return etag


class Handler(BaseHTTPRequestHandler):
    server: IndexServer
    protocol_version = "HTTP/1.1"
    server_version = "orchestrator-test-upstream/1.0"
    sys_version = ""
    timeout = 120

    _started: float = 0.0
    _sent: int = 0
    _status: int = 0
    _fault: bool = False

    # ---- plumbing -------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self._started = time.monotonic()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by one JSON line per request, written once the body is sent."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("upstream: " + (format % args) + "\n")
        sys.stderr.flush()

    def _log(self) -> None:
        headers = getattr(self, "headers", None)
        record: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "method": getattr(self, "command", None) or "-",
            "path": getattr(self, "path", "-") or "-",
            "status": self._status,
            "bytes": self._sent,
            "client": self.client_address[0] if self.client_address else "-",
            "user_agent": headers.get("User-Agent", "") if headers is not None else "",
            "duration_ms": round((time.monotonic() - self._started) * 1000, 3),
        }
        if self._fault:
            record["fault"] = True
        log_json(record, self.server.log_stream)

    def _begin(self) -> None:
        self._started = time.monotonic()
        self._sent = 0
        self._status = 0
        self._fault = False
        if self.server.delay_s:
            time.sleep(self.server.delay_s)

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self._status = status
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _write(self, stream: BinaryIO | None, data: bytes | None) -> None:
        rate = self.server.rate_bps
        start = time.monotonic()
        view = memoryview(data) if data is not None else None
        offset = 0
        while True:
            if view is not None:
                chunk = view[offset : offset + CHUNK]
                offset += len(chunk)
            else:
                assert stream is not None
                chunk = memoryview(stream.read(CHUNK))
            if not chunk:
                break
            self.wfile.write(chunk)
            self._sent += len(chunk)
            if rate:
                ahead = self._sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

    def _respond_bytes(
        self, status: int, body: bytes, headers: dict[str, str], *, head_only: bool
    ) -> None:
        headers = {**headers, "Content-Length": str(len(body))}
        try:
            self._head(status, headers)
            if not head_only and body:
                self._write(None, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._log()

    def _simple_error(self, status: int, message: str, *, head_only: bool) -> None:
        body = f"{status} {HTTPStatus(status).phrase}: {message}\n".encode()
        self._respond_bytes(
            status,
            body,
            {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": ERROR_CACHE_CONTROL},
            head_only=head_only,
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by the stdlib (bad request line, unknown method...): logged as JSON."""
        self._sent = 0
        self.close_connection = True
        self._simple_error(code, message or HTTPStatus(code).phrase, head_only=False)

    # ---- methods --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._begin()
        self._route(head_only=False)

    def do_HEAD(self) -> None:
        self._begin()
        self._route(head_only=True)

    def _not_allowed(self) -> None:
        self._begin()
        body = b"405 Method Not Allowed\n"
        self._respond_bytes(
            HTTPStatus.METHOD_NOT_ALLOWED,
            body,
            {
                "Allow": "GET, HEAD",
                "Content-Type": "text/plain; charset=utf-8",
                "Cache-Control": ERROR_CACHE_CONTROL,
            },
            head_only=False,
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    # ---- routing --------------------------------------------------------------------------

    def _route(self, *, head_only: bool) -> None:
        injected = fault_status(self.server.root)
        if injected is not None:
            self._fault = True
            self._simple_error(injected, "injected fault", head_only=head_only)
            return
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = f"?{split.query}" if split.query else ""
        project = _PROJECT_PATH.match(path)
        if "\x00" in path or "\\" in path:
            self._simple_error(HTTPStatus.BAD_REQUEST, "bad path", head_only=head_only)
        elif path == "/simple":
            self._redirect("/simple/" + query, head_only=head_only)
        elif path == "/simple/":
            self._index_page(self.server.root / "simple" / "index.html", head_only=head_only)
        elif project:
            self._project(project.group(1), project.group(2), query, head_only=head_only)
        elif path.startswith("/files/"):
            parts = path[len("/files/") :].split("/")
            if any(part in ("", ".", "..") for part in parts):
                self._simple_error(HTTPStatus.NOT_FOUND, "no such file", head_only=head_only)
            else:
                self._file(self.server.root.joinpath("files", *parts), head_only=head_only)
        else:
            self._simple_error(HTTPStatus.NOT_FOUND, "not found", head_only=head_only)

    def _project(self, name: str, slash: str, query: str, *, head_only: bool) -> None:
        wanted = normalize(name)
        page = self.server.root / "simple" / wanted / "index.html"
        if wanted and (name != wanted or not slash):
            location = "/simple/" + urllib.parse.quote(wanted) + "/" + query
            self._redirect(location, head_only=head_only)
        elif name in (".", "..") or not wanted or not page.is_file():
            self._simple_error(HTTPStatus.NOT_FOUND, "no such project", head_only=head_only)
        else:
            self._index_page(page, head_only=head_only)

    def _redirect(self, location: str, *, head_only: bool) -> None:
        body = f'<a href="{location}">moved here</a>\n'.encode()
        self._respond_bytes(
            HTTPStatus.MOVED_PERMANENTLY,
            body,
            {
                "Location": location,
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": INDEX_CACHE_CONTROL,
            },
            head_only=head_only,
        )

    def _not_modified(self, etag: str) -> bool:
        header = self.headers.get("If-None-Match")
        if not header:
            return False
        tags = [tag.strip() for tag in header.split(",")]
        return "*" in tags or etag in tags or f"W/{etag}" in tags

    def _index_page(self, page: Path, *, head_only: bool) -> None:
        json_page = page.with_name("index.json")
        content_type = negotiate(self.headers.get("Accept"), json=json_page.is_file())
        if content_type is None:
            self._simple_error(
                HTTPStatus.NOT_ACCEPTABLE,
                f"only {TEXT_HTML}, {V1_HTML} and {V1_JSON} are served",
                head_only=head_only,
            )
            return
        try:
            body = (json_page if content_type == V1_JSON else page).read_bytes()
        except FileNotFoundError:
            self._simple_error(HTTPStatus.NOT_FOUND, "no such page", head_only=head_only)
            return
        etag = '"' + hashlib.sha256(content_type.encode() + b"\0" + body).hexdigest()[:40] + '"'
        headers = {
            # PyPI's JSON type has no charset (JSON is UTF-8), and proxpi recognises the JSON
            # of an upstream by comparing the whole header with the bare type.
            "Content-Type": content_type
            if content_type == V1_JSON
            else f"{content_type}; charset=utf-8",
            "Cache-Control": INDEX_CACHE_CONTROL,
            "ETag": etag,
            "Vary": "Accept",
        }
        if self._not_modified(etag):
            try:
                self._head(HTTPStatus.NOT_MODIFIED, headers)
            finally:
                self._log()
            return
        self._respond_bytes(HTTPStatus.OK, body, headers, head_only=head_only)

    def _file(self, path: Path, *, head_only: bool) -> None:
        try:
            stream = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            self._simple_error(HTTPStatus.NOT_FOUND, "no such file", head_only=head_only)
            return
        with stream:
            stat = os.fstat(stream.fileno())
            if not path.is_file():
                self._simple_error(HTTPStatus.NOT_FOUND, "no such file", head_only=head_only)
                return
            etag = self.server.file_etag(path, stat)
            headers = {
                "Content-Type": "application/octet-stream",
                "Cache-Control": FILE_CACHE_CONTROL,
                "ETag": etag,
                "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True),
                "Accept-Ranges": "bytes",
            }
            try:
                if self._not_modified(etag):
                    self._head(HTTPStatus.NOT_MODIFIED, headers)
                    return
                try:
                    span = byte_range(self.headers.get("Range") or "", stat.st_size)
                except ValueError:
                    unsatisfiable = {"Content-Range": f"bytes */{stat.st_size}"}
                    self._head(
                        HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                        {**headers, **unsatisfiable, "Content-Length": "0"},
                    )
                    return
                if span is not None:
                    first, last = span
                    part = {
                        "Content-Range": f"bytes {first}-{last}/{stat.st_size}",
                        "Content-Length": str(last - first + 1),
                    }
                    self._head(HTTPStatus.PARTIAL_CONTENT, {**headers, **part})
                    if not head_only:
                        stream.seek(first)
                        self._write(None, stream.read(last - first + 1))
                    return
                self._head(HTTPStatus.OK, {**headers, "Content-Length": str(stat.st_size)})
                if not head_only:
                    self._write(stream, None)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                self._log()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", default=os.environ.get("UPSTREAM_ROOT", "/srv/index"))
    parser.add_argument("--host", default=os.environ.get("UPSTREAM_HOST", "0.0.0.0"))  # noqa: S104 - in its container
    parser.add_argument("--port", type=int, default=_env_int("UPSTREAM_PORT", 8080))
    parser.add_argument("--delay-ms", type=int, default=_env_int("UPSTREAM_DELAY_MS", 0))
    parser.add_argument("--rate", type=int, default=_env_int("UPSTREAM_RATE_BPS", 0))
    parser.add_argument("root_arg", nargs="?", help="tree to serve (overrides --root)")
    args = parser.parse_args(argv)

    root = Path(args.root_arg or args.root)
    if not (root / "simple").is_dir():
        sys.stderr.write(f"upstream: {root}/simple is not a directory\n")
        return 2

    server = IndexServer(
        (args.host, args.port), root, delay_s=args.delay_ms / 1000.0, rate_bps=args.rate
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(f"{READY_MARKER} on {args.host}:{server.server_port} root={root}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
