"""Fault injection in the hermetic upstream: a FAULT file in the served tree fails every request.

The server runs in this process on 127.0.0.1 (no Docker): the integration tests write and remove
the same file in the tree bind-mounted into the upstream's container.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devsupport.index import write_simple_index
from devsupport.upstream.server import FAULT_FILE, IndexServer, fault_status
from devsupport.wheels import make_wheel

WHEEL = "demo_pkg-1.0-py3-none-any.whl"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    make_wheel(tmp_path / "wheels", "demo-pkg", "1.0")
    root = tmp_path / "tree"
    write_simple_index(tmp_path / "wheels", root)
    return root


@pytest.fixture
def server(tree: Path) -> Iterator[tuple[IndexServer, io.StringIO]]:
    log = io.StringIO()
    served = IndexServer(("127.0.0.1", 0), tree, log_stream=log)
    thread = threading.Thread(target=served.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield served, log
    finally:
        served.shutdown()
        served.server_close()
        thread.join(timeout=5)


def get(
    server: IndexServer, method: str, path: str, log: io.StringIO | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request; with ``log``, returned once its line is in: the server writes it after
    the answer, on the request's own thread, so the next request's line could come first
    (seen under pytest-xdist)."""
    before = len(log.getvalue().splitlines()) if log is not None else 0
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if log is not None:
        logged(log, before + 1)
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def logged(log: io.StringIO, count: int) -> list[dict[str, object]]:
    """The log once ``count`` records are in: a request is logged just after its answer."""
    deadline = time.monotonic() + 5
    while len(log.getvalue().splitlines()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [json.loads(line) for line in log.getvalue().splitlines()]


PATHS = [("GET", "/simple/"), ("HEAD", "/simple/"), ("GET", "/simple/demo-pkg/")]
PATHS += [("GET", f"/files/{WHEEL}"), ("GET", "/simple/no-such/")]


def test_no_fault_file_means_no_fault(tree: Path) -> None:
    assert fault_status(tree) is None


@pytest.mark.parametrize(
    ("content", "status"), [("", 500), ("503\n", 503), ("502", 502), ("teapot", 500), ("200", 500)]
)
def test_the_fault_file_names_the_status(tree: Path, content: str, status: int) -> None:
    (tree / FAULT_FILE).write_text(content)
    assert fault_status(tree) == status


def test_a_fault_fails_every_request_until_it_is_removed(
    server: tuple[IndexServer, io.StringIO], tree: Path
) -> None:
    served, log = server
    assert [get(served, m, p, log)[0] for m, p in PATHS] == [200, 200, 200, 200, 404]

    (tree / FAULT_FILE).write_text("500")
    answers = [get(served, m, p, log) for m, p in PATHS]
    assert [status for status, _, _ in answers] == [500] * len(PATHS)
    assert all(headers["cache-control"] == "no-store" for _, headers, _ in answers)
    assert b"injected fault" in answers[0][2]

    (tree / FAULT_FILE).write_text("503")
    assert get(served, "GET", f"/files/{WHEEL}", log)[0] == 503

    (tree / FAULT_FILE).unlink()
    assert get(served, "GET", f"/files/{WHEEL}", log)[0] == 200

    records = logged(log, 2 * len(PATHS) + 2)
    faults = [r for r in records if r.get("fault")]
    assert [(r["method"], r["path"], r["status"]) for r in faults] == [
        *((m, p, 500) for m, p in PATHS),
        ("GET", f"/files/{WHEEL}", 503),
    ]
    assert sum(1 for r in records if "fault" not in r) == len(PATHS) + 1
