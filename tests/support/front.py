"""A stand-in for the proxy's front over real HTTP: an in-process server on 127.0.0.1 with
fixed answers by path, which records every path asked.

The code under test reaches it as it reaches the real front (the probe's identity and
page requests, the access log's HEAD and ranged GET), so nothing is patched: a test
points the proxy's settings at its port. ``front`` is the fixture that starts them
(``tests/unit/conftest.py`` offers it to every unit test) and stops them after the test.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import reach
from orchestrator.proxy.front import CACHE_PATH, FrontConfig
from orchestrator.proxy.state import wanted_spec
from tests.support.engine import FakeEngine

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PAGE = json.dumps({"meta": {"api-version": "1.0"}, "name": "demo", "files": []}).encode()

Route = tuple[int, str, bytes]

# The front's settings the configuration tests render, unit and integration alike.
FRONT_CONFIG = FrontConfig(
    backend="proxy-backend",
    backend_port=5000,
    cache_bytes=20 * 1024**3,
    index_ttl=1800,
    download_timeout=900,
    digest="0123456789abcdef",
    name="proxy",
)


def cache_line(
    name: str, size: int, age: float, key: str, *, now: float, where: str = CACHE_PATH
) -> str:
    """One line of the front's cache listing (``stats.LIST_FRONT``): last access, last
    change, size, path, key; the file was used ``age`` seconds before ``now``."""
    used = int(now - age)
    return f"{used - 5} {used} {size} {where}/a/bc/{name:0>32} {key}"


class Front:
    """Fixed answers by path (404 for the rest), and every path asked, in order. A GET
    with ``Range: bytes=N-`` (or ``bytes=-N``) is answered 206 with the body from byte N
    (or its last N bytes) and its Content-Range, as nginx does."""

    def __init__(self, routes: dict[str, Route], port: int = 0) -> None:
        self.routes = routes
        self.asked: list[str] = []
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front.asked.append(self.path)
                status, content_type, body = front.routes.get(self.path, (404, "text/plain", b""))
                wanted = self.headers.get("Range", "").removeprefix("bytes=")
                total, start = len(body), None
                if status == 200 and wanted.endswith("-"):
                    start = int(wanted.removesuffix("-"))
                elif status == 200 and wanted.startswith("-"):
                    start = max(0, total - int(wanted.removeprefix("-")))
                if start is not None:
                    status, body = 206, body[start:]
                self.send_response(status)
                if start is not None:
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_GET  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/index/"

    def identifies(self, digest: str, host: str | None = None) -> None:
        """Answer ``/_orchestrator/id`` as a front running with the settings of ``digest``,
        in the container whose host name (short id) is ``host``."""
        said = {"digest": digest} if host is None else {"digest": digest, "host": host}
        body = json.dumps(said).encode()
        self.routes["/_orchestrator/id"] = (200, "application/json", body)

    def is_the_engines(self, settings: ProxySettings) -> None:
        """The engine's own front for ``settings``, as a first build on this engine leaves
        it: it answers with their digest and its container's host name (the fake world's
        ``id-NAME``), and this machine's loopback was decided to be the engine's
        (``proxy/reach.py``), so the fast path needs no Docker call."""
        self.identifies(wanted_spec(settings).digest, host=f"id-{settings.name}"[:12])
        with using(FakeEngine()):  # deciding asks this machine's loopback only
            decided = reach.decide(settings, f"id-{settings.name}", f"id-{settings.name}-backend")
        assert decided.local, decided.evidence

    def serves(self, project: str = "demo", *, backend: bool = True) -> None:
        """Serve ``project``'s page from the cache, and proxpi's health check if ``backend``."""
        self.routes[f"/offline/index/{project}/"] = (200, JSON_TYPE, PAGE)
        if backend:
            self.routes["/_orchestrator/backend"] = (200, "text/plain", b"ok")

    def logs(self, *records: dict[str, Any]) -> None:
        """Serve these records as the front's access log (one JSON line each)."""
        text = "".join(json.dumps(record) + "\n" for record in records)
        self.routes["/_orchestrator/access.log"] = (200, "text/plain", text.encode())


def record(
    uri: str,
    *,
    status: int = 200,
    cache: str = "HIT",
    size: int = 1000,
    at: float | None = None,
    agent: str = "pip/24.0",
) -> dict[str, Any]:
    """One line of the front's access log (``front.LOG_FORMAT``), answered ``at`` (now)."""
    return {
        "msec": time.time() if at is None else at,
        "method": "GET",
        "uri": uri,
        "status": status,
        "bytes": size,
        "cache": cache,
        "upstream_status": "" if cache == "HIT" else str(status),
        "request_time": 0.01,
        "client": "172.17.0.1",
        "agent": agent,
    }


Fronts = Callable[[dict[str, Route]], Front]


@pytest.fixture
def front() -> Iterator[Fronts]:
    """Start fronts with the given routes; all are stopped when the test ends."""
    started: list[Front] = []

    def start(routes: dict[str, Route]) -> Front:
        served = Front(routes)
        served.thread.start()
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.shutdown()
        served.server.server_close()


def closed_port() -> int:
    """A port nothing listens on: a connection to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port
