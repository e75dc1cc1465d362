"""What only an index's JSON pages say, passed through the proxy unchanged (issue 21, item 2).

PEP 700 gives each file an ``upload-time`` and a ``size``, and the project its ``versions``,
in the JSON form of the simple API (PEP 691) alone. uv's ``--exclude-newer`` and pip 26's
``--uploaded-prior-to`` choose by the upload time: through proxpi 1.3.1, which dropped it,
``uv pip install --exclude-newer 2023-06-01 six`` found "no versions of six" while PyPI
itself served it. The hermetic upstream here serves one project, ``orch-dated``, at three
versions uploaded on three dates, the middle one yanked (with a reason), each with its
Requires-Python and its PEP 658 metadata, and a proxy of its own stands before it:

- uv and pip 26.3 (from the wheels scripts/setup downloaded, installed with ``--no-index``)
  pick, through the proxy, what they pick against the upstream directly: the newest
  version without a date, the older one with a date between the two (the yanked one, older
  still than the date, is passed over: its flag came through too);
- the proxy's JSON page says what the upstream's says, file by file: upload time, size,
  yanked, requires-python, core-metadata and hashes, the versions and api-version 1.1; its
  HTML page keeps the attributes the upstream's HTML has; and the metadata file a page
  names is served with the hash the page gives.

Nothing here reaches PyPI: the installers come from local wheels, the index is the
hermetic upstream.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devsupport.index import upload_time_text, write_simple_index
from devsupport.upstream_container import ClientContainer, Upstream, unique_name
from devsupport.wheels import make_wheel, wheel_filename
from orchestrator.proxy.front import LISTEN_PORT
from tests.integration.test_front import Proxy, started_proxy
from tests.support.installers import wheel_dir

PROJECT = "orch-dated"
HEALTH = "orch-dated-health"  # the proxy's readiness probe asks for this one alone
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
OLD, YANKED, NEW = "1.0", "1.5", "2.0"
UPLOADED = {
    OLD: datetime(2023, 3, 1, 10, 0, tzinfo=UTC),
    YANKED: datetime(2023, 4, 15, 8, 30, 15, 250000, tzinfo=UTC),
    NEW: datetime(2023, 9, 1, 16, 45, tzinfo=UTC),
}
REASON = "broken on import"
CUTOFF = "2023-06-01T00:00:00Z"  # after OLD and YANKED, before NEW
REQUIRES_PYTHON = {OLD: ">=3", YANKED: ">=3.7", NEW: ">=3.8, <4"}
PIP_VERSION, UV_VERSION = "26.3", "0.13.9"
# Fields a file's JSON entry may carry, compared one by one through the proxy.
FILE_FIELDS = ("hashes", "size", "upload-time", "yanked", "requires-python", "core-metadata")
HTML_ATTRIBUTES = ("data-requires-python", "data-yanked", "data-core-metadata")


def filename(version: str) -> str:
    return wheel_filename(PROJECT, version)


@pytest.fixture(scope="module")
def dated_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("dated-wheels")
    for version in UPLOADED:
        make_wheel(
            wheels,
            PROJECT,
            version,
            payload_bytes=10_000,
            requires_python=REQUIRES_PYTHON[version],
        )
    make_wheel(wheels, HEALTH, "1.0")
    tree = tmp_path_factory.mktemp("dated-index")
    write_simple_index(
        wheels,
        tree,
        core_metadata=True,
        upload_times={filename(v): moment for v, moment in UPLOADED.items()},
        yanked={filename(YANKED): REASON},
    )
    return tree


@pytest.fixture(scope="module")
def dated_upstream(network: str, dated_tree: Path) -> Iterator[Upstream]:
    with Upstream(dated_tree, network, alias=unique_name("dated-upstream")) as server:
        yield server


@pytest.fixture(scope="module")
def dated_proxy(
    dated_upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    xdg = tmp_path_factory.mktemp("dated-xdg")
    with started_proxy(dated_upstream, xdg, health_project=HEALTH) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def client(network: str) -> Iterator[ClientContainer]:
    """A container on the test network with pip 26.3 and uv 0.13.9, installed offline."""
    started = time.monotonic()
    envs = {"UV_NO_CACHE": "1", "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
    volumes = ((str(wheel_dir()), "/wheels", "ro"),)
    with ClientContainer(network, envs=envs, volumes=volumes) as container:
        container.sh(
            "python3 -m venv /tools && /tools/bin/pip install -q --no-index --find-links /wheels"
            f" pip=={PIP_VERSION} uv=={UV_VERSION}"
        )
        versions = container.sh("/tools/bin/pip --version && /tools/bin/uv --version").output
        assert f"pip {PIP_VERSION} " in versions, versions
        assert f"uv {UV_VERSION} " in versions, versions
        print(f"\nMEASURED installers ready: {time.monotonic() - started:.1f} s")
        yield container


def indexes(upstream: Upstream, proxy: Proxy) -> dict[str, str]:
    """Both indexes as the client container reaches them on the network."""
    return {
        "upstream": upstream.url_inside_network,
        "proxy": f"http://{proxy.name}:{LISTEN_PORT}/index/",
    }


def uv_picks(client: ClientContainer, index: str, *flags: str) -> str:
    """The version of orch-dated that `uv pip install` puts in a fresh venv."""
    venv = f"/envs/uv-{unique_name('env')}"
    extra = " ".join(shlex.quote(flag) for flag in flags)
    result = client.sh(
        f"/tools/bin/uv venv -q --python /usr/bin/python3 {venv}"
        f" && /tools/bin/uv pip install -q --python {venv}/bin/python"
        f" --index-url {index} {extra} {PROJECT}"
        f" && {venv}/bin/python -c 'import orch_dated; print(orch_dated.__version__)'",
        check=False,
    )
    assert result.ok, result.output
    return result.output.split()[-1]


def pip_picks(client: ClientContainer, index: str, *flags: str) -> str:
    """The version of orch-dated that pip 26.3 would install, from its own report."""
    host = urlsplit(index).hostname or ""
    extra = " ".join(shlex.quote(flag) for flag in flags)
    result = client.sh(
        "/tools/bin/pip install --dry-run --quiet --no-cache-dir --report -"
        f" --index-url {index} --trusted-host {host} {extra} {PROJECT}",
        check=False,
    )
    assert result.ok, result.output
    report, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("{") :])
    picked = {i["metadata"]["name"]: i["metadata"]["version"] for i in report["install"]}
    assert list(picked) == [PROJECT], picked
    return str(picked[PROJECT])


def test_uv_exclude_newer_picks_through_the_proxy_what_it_picks_upstream(
    client: ClientContainer, dated_upstream: Upstream, dated_proxy: Proxy
) -> None:
    picked = {
        where: (uv_picks(client, index), uv_picks(client, index, "--exclude-newer", CUTOFF))
        for where, index in indexes(dated_upstream, dated_proxy).items()
    }
    assert picked["upstream"] == (NEW, OLD), "the upstream itself is what the test says"
    assert picked["proxy"] == picked["upstream"]


def test_pip_uploaded_prior_to_picks_through_the_proxy_what_it_picks_upstream(
    client: ClientContainer, dated_upstream: Upstream, dated_proxy: Proxy
) -> None:
    picked = {
        where: (
            pip_picks(client, index),
            pip_picks(client, index, "--uploaded-prior-to", CUTOFF),
        )
        for where, index in indexes(dated_upstream, dated_proxy).items()
    }
    assert picked["upstream"] == (NEW, OLD), "the upstream itself is what the test says"
    assert picked["proxy"] == picked["upstream"]


def fetch(url: str, accept: str | None = None) -> tuple[str, bytes]:
    """(Content-Type, body) of one GET from this machine."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers.get("Content-Type", "")), response.read()


def json_page(base: str) -> dict[str, Any]:
    content_type, body = fetch(f"{base}{PROJECT}/", JSON_TYPE)
    assert content_type == JSON_TYPE, content_type
    page: dict[str, Any] = json.loads(body)
    return page


def test_the_json_page_through_the_proxy_says_what_the_upstream_s_says(
    dated_tree: Path, dated_upstream: Upstream, dated_proxy: Proxy
) -> None:
    upstream = json_page(dated_upstream.host_url)
    proxied = json_page(f"{dated_proxy.url}/index/")

    # the upstream says what the tree holds: real values, not absent ones on both sides
    files = {entry["filename"]: entry for entry in upstream["files"]}
    assert sorted(files) == sorted(filename(v) for v in UPLOADED)
    for version, moment in UPLOADED.items():
        entry = files[filename(version)]
        wheel = dated_tree / "files" / filename(version)
        metadata = wheel.with_name(wheel.name + ".metadata").read_bytes()
        assert entry["upload-time"] == upload_time_text(moment)
        assert entry["size"] == wheel.stat().st_size
        assert entry["hashes"] == {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
        assert entry["requires-python"] == REQUIRES_PYTHON[version]
        assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
        assert entry["yanked"] == (REASON if version == YANKED else False)

    assert proxied["meta"]["api-version"] == "1.1"
    assert proxied["name"] == PROJECT
    assert sorted(proxied["versions"]) == sorted(upstream["versions"]) == [OLD, YANKED, NEW]
    through = {entry["filename"]: entry for entry in proxied["files"]}
    assert sorted(through) == sorted(files)
    for name, entry in files.items():
        for key in FILE_FIELDS:
            assert through[name].get(key) == entry[key], (name, key)

    # PEP 658: the metadata file the page names, served through the proxy with that hash
    name = filename(NEW)
    _, metadata = fetch(f"{dated_proxy.url}/index/{PROJECT}/{name}.metadata")
    assert {"sha256": hashlib.sha256(metadata).hexdigest()} == through[name]["core-metadata"]
    assert b"Requires-Python: >=3.8, <4" in metadata


class _Links(HTMLParser):
    """Each link's attributes, values unescaped, by the link's text (the file name)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, dict[str, str | None]] = {}
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self._open is not None and data.strip():
            self.links[data.strip()] = self._open
            self._open = None


def html_links(base: str) -> dict[str, dict[str, str | None]]:
    content_type, body = fetch(f"{base}{PROJECT}/", "text/html")
    assert content_type.split(";")[0] == "text/html", content_type
    parser = _Links()
    parser.feed(body.decode())
    return parser.links


def test_the_html_page_through_the_proxy_keeps_the_upstream_s_attributes(
    dated_upstream: Upstream, dated_proxy: Proxy
) -> None:
    upstream = html_links(dated_upstream.host_url)
    proxied = html_links(f"{dated_proxy.url}/index/")
    assert sorted(proxied) == sorted(upstream) == sorted(filename(v) for v in UPLOADED)
    assert upstream[filename(YANKED)]["data-yanked"] == REASON
    assert upstream[filename(NEW)]["data-requires-python"] == REQUIRES_PYTHON[NEW]
    for name, attributes in upstream.items():
        for key in HTML_ATTRIBUTES:
            assert proxied[name].get(key) == attributes.get(key), (name, key)
