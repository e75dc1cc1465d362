"""The hermetic PyPI-like upstream.

Without Docker: the server's HTTP semantics (cache headers, ETags, redirects, content
negotiation, the JSON request log), on 127.0.0.1 in this process.

With Docker (``-m docker``): the server in its container on a fresh network, and pip in a
throwaway container on that network installing through it: hashes from the index are used and
checked, the log counts exactly the file downloads, and pip's HTTP cache honours the
``immutable`` file headers so a second install downloads no file.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devsupport.index import write_simple_index
from devsupport.upstream.local import LocalServer, serving
from devsupport.upstream.server import (
    FILE_CACHE_CONTROL,
    INDEX_CACHE_CONTROL,
    IndexServer,
)
from devsupport.upstream_container import (
    ClientContainer,
    Upstream,
    temporary_network,
)
from devsupport.wheels import make_wheel, sha256_file

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
# proxpi 1.3.1 and 1.4.0a1, proxpi/_cache.py `_IndexCache._headers`: no text/html at all
PROXPI_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1"
TAMPERED_SHA256 = "0" * 64


@dataclass(frozen=True)
class Tree:
    root: Path
    sha256: dict[str, str]
    size: dict[str, int]

    def files(self, *prefixes: str) -> list[str]:
        return sorted(name for name in self.sha256 if name.startswith(prefixes))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """base-pkg <- mid-pkg <- top-pkg 2.0 (top-pkg 1.0 too), plus a project with a bad hash."""
    base = tmp_path_factory.mktemp("upstream")
    wheels = base / "wheels"
    make_wheel(wheels, "base-pkg", "1.0", payload_bytes=256 * 1024)
    make_wheel(wheels, "Mid_Pkg", "1.0", requires=["base-pkg>=1.0"], payload_bytes=64 * 1024)
    make_wheel(wheels, "top-pkg", "1.0", requires=["mid-pkg"])
    make_wheel(wheels, "top-pkg", "2.0", requires=["mid-pkg>=1.0"], payload_bytes=1024 * 1024)
    make_wheel(wheels, "tampered-pkg", "1.0")
    root = base / "tree"
    write_simple_index(wheels, root)

    real = sha256_file(root / "files" / "tampered_pkg-1.0-py3-none-any.whl")
    for page in ("index.html", "index.json"):  # pip asks for JSON; other clients for HTML
        tampered_page = root / "simple" / "tampered-pkg" / page
        tampered_page.write_text(tampered_page.read_text().replace(real, TAMPERED_SHA256))

    files = sorted((root / "files").iterdir())
    return Tree(
        root=root,
        sha256={path.name: sha256_file(path) for path in files},
        size={path.name: path.stat().st_size for path in files},
    )


# ---- the server in this process (no Docker) ------------------------------------------------


@pytest.fixture
def local_server(tree: Tree) -> Iterator[LocalServer]:
    with serving(tree.root) as server:
        yield server


def test_files_are_served_with_pypi_cache_headers(local_server: LocalServer, tree: Tree) -> None:
    name = "top_pkg-2.0-py3-none-any.whl"
    status, headers, body = local_server.request("GET", f"/files/{name}")
    assert status == 200
    assert headers["cache-control"] == FILE_CACHE_CONTROL == "max-age=365000000, immutable, public"
    assert int(headers["content-length"]) == len(body) == tree.size[name]
    assert headers["etag"] == f'"{tree.sha256[name]}"'
    assert headers["content-type"] == "application/octet-stream"
    assert "last-modified" in headers

    status, head_headers, head_body = local_server.request("HEAD", f"/files/{name}")
    assert status == 200
    assert head_body == b""
    assert head_headers["content-length"] == str(tree.size[name])
    assert head_headers["cache-control"] == FILE_CACHE_CONTROL

    status, _, body = local_server.request(
        "GET", f"/files/{name}", {"If-None-Match": headers["etag"]}
    )
    assert (status, body) == (304, b"")


def test_files_answer_one_byte_range_as_pypi_does(local_server: LocalServer, tree: Tree) -> None:
    """uv and poetry read METADATA from a wheel's end with range requests; without them
    they fetch the whole wheel once for its metadata and once more to install it."""
    name = "top_pkg-2.0-py3-none-any.whl"
    whole = (tree.root / "files" / name).read_bytes()
    size = len(whole)
    for header, first, last in (
        ("bytes=0-99", 0, 99),
        ("bytes=-100", size - 100, size - 1),
        (f"bytes={size - 10}-", size - 10, size - 1),
        (f"bytes=5-{size + 100}", 5, size - 1),
    ):
        status, headers, body = local_server.request("GET", f"/files/{name}", {"Range": header})
        assert status == 206, header
        assert headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert body == whole[first : last + 1]
    status, headers, _ = local_server.request("GET", f"/files/{name}", {"Range": "bytes=0-1,5-6"})
    assert (status, headers["accept-ranges"]) == (200, "bytes")
    status, headers, body = local_server.request(
        "GET", f"/files/{name}", {"Range": f"bytes={size}-"}
    )
    assert (status, headers["content-range"], body) == (416, f"bytes */{size}", b"")
    records = local_server.records(6)
    assert [r["status"] for r in records] == [206, 206, 206, 206, 200, 416]
    assert [r["bytes"] for r in records[:2]] == [100, 100]


def test_index_pages_negotiate_html_or_json_and_are_cacheable(local_server: LocalServer) -> None:
    """As PyPI: JSON when the client ranks it above both HTML types, as pip, uv and proxpi
    do; HTML for browsers and ``*/*``; 406 when nothing on offer is acceptable."""
    expectations = {
        None: "text/html",
        "*/*": "text/html",
        "text/html": "text/html",
        "application/vnd.pypi.simple.v1+html": "application/vnd.pypi.simple.v1+html",
        "text/html, application/vnd.pypi.simple.v1+json": "text/html",
        PIP_ACCEPT: "application/vnd.pypi.simple.v1+json",
        PROXPI_ACCEPT: "application/vnd.pypi.simple.v1+json",
        "application/vnd.pypi.simple.latest+json": "application/vnd.pypi.simple.v1+json",
    }
    for accept, content_type in expectations.items():
        headers = {"Accept": accept} if accept else {}
        status, response_headers, body = local_server.request("GET", "/simple/top-pkg/", headers)
        assert status == 200, accept
        assert response_headers["cache-control"] == INDEX_CACHE_CONTROL == "max-age=600, public"
        assert response_headers["vary"] == "Accept"
        if content_type.endswith("+json"):
            # exactly the bare type, no charset: proxpi compares the whole header
            assert response_headers["content-type"] == content_type, accept
            assert json.loads(body)["name"] == "top-pkg"
        else:
            assert response_headers["content-type"].split(";")[0] == content_type, accept
            assert b'href="../../files/top_pkg-2.0-py3-none-any.whl#sha256=' in body

    status, _, _ = local_server.request("GET", "/simple/", {"Accept": "application/json"})
    assert status == 406

    for accept in (PIP_ACCEPT, "text/html"):
        status, headers, _ = local_server.request("GET", "/simple/", {"Accept": accept})
        assert status == 200
        status, _, body = local_server.request(
            "GET", "/simple/", {"Accept": accept, "If-None-Match": headers["etag"]}
        )
        assert (status, body) == (304, b""), accept
    json_etag = local_server.request("GET", "/simple/", {"Accept": PIP_ACCEPT})[1]["etag"]
    html_etag = local_server.request("GET", "/simple/", {"Accept": "text/html"})[1]["etag"]
    assert json_etag != html_etag, "one ETag per representation"


def test_json_pages_carry_what_pypi_s_do(local_server: LocalServer, tree: Tree) -> None:
    """PEP 691 and PEP 700: the same files as the HTML page, each with its hash, size and
    upload time; the project's versions; api-version 1.1."""
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    status, _, body = local_server.request("GET", "/simple/", accept)
    assert status == 200
    index = json.loads(body)
    assert index["meta"] == {"api-version": "1.1"}
    assert [p["name"] for p in index["projects"]] == [
        "base-pkg",
        "mid-pkg",
        "tampered-pkg",
        "top-pkg",
    ]

    status, _, body = local_server.request("GET", "/simple/top-pkg/", accept)
    page = json.loads(body)
    assert page["meta"] == {"api-version": "1.1"}
    assert (page["name"], page["versions"]) == ("top-pkg", ["1.0", "2.0"])
    assert [f["filename"] for f in page["files"]] == tree.files("top_pkg-")
    for file in page["files"]:
        name = file["filename"]
        assert file["url"] == f"../../files/{name}"
        assert file["hashes"] == {"sha256": tree.sha256[name]}
        assert file["size"] == tree.size[name]
        assert file["upload-time"] == "2024-01-02T03:04:05.000000Z"
        assert file["yanked"] is False
        assert "requires-python" not in file
        assert "core-metadata" not in file
        url = urllib.parse.urljoin("/simple/top-pkg/", file["url"])
        status, _, served = local_server.request("GET", url)
        assert (status, len(served)) == (200, file["size"])


def test_redirects_and_not_found(local_server: LocalServer) -> None:
    redirects = {
        "/simple": "/simple/",
        "/simple/top-pkg": "/simple/top-pkg/",
        "/simple/Mid_Pkg/": "/simple/mid-pkg/",
        "/simple/MID.pkg?x=1": "/simple/mid-pkg/?x=1",
    }
    for path, location in redirects.items():
        status, headers, _ = local_server.request("GET", path)
        assert (status, headers["location"]) == (301, location), path
    for method, path, expected in [
        ("GET", "/simple/no-such-project/", 404),
        ("HEAD", "/simple/no-such-project/", 404),
        ("GET", "/files/no_such-1.0-py3-none-any.whl", 404),
        ("GET", "/files/../simple/index.html", 404),
        ("GET", "/files/%2e%2e/simple/index.html", 404),
        ("GET", "/files/", 404),
        ("GET", "/", 404),
        ("POST", "/simple/", 405),
    ]:
        status, headers, _ = local_server.request(method, path)
        assert status == expected, (method, path)
        assert headers["cache-control"] == "no-store"


def test_every_request_is_one_json_log_line(local_server: LocalServer, tree: Tree) -> None:
    name = "base_pkg-1.0-py3-none-any.whl"
    local_server.request("GET", f"/files/{name}", {"User-Agent": "probe/1"})
    local_server.request("HEAD", f"/files/{name}", {"User-Agent": "probe/1"})
    local_server.request("GET", "/simple/base-pkg", {"User-Agent": "probe/1"})
    local_server.request("GET", "/simple/none/", {"User-Agent": "probe/1"})
    records = local_server.records(4)
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", f"/files/{name}", 200),
        ("HEAD", f"/files/{name}", 200),
        ("GET", "/simple/base-pkg", 301),
        ("GET", "/simple/none/", 404),
    ]
    assert records[0]["bytes"] == tree.size[name]
    assert records[1]["bytes"] == 0
    for record in records:
        assert {"method", "path", "status", "bytes", "client", "user_agent"} <= record.keys()
        assert record["client"] == "127.0.0.1"
        assert record["user_agent"] == "probe/1"


@pytest.mark.serial
def test_latency_and_bandwidth_can_be_simulated(tree: Tree) -> None:
    name = "top_pkg-2.0-py3-none-any.whl"
    size = tree.size[name]
    server = IndexServer(
        ("127.0.0.1", 0), tree.root, delay_s=0.1, rate_bps=size * 4, log_stream=io.StringIO()
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/files/{name}"
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert len(resp.read()) == size
        elapsed = time.monotonic() - started
        assert 0.1 + 0.25 - 0.05 <= elapsed < 3, elapsed  # delay + size / rate
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- in containers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream_network() -> Iterator[str]:
    with temporary_network() as name:
        yield name


@pytest.fixture(scope="module")
def upstream(tree: Tree, upstream_network: str) -> Iterator[Upstream]:
    with Upstream(tree.root, upstream_network) as server:
        yield server


def _pip(upstream: Upstream, args: str, pip: str = "/v/bin/pip") -> str:
    return f"{pip} {args} --trusted-host {upstream.alias} --index-url {upstream.url_inside_network}"


@pytest.mark.docker
def test_pip_installs_through_upstream_with_hashes(
    upstream: Upstream, upstream_network: str, tree: Tree
) -> None:
    upstream.mark()
    with ClientContainer(upstream_network) as client:
        install = client.sh(
            "python3 -m venv /v && "
            + _pip(upstream, "install --no-cache-dir --report /tmp/report.json top-pkg"),
            check=False,
        )
        assert install.ok, install.output
        assert "Successfully installed" in install.output
        versions = client.sh(
            "/v/bin/python -c 'import top_pkg, mid_pkg, base_pkg;"
            " print(top_pkg.__version__, mid_pkg.__version__, base_pkg.__version__)'"
        )
        assert versions.output.split() == ["2.0", "1.0", "1.0"]
        report = json.loads(client.sh("cat /tmp/report.json").output)
        client_ip = client.ip

    expected = tree.files("top_pkg-2.0-", "mid_pkg-", "base_pkg-")
    # pip took each file's sha256 from the index link (#sha256=...) and checked it
    seen = {}
    for item in report["install"]:
        url = item["download_info"]["url"]
        assert url.startswith(f"{upstream.base_url_inside_network}/files/")
        filename = url.rsplit("/", 1)[1]
        seen[filename] = item["download_info"]["archive_info"]["hashes"]["sha256"]
    assert seen == {name: tree.sha256[name] for name in expected}

    # exactly one download per installed wheel, nothing else (not top-pkg 1.0), all by pip
    downloads = upstream.file_downloads()
    assert sorted(r["path"] for r in downloads) == [f"/files/{name}" for name in expected]
    assert {r["client"] for r in downloads} == {client_ip}
    assert all(str(r["user_agent"]).startswith("pip/") for r in downloads)
    assert upstream.downloaded_bytes() == sum(tree.size[name] for name in expected)
    for record in downloads:
        assert record["bytes"] == tree.size[str(record["path"]).removeprefix("/files/")]
    assert {r["status"] for r in upstream.requests()} == {200}

    # the file response is marked immutable, the way PyPI marks it (asked from the host)
    request = urllib.request.Request(
        f"{upstream.host_base_url}/files/top_pkg-2.0-py3-none-any.whl", method="HEAD"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Cache-Control"] == "max-age=365000000, immutable, public"
        assert response.headers["Content-Length"] == str(tree.size[expected[-1]])
        assert response.headers["ETag"] == f'"{tree.sha256["top_pkg-2.0-py3-none-any.whl"]}"'


@pytest.mark.docker
def test_pip_rejects_a_file_that_does_not_match_the_index_hash(
    upstream: Upstream, upstream_network: str, tree: Tree
) -> None:
    with ClientContainer(upstream_network) as client:
        result = client.sh(
            _pip(
                upstream,
                "download --no-deps --no-cache-dir -d /tmp/dl tampered-pkg",
                pip="python3 -m pip",
            ),
            check=False,
        )
    assert not result.ok, result.output
    assert "DO NOT MATCH THE HASHES" in result.output
    assert TAMPERED_SHA256 in result.output
    assert tree.sha256["tampered_pkg-1.0-py3-none-any.whl"] in result.output


@pytest.mark.docker
def test_pip_http_cache_keeps_immutable_files(upstream: Upstream, upstream_network: str) -> None:
    install = _pip(upstream, "install --cache-dir /pip-cache top-pkg")
    with ClientContainer(upstream_network) as client:
        upstream.mark()
        client.sh(f"python3 -m venv /v && {install}")
        assert len(upstream.file_downloads()) == 3

        upstream.mark()
        again = client.sh(f"{install} --force-reinstall")
        assert "Successfully installed" in again.output
        assert "Using cached http://upstream:8080/files/top_pkg-2.0-py3-none-any.whl" in (
            again.output
        )

    after = upstream.requests()
    assert upstream.file_downloads() == []
    assert [r for r in after if str(r["path"]).startswith("/files/")] == []
    # index pages (max-age=600) are revalidated, as pip asks for them with max-age=0: 304 by ETag
    pages = {(r["path"], r["status"]) for r in after}
    assert pages == {
        ("/simple/top-pkg/", 304),
        ("/simple/mid-pkg/", 304),
        ("/simple/base-pkg/", 304),
    }
