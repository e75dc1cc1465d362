"""The probe against real local HTTP servers: only a served index page counts."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from orchestrator.proxy import probe


class _Handler(http.server.BaseHTTPRequestHandler):
    asked: ClassVar[list[tuple[str, str]]] = []  # every request: its method and path

    def do_GET(self) -> None:
        self.asked.append(("GET", self.path))
        if self.path == "/_orchestrator/id":
            self._send(200, "application/json", b'{"digest": "abc", "name": "p"}')
        elif self.path == "/index/pip/":
            accept = self.headers.get("Accept", "")
            kind = "application/vnd.pypi.simple.v1+json" if "v1+json" in accept else "text/html"
            body = b'{"meta": {"api-version": "1.0"}, "name": "pip", "files": []}'
            if kind == "text/html":
                body = b'<a href="pip-1.0-py3-none-any.whl#sha256=00">pip-1.0</a>'
            self._send(200, kind, body)
        elif self.path == "/index/slow/":
            time.sleep(3)
            self._send(200, "text/html", b"late")
        elif self.path == "/index/broken/":
            self._send(500, "text/plain", b"boom")
        else:
            self._send(404, "text/plain", b"no")

    def do_HEAD(self) -> None:
        self.asked.append(("HEAD", self.path))
        self._send(200, "text/html", b"")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index/"
    server.shutdown()


def test_a_served_page_counts(index: str) -> None:
    found = probe.probe(index, "pip")
    assert (found.ok, found.status) == (True, 200)


def test_a_404_is_no_proof(index: str) -> None:
    found = probe.probe(index, "nothing-here")
    assert (found.ok, found.status) == (False, 404)


def test_a_500_is_no_proof(index: str) -> None:
    assert probe.probe(index, "broken").status == 500


@pytest.mark.serial
def test_a_hung_proxy_is_given_up_on_in_time(index: str) -> None:
    started = time.monotonic()
    found = probe.probe(index, "slow", timeout=0.5)
    assert not found.ok
    assert found.timed_out
    assert time.monotonic() - started < 1.5


def test_nothing_listening_is_unreachable() -> None:
    found = probe.probe("http://127.0.0.1:9/index/", "pip", timeout=0.5)
    assert not found.ok
    assert "unreachable" in found.reason


def test_the_front_s_digest_is_read(index: str) -> None:
    assert probe.identity(index, timeout=1).said == {"digest": "abc", "name": "p"}
    assert probe.answers(index, "pip", "abc", name="p") is not None
    assert probe.answers(index, "pip", "other", name="p") is None


def test_the_upstream_check_is_a_head_of_its_root(index: str) -> None:
    """A GET of the root, or of a project's page, would make the upstream send a page."""
    _Handler.asked.clear()
    assert probe.upstream(index, timeout=1).ok
    assert _Handler.asked == [("HEAD", "/index/")]
    assert not probe.upstream("http://127.0.0.1:9/simple/", timeout=0.5).ok
