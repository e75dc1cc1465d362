"""Deciding about the proxy, without Docker: probes, bounds, the shared lock, name conflicts.

HTTP is real (servers on 127.0.0.1 in this process); Docker is a fake that answers as the
engine does, through orchestrator's one call site.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from orchestrator.engine.api import using
from orchestrator.errors import ProxyUnavailable
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import create, lifecycle, locking, probe, state
from orchestrator.proxy.spec import CONFIG_LABEL, OWNER, OWNER_LABEL
from tests.support.engine import FakeEngine, absent, container
from tests.support.front import JSON_TYPE, PAGE, Front, closed_port

pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py
HTML_PAGE = b'<html><body><a href="demo-1.0-py3-none-any.whl#sha256=00">demo</a></body></html>'


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a paused or hung front."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


# --- what counts as a served page -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "ok"),
    [
        (JSON_TYPE, PAGE, True),
        (JSON_TYPE, b'{"meta": {}}', False),
        (JSON_TYPE, b"not json", False),
        ("application/vnd.pypi.simple.v1+html", HTML_PAGE, True),
        ("text/html; charset=utf-8", HTML_PAGE, True),
        ("text/html", b"<html><a href='/about'>a web page at a mistyped path</a></html>", False),
        ("application/json", PAGE, False),
    ],
)
def test_only_a_project_page_counts(content_type: str, body: bytes, ok: bool) -> None:
    assert (probe.not_an_index_page(content_type, body) is None) is ok


def test_a_200_that_is_no_index_page_is_no_proof(front: Callable[..., Front]) -> None:
    served = front({"/index/demo/": (200, "text/html", b"<html>Welcome</html>")})
    found = probe.probe(served.url, "demo", 2)
    assert not found.ok
    assert "links no distribution file" in found.reason


def test_served_asks_the_cache_first_and_stops_there(front: Callable[..., Front]) -> None:
    served = front({"/offline/index/demo/": (200, JSON_TYPE, PAGE)})
    found = probe.served(served.url, "demo", 2)
    assert found.ok
    assert "from its cache" in found.reason
    assert served.asked == ["/offline/index/demo/"]


def test_served_asks_through_proxpi_only_what_the_cache_lacks(front: Callable[..., Front]) -> None:
    served = front({"/index/demo/": (200, JSON_TYPE, PAGE)})
    assert probe.served(served.url, "demo", 2).ok
    assert served.asked == ["/offline/index/demo/", "/index/demo/"]


@pytest.mark.serial
def test_served_gives_up_on_a_front_that_does_not_answer(silent_port: int) -> None:
    started = time.monotonic()
    found = probe.served(f"http://127.0.0.1:{silent_port}/index/", "demo", 0.3)
    assert (found.ok, found.timed_out) == (False, True)
    assert time.monotonic() - started < 0.6


def test_identity_tells_refused_from_hung(silent_port: int, front: Callable[..., Front]) -> None:
    refused = probe.identity(f"http://127.0.0.1:{closed_port()}/index/", 0.3)
    assert (refused.digest, refused.timed_out) == (None, False)
    hung = probe.identity(f"http://127.0.0.1:{silent_port}/index/", 0.2)
    assert (hung.digest, hung.timed_out) == (None, True)
    answered = front({"/_orchestrator/id": (200, "application/json", b'{"digest": "abc"}')})
    assert probe.identity(answered.url, 1).digest == "abc"


# --- bounded decisions ----------------------------------------------------------------------------


def settings_at(port: int, **changes: Any) -> ProxySettings:
    return ProxySettings(port=port, ca_bundle="off", health_project="demo", **changes)


@pytest.mark.serial
def test_a_hung_front_is_given_up_on_without_asking_docker(
    silent_port: int, front: Callable[..., Front]
) -> None:
    """The engine's front, found on this machine's loopback by an earlier build (the
    decision is kept per engine and proxy name), now hangs."""
    stand_in = front({})
    stand_in.is_the_engines(settings_at(stand_in.port))
    docker = FakeEngine()  # answers nothing: a Docker call fails the test
    started = time.monotonic()
    with (
        using(docker),
        pytest.raises(ProxyUnavailable, match="accepts connections but does not answer"),
    ):
        lifecycle.ensure(settings_at(silent_port), budget=0.85)
    assert time.monotonic() - started < probe.IDENTITY_TIMEOUT + 0.3
    assert docker.calls == []


@pytest.mark.serial  # the front must answer within the decision's budget (0.85 s)
def test_a_front_with_our_settings_is_used_without_docker(front: Callable[..., Front]) -> None:
    docker = FakeEngine()  # answers nothing: a Docker call fails the test
    placeholder = front({})
    settings = settings_at(placeholder.server.server_port)
    placeholder.is_the_engines(settings)  # as an earlier build on this engine found it
    placeholder.routes["/offline/index/demo/"] = (200, JSON_TYPE, PAGE)
    with using(docker):
        found = lifecycle.ensure(settings, budget=0.85)
    assert (found.healthy, found.state) == (True, "running")
    assert docker.calls == []


@pytest.mark.serial  # left(0.1) is 0.1 only while under 0.1 s of the 0.2 have passed
def test_deadline_caps_every_wait() -> None:
    unbounded = probe.Deadline(None)
    assert (unbounded.bounded, unbounded.left(5.0), unbounded.expired()) == (False, 5.0, False)
    bounded = probe.Deadline(0.2)
    assert bounded.left(5.0) <= 0.2
    assert bounded.left(0.1) == 0.1
    time.sleep(0.25)
    assert (bounded.left(5.0), bounded.expired()) == (0.0, True)


# --- one lock for every user ----------------------------------------------------------------------


def test_one_engine_is_one_lock_however_it_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    unset = locking.engine_key()
    for spelled in ("unix:///var/run/docker.sock", "unix:///run/docker.sock"):
        monkeypatch.setenv("DOCKER_HOST", spelled)
        assert locking.engine_key() == unset
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    assert locking.engine_key() != unset


@pytest.mark.serial
def test_a_held_lock_is_not_waited_for_past_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATE_LOCK_DIR", str(tmp_path / "locks"))
    with locking.creation_lock("px"):
        started = time.monotonic()
        with (
            pytest.raises(ProxyUnavailable, match="does not wait for it"),
            locking.creation_lock("px", timeout=0.2),
        ):
            pass
        assert 0.2 <= time.monotonic() - started < 0.5
    with locking.creation_lock("px", timeout=0.2):
        pass  # free again
    directory = tmp_path / "locks"
    assert directory.stat().st_mode & 0o1777 == 0o1777
    [lock] = directory.iterdir()
    assert lock.stat().st_mode & 0o777 == 0o444


def test_a_lock_file_another_user_made_is_opened_without_o_creat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fs.protected_regular refuses O_CREAT on another user's file in a sticky directory."""
    monkeypatch.setenv("ORCHESTRATE_LOCK_DIR", str(tmp_path))
    path = locking._lock_path("px")
    path.touch(mode=0o444)
    opened: list[int] = []

    def spying_open(file: Any, flags: int, *args: Any) -> int:
        opened.append(flags)
        return os.open(file, flags, *args)

    os.close(locking._open_lock(path, spying_open))
    assert opened
    assert all(not flags & os.O_CREAT for flags in opened)


# --- the engine's unique names: somebody else's proxy is used, never removed ------------------


def name_taken_by(theirs: SimpleNamespace) -> FakeEngine:
    """Docker as another process left it: the name was free at look-up, taken at create."""

    def taken(image: str, **options: Any) -> None:
        message = f'Conflict. The container name "/{options["name"]}" is already in use'
        raise DockerException(["docker", "create"], 125, b"", message.encode())

    return FakeEngine(
        {
            "version": "28.5",  # the engine answers: the create was refused, not lost
            "container.create": taken,
            "container.inspect": theirs,
            "container.start": None,
            "container.remove": None,
        }
    )


def test_a_name_taken_while_creating_is_someone_else_s_proxy_and_used() -> None:
    settings = ProxySettings(ca_bundle="off")
    proxy = state.wanted_spec(settings, ("img", "front-img"))
    labels = {OWNER_LABEL: OWNER, CONFIG_LABEL: proxy.digest}
    docker = name_taken_by(container("c0ffee", labels=labels, running=False))
    with using(docker), ExitStack() as undo:
        create.create_container(proxy, proxy.front, undo, "app")
    # The undo ran at the block's end, as it does when the proxy then fails to serve:
    # nothing on it removes their container.
    calls = [(c.verb, c.args[:1]) for c in docker.calls if c.verb != "version"]
    assert calls == [
        ("container.create", (proxy.front.image,)),
        ("container.inspect", (settings.name,)),
        ("container.start", ("c0ffee",)),  # created, not started yet by its maker: started
    ]


def test_a_name_taken_with_other_settings_is_not_used() -> None:
    settings = ProxySettings(ca_bundle="off")
    proxy = state.wanted_spec(settings, ("img", "front-img"))
    # Not running yet: using it would start it, so a use shows in the calls.
    labels = {OWNER_LABEL: OWNER, CONFIG_LABEL: "other"}
    docker = name_taken_by(container("c0ffee", labels=labels, running=False))
    with (
        using(docker),
        pytest.raises(ProxyUnavailable, match="with other settings"),
        ExitStack() as undo,
    ):
        create.create_container(proxy, proxy.front, undo, "app")
    # Looked at, then neither started nor removed, the undo run.
    verbs = [verb for verb in docker.verbs() if verb != "version"]
    assert verbs == ["container.create", "container.inspect"]


def test_a_vanished_container_is_absent_not_refused() -> None:
    with using(FakeEngine({"container.inspect": absent("container", "px")})):
        assert state.find("px") is None


# --- the upstream's check ---------------------------------------------------------------------


def test_an_upstream_seen_up_is_remembered_only_for_the_window(
    front: Callable[..., Front], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    upstream = front({"/index/": (200, "text/html", b"")})
    url = upstream.url  # the check asks for this URL itself, with HEAD
    assert probe.upstream_remembered(url, 0.5, remember=30).ok
    assert "recently" in probe.upstream_remembered(url, 0.5, remember=30).reason
    assert len(upstream.asked) == 1
    assert "recently" not in probe.upstream_remembered(url, 0.5, remember=0).reason
    assert len(upstream.asked) == 2


def test_an_upstream_answering_5xx_is_down_and_not_remembered(
    front: Callable[..., Front], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    upstream = front({"/index/": (500, "text/plain", b"")})
    for _ in range(2):
        found = probe.upstream_remembered(upstream.url, 0.5, remember=30)
        assert (found.ok, found.reason.endswith("answered 500")) == (False, True)
    assert len(upstream.asked) == 2
