"""Fault injection in the hermetic upstream: a FAULT file in the served tree fails every request.

The server runs in this process on 127.0.0.1 (no Docker): the integration tests write and remove
the same file in the tree bind-mounted into the upstream's container.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devsupport.index import write_simple_index
from devsupport.upstream.local import LocalServer, serving
from devsupport.upstream.server import FAULT_FILE, fault_status
from devsupport.wheels import make_wheel

WHEEL = "demo_pkg-1.0-py3-none-any.whl"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    make_wheel(tmp_path / "wheels", "demo-pkg", "1.0")
    root = tmp_path / "tree"
    write_simple_index(tmp_path / "wheels", root)
    return root


@pytest.fixture
def server(tree: Path) -> Iterator[LocalServer]:
    with serving(tree) as served:
        yield served


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


def test_a_fault_fails_every_request_until_it_is_removed(server: LocalServer, tree: Path) -> None:
    assert [server.request(m, p)[0] for m, p in PATHS] == [200, 200, 200, 200, 404]

    (tree / FAULT_FILE).write_text("500")
    answers = [server.request(m, p) for m, p in PATHS]
    assert [status for status, _, _ in answers] == [500] * len(PATHS)
    assert all(headers["cache-control"] == "no-store" for _, headers, _ in answers)
    assert b"injected fault" in answers[0][2]

    (tree / FAULT_FILE).write_text("503")
    assert server.request("GET", f"/files/{WHEEL}")[0] == 503

    (tree / FAULT_FILE).unlink()
    assert server.request("GET", f"/files/{WHEEL}")[0] == 200

    records = server.records(2 * len(PATHS) + 2)
    faults = [r for r in records if r.get("fault")]
    assert [(r["method"], r["path"], r["status"]) for r in faults] == [
        *((m, p, 500) for m, p in PATHS),
        ("GET", f"/files/{WHEEL}", 503),
    ]
    assert sum(1 for r in records if "fault" not in r) == len(PATHS) + 1
