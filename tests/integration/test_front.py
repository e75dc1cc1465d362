"""The front's configuration against the real nginx and a real proxpi (issue 19).

Each proxy here is the project's own (front and proxpi, as `proxy up` makes them) before a
hermetic upstream of its own, so its caches start empty and no other test touches them.
The three behaviour tests failed against the configuration before the template (a JSON
page served to a client that asked for HTML and the reverse, a redirect marked immutable,
an offline lookup that waited for an online fill); each says what it catches.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from python_on_whales import docker

from devsupport.index import write_simple_index
from devsupport.upstream_container import Upstream, unique_name
from devsupport.wheels import make_wheel, wheel_filename
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import lifecycle
from orchestrator.proxy.front import (
    CONF_VARIABLE,
    FILE_CACHE_CONTROL,
    FRONT_DIR,
    FrontConfig,
    nginx_conf,
)
from tests.integration.conftest import free_port, remove_proxy
from tests.support.front import FRONT_CONFIG

HEALTH = "orch-front-health"  # the proxy's own probes ask for this one alone
PROJECTS = [HEALTH, *(f"orch-front-{letter}" for letter in "abcdef")]
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PIP = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
UV = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
LATEST_JSON = "application/vnd.pypi.simple.latest+json"
LATEST_HTML = "application/vnd.pypi.simple.latest+html"
HTML_FIRST = f"text/html, {JSON_TYPE};q=0.9"  # (a): was stored under the json key
AS_JSON = "?format=application/vnd.pypi.simple.v1%2Bjson"
SLOW_MS = 2500  # the slow upstream's delay: an online fill stays in flight this long
BIG = "orch-front-big"  # one file large enough to be seen in flight
BIG_BYTES = 300_000
TRICKLE_BPS = 100_000  # the trickling upstream sends BIG in about 3 s


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float


@dataclass(frozen=True)
class Proxy:
    url: str  # the front's, on the host: http://127.0.0.1:PORT
    name: str


def get(proxy: Proxy, path: str, accept: str | None = None, timeout: float = 30) -> Answer:
    """One GET, as it comes back: no redirect followed, no header added but Accept."""
    where = urlsplit(proxy.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request("GET", path, headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return Answer(response.status, response.headers, body, time.monotonic() - started)


def page_format(answer: Answer) -> str:
    """What the bytes are: a PEP 691 JSON page, or an HTML one (its type must agree)."""
    assert answer.status == 200, (answer.status, answer.body[:200])
    content_type = answer.headers.get("Content-Type", "")
    try:
        data = json.loads(answer.body)
    except ValueError:
        text = answer.body.decode()
        assert text.lstrip().lower().startswith("<!doctype html>"), text[:200]
        assert "<a href=" in text
        assert content_type.split(";")[0] == "text/html", content_type
        return "html"
    assert data["meta"]["api-version"].startswith("1."), data
    assert isinstance(data["files"], list)
    assert content_type == JSON_TYPE, content_type
    return "json"


@pytest.fixture(scope="module")
def front_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("front-wheels")
    for name in PROJECTS:
        make_wheel(wheels, name, "1.0", payload_bytes=20_000, seed=name)
    make_wheel(wheels, BIG, "1.0", payload_bytes=BIG_BYTES, seed=BIG)
    tree = tmp_path_factory.mktemp("front-index")
    write_simple_index(wheels, tree)
    return tree


@pytest.fixture(scope="module")
def front_upstream(network: str, front_tree: Path) -> Iterator[Upstream]:
    with Upstream(front_tree, network, alias=unique_name("front-upstream")) as server:
        yield server


@contextmanager
def started_proxy(upstream: Upstream, tmp_path: Path, **settings: Any) -> Iterator[Proxy]:
    """A proxy of its own before ``upstream``, started as `proxy up` does, then removed."""
    run = uuid.uuid4().hex[:8]
    config = {
        "name": f"orchestrator-test-front-{run}",
        "network": upstream.network,
        "port": free_port(),
        "cache_volume": f"orchestrator-test-frontcache-{run}",
        "index": upstream.host_url,
        "health_project": HEALTH,
        "ca_bundle": "off",
        "startup_timeout": 60,
        **settings,
    }
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("XDG_CACHE_HOME", str(tmp_path))
            lifecycle.ensure(ProxySettings(**config), patient=True)
        yield Proxy(f"http://127.0.0.1:{config['port']}", config["name"])
    finally:
        remove_proxy(config["name"], config["cache_volume"])


@pytest.fixture(scope="module")
def front(front_upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    with started_proxy(front_upstream, tmp_path_factory.mktemp("front-xdg")) as proxy:
        yield proxy


# --- the configuration is nginx's --------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        FRONT_CONFIG,
        replace(FRONT_CONFIG, cache_bytes=0, index_ttl=0, download_timeout=0.5, digest=""),
    ],
    ids=["defaults", "edges"],
)
def test_nginx_accepts_the_rendered_configuration(front: Proxy, config: FrontConfig) -> None:
    """`nginx -t` in the image the front runs, for settings at their defaults and edges."""
    image = docker.container.inspect(front.name).config.image
    assert image is not None
    script = (
        f'printf %s "${CONF_VARIABLE}" > /tmp/nginx.conf && mkdir -p {FRONT_DIR}/log'
        " && nginx -t -c /tmp/nginx.conf 2>&1"
    )
    output = docker.run(
        image,
        ["sh", "-c", script],
        envs={CONF_VARIABLE: nginx_conf(config)},
        remove=True,
        pull="never",
    )
    assert "test is successful" in str(output), output


# --- (a) a page's format -------------------------------------------------------------------

# Requests for one page, in order, each with what the bytes must be; each sequence has a
# page of its own, so its first request finds the front's cache empty and stores under
# whatever key the front chose. The old front chose by a regex on Accept while proxpi chose
# by weights and `?format=`: every sequence then got the first answer's format again.
SEQUENCES: dict[str, tuple[str, list[tuple[str | None, str, str]]]] = {
    "html-first-by-weights-then-pip": (
        "orch-front-a",
        [(HTML_FIRST, "", "html"), (PIP, "", "json"), (UV, "", "json"), (FIREFOX, "", "html")],
    ),
    "latest-json-then-browsers": (
        "orch-front-b",
        [(LATEST_JSON, "", "json"), (CHROME, "", "html"), ("*/*", "", "html"), (PIP, "", "json")],
    ),
    "format-query-then-accept": (
        "orch-front-c",
        [
            (FIREFOX, AS_JSON, "json"),
            (FIREFOX, "", "html"),
            (PIP, "?format=text/html", "html"),
            (PIP, "", "json"),
        ],
    ),
    "pip-then-html-only-clients": (
        "orch-front-d",
        [
            (PIP, "", "json"),
            (LATEST_HTML, "", "html"),
            (None, "", "html"),  # proxpi alone answers 406: PEP 691 lets the front choose
            (FIREFOX, "?format=application/vnd.pypi.simple.latest%2Bjson", "json"),
        ],
    ),
}


@pytest.mark.parametrize("sequence", SEQUENCES, ids=list(SEQUENCES))
def test_each_client_gets_the_format_it_asks_for_whatever_the_cache_holds(
    front: Proxy, sequence: str
) -> None:
    project, requests = SEQUENCES[sequence]
    seen = []
    for accept, query, expected in requests:
        answer = get(front, f"/index/{project}/{query}", accept)
        seen.append((accept, query, page_format(answer), answer.headers["X-Orchestrator-Cache"]))
        assert seen[-1][2] == expected, seen
    # The offline twin reads the same entries: each format from its own key.
    for accept, expected in ((PIP, "json"), (FIREFOX, "html")):
        assert page_format(get(front, f"/offline/index/{project}/", accept)) == expected


def test_a_page_refreshed_in_the_background_keeps_its_format(
    front_upstream: Upstream, tmp_path: Path
) -> None:
    """Past the TTL, the refresh is a subrequest that reuses the request's variables: it
    must store each format under its own key although the query is gone by then."""
    project = "orch-front-c"
    page = f"/index/{project}/"
    asks = [(FIREFOX, AS_JSON, "json"), (FIREFOX, "", "html"), (PIP, "", "json")]
    statuses: list[str] = []
    with started_proxy(front_upstream, tmp_path, index_ttl=1) as proxy:
        # Filled, then twice past the TTL: served stale while refreshed behind, so the last
        # round serves what the refreshes stored. nginx counts validity in whole seconds: a
        # 1 s TTL ends within 2 s.
        for pause in (0, 2.5, 2.5):
            time.sleep(pause)
            for accept, query, expected in asks:
                answer = get(proxy, page + query, accept)
                assert page_format(answer) == expected, (statuses, accept, query)
                statuses.append(answer.headers["X-Orchestrator-Cache"])
    # The third ask reads the first one's key (json), refreshed a moment before, or not yet.
    assert statuses[:3] == ["MISS", "MISS", "HIT"], statuses
    for first, second, third in (statuses[3:6], statuses[6:]):
        assert (first, second) == ("STALE", "STALE"), statuses
        assert third in ("HIT", "UPDATING", "STALE"), statuses


# --- (b) what is immutable -----------------------------------------------------------------


def test_only_a_file_s_200_is_immutable_and_a_redirect_passes_unchanged_and_unkept(
    front: Proxy, front_upstream: Upstream, tmp_path: Path
) -> None:
    """A proxpi with cache_size 0 answers every file with a 302 to the upstream's URL, as
    any proxpi does after its download timeout or when a download failed. The old front
    marked that redirect `immutable` too: an installer's HTTP cache would keep it for good
    and follow it even once the proxy holds the file."""
    project = "orch-front-e"
    wheel = wheel_filename(project, "1.0")
    answers = {
        "file": get(front, f"/index/{project}/{wheel}", "*/*"),
        "page": get(front, f"/index/{project}/", PIP),
        "missing file": get(front, f"/index/{project}/{wheel}.nothing", "*/*"),
    }
    # With credentials, the front asks proxpi for files (it cannot follow a URL holding
    # them), and proxpi's redirect reaches the client as it came.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORCH_FRONT_AUTH", "reader:not-a-secret")
        settings = {"cache_size": 0, "credentials": {"env": "ORCH_FRONT_AUTH"}}
        with started_proxy(front_upstream, tmp_path, **settings) as redirecting:
            for attempt in ("redirect", "redirect again"):
                answers[attempt] = get(redirecting, f"/index/{project}/{wheel}", "*/*")
    statuses = {kind: answer.status for kind, answer in answers.items()}
    assert statuses == {
        "file": 200,
        "page": 200,
        "missing file": 404,
        "redirect": 302,
        "redirect again": 302,
    }
    marks = {kind: answer.headers.get("Cache-Control") for kind, answer in answers.items()}
    assert marks == dict.fromkeys(answers) | {"file": FILE_CACHE_CONTROL}
    for attempt in ("redirect", "redirect again"):
        location = urlsplit(answers[attempt].headers["Location"])
        assert f"http://{location.hostname}:{location.port}{location.path}" == (
            f"{front_upstream.host_base_url}/files/{wheel}"
        )
        # Not kept by the front: the second one was asked of proxpi again.
        assert answers[attempt].headers["X-Orchestrator-Cache"] == "MISS"


# --- (c) offline lookups do not wait ---------------------------------------------------------


@pytest.fixture
def slow_upstream(network: str, front_tree: Path) -> Iterator[Upstream]:
    """The same index, answering each request after SLOW_MS: an online fill in flight."""
    with Upstream(
        front_tree, network, alias=unique_name("slow-upstream"), delay_ms=SLOW_MS
    ) as server:
        yield server


@pytest.mark.serial
@pytest.mark.parametrize("kind", ["page", "file"])
def test_an_offline_lookup_never_waits_for_an_online_fill(
    slow_upstream: Upstream, tmp_path: Path, kind: str
) -> None:
    """The old front made the offline request wait on the online one's cache lock (then
    served what it fetched): up to the upstream's whole answer, and with the upstream
    hung, up to proxpi's timeouts, during what the build took for an outage."""
    project = {"page": "orch-front-a", "file": "orch-front-b"}[kind]
    path = f"/index/{project}/" + (wheel_filename(project, "1.0") if kind == "file" else "")
    online: list[Answer] = []
    with started_proxy(slow_upstream, tmp_path) as proxy:
        fill = threading.Thread(target=lambda: online.append(get(proxy, path, PIP)))
        started = time.monotonic()
        fill.start()
        time.sleep(0.5)  # the fill is in flight: proxpi waits on the upstream
        offline = get(proxy, f"/offline{path}", PIP, timeout=15)
        asked_at = time.monotonic() - started - offline.seconds
        fill.join(60)
        after = get(proxy, f"/offline{path}", PIP, timeout=15)
    assert online, "the online request never came back"
    assert online[0].status == 200
    # Asked while the fill was in flight: it went on for at least a second after that.
    assert online[0].seconds > asked_at + 1.0, (online[0].seconds, asked_at)
    assert offline.status == 404, f"offline: {offline.status} after {offline.seconds:.2f} s"
    assert offline.seconds < 1.0, f"offline: a 404 after {offline.seconds:.2f} s"
    assert after.status == 200, "once whole, the entry is served offline"


# --- (d) a cold file streams, fetched once ---------------------------------------------------


@pytest.fixture
def trickling_upstream(network: str, front_tree: Path) -> Iterator[Upstream]:
    """The same index, sending each body at TRICKLE_BPS: a file stays in flight a while."""
    with Upstream(
        front_tree, network, alias=unique_name("trickle-upstream"), rate_bps=TRICKLE_BPS
    ) as server:
        yield server


def test_a_cold_file_reaches_the_first_client_while_the_upstream_still_sends_it(
    trickling_upstream: Upstream, front_tree: Path, tmp_path: Path
) -> None:
    """proxpi downloads a file whole before it sends a byte (proxpi#74), so a cold install
    through it waited for the download, then for the send; the front's fetcher passes the
    bytes on as they come (issue 22). The upstream takes about 3 s to send the file: the
    first bytes must reach the client while most of it is still to come, where proxpi
    sends the rest within milliseconds of the first (it has it all by then)."""
    wheel = wheel_filename(BIG, "1.0")
    with started_proxy(trickling_upstream, tmp_path) as proxy:
        trickling_upstream.mark()
        where = urlsplit(proxy.url)
        connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=60)
        try:
            connection.request("GET", f"/index/{BIG}/{wheel}", headers={"Accept": "*/*"})
            response = connection.getresponse()
            first = response.read(16 * 1024)
            first_at = time.monotonic()
            rest = response.read()
            still_coming = time.monotonic() - first_at
        finally:
            connection.close()
        again = get(proxy, f"/index/{BIG}/{wheel}", "*/*")
    assert response.status == 200
    sending = BIG_BYTES / TRICKLE_BPS
    assert still_coming > sending / 3, f"the first bytes waited for the download: {sending} s"
    assert first + rest == (front_tree / "files" / wheel).read_bytes()
    assert again.body == first + rest
    assert again.headers["X-Orchestrator-Cache"] == "HIT"
    assert [r["path"] for r in trickling_upstream.file_downloads()] == [f"/files/{wheel}"]


def test_clients_asking_at_once_for_a_cold_file_share_one_fetch(
    trickling_upstream: Upstream, front_tree: Path, tmp_path: Path
) -> None:
    """The first client is streamed to; the others wait on the cache lock for the same
    fetch, whole, rather than each starting one: the lock holds across the fetcher's
    following of proxpi's redirect, which nginx could have released at the redirect."""
    wheel = wheel_filename(BIG, "1.0")
    answers: list[Answer] = []
    with started_proxy(trickling_upstream, tmp_path) as proxy:
        trickling_upstream.mark()
        clients = [
            threading.Thread(target=lambda: answers.append(get(proxy, f"/index/{BIG}/{wheel}")))
            for _ in range(4)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
    expected = (front_tree / "files" / wheel).read_bytes()
    assert [(a.status, a.body == expected) for a in answers] == [(200, True)] * 4
    assert [r["path"] for r in trickling_upstream.file_downloads()] == [f"/files/{wheel}"]
