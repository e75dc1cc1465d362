"""The upstream served from this process, for tests that need no Docker: a thread serving
a tree on 127.0.0.1, its JSON log kept in memory.

The server writes a request's log line after its answer, on the request's own thread, so
a client can be a moment ahead of the log: ``request`` returns only once its own line is
written, which keeps the log in the order the requests were sent (without it, the next
request's line came first, once in CI on Docker 20.10's run and under pytest-xdist).
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devsupport.upstream.server import IndexServer

LOG_WAIT = 5.0  # seconds a request's log line may take to be written


@dataclass
class LocalServer:
    base_url: str
    host: str
    port: int
    log: io.StringIO

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, redirects not followed: (status, headers with lower-case keys, body),
        returned once the request's log line is written."""
        logged = len(self.log.getvalue().splitlines())
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        self.records(logged + 1)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def records(self, count: int) -> list[dict[str, object]]:
        """The log's records once ``count`` are written, or all there are after LOG_WAIT."""
        deadline = time.monotonic() + LOG_WAIT
        while True:
            lines = self.log.getvalue().splitlines()
            if len(lines) >= count or time.monotonic() > deadline:
                return [json.loads(line) for line in lines]
            time.sleep(0.01)


@contextmanager
def serving(root: Path, **options: Any) -> Iterator[LocalServer]:
    """``root`` served on a free port of 127.0.0.1 until the block ends."""
    log = io.StringIO()
    server = IndexServer(("127.0.0.1", 0), root, log_stream=log, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    port = server.server_port
    try:
        yield LocalServer(f"http://127.0.0.1:{port}", "127.0.0.1", port, log)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
