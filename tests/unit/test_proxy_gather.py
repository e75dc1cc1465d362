"""The proxy's facts for a plan (proxy/gather.py): not asked when off, found or made for a
real run, only looked at for a dry run; what a build falls back on and what it refuses,
by the profile's mode. And the bridge gateway a proxy with ``bridge: true`` is also
published on, asked of Docker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.errors import Conflict
from orchestrator.profiles import ProfileStore, ProxySettings, ResolvedProfile
from orchestrator.proxy import reach, state
from orchestrator.proxy.gather import proxy_facts
from orchestrator.proxy.locking import creation_lock
from orchestrator.proxy.spec import CONFIG_LABEL, OWNER, OWNER_LABEL, PROFILE_LABEL
from tests.conftest import write_profile
from tests.support.engine import FakeEngine, container
from tests.support.front import Front, Fronts, closed_port
from tests.support.world import World

FRONT, BACKEND = "orchestrator-proxpi", "orchestrator-proxpi-backend"


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("ORCHESTRATE_LOCK_DIR", str(tmp_path / "locks"))
    state.bridge_gateway.cache_clear()  # asked once per process: each test's engine asks
    yield
    state.bridge_gateway.cache_clear()


def resolved(profiles_dir: Path, proxy: str) -> ResolvedProfile:
    write_profile(profiles_dir, "app", f"context: ../ctx\nca_bundle: off\nproxy:\n{proxy}")
    return ProfileStore(profiles_dir).resolve("app")


def at(port: int, index_port: int | None = None, mode: str = "auto") -> str:
    index = index_port if index_port is not None else closed_port()
    return (
        f"  mode: {mode}\n  port: {port}\n  health_project: demo\n  ca_bundle: off\n"
        f"  index: http://127.0.0.1:{index}/simple/\n  index_ttl: 0\n"
    )


def serving(front: Fronts, profiles_dir: Path, upstream: int | None = None) -> Front:
    """A front that says it runs with profile 'app''s settings and serves."""
    proxy = front({})
    app = resolved(profiles_dir, at(proxy.port, upstream))
    proxy.is_the_engines(app.profile.proxy)
    proxy.serves()
    return proxy


def others() -> list[SimpleNamespace]:
    """Both proxy containers, running with the settings of another profile."""
    labels = {OWNER_LABEL: OWNER, CONFIG_LABEL: "0ld", PROFILE_LABEL: "other"}
    return [container(f"id-{n}", name=n, labels=labels) for n in (FRONT, BACKEND)]


def test_a_proxy_that_is_off_or_skipped_is_not_asked(profiles_dir: Path) -> None:
    fake = FakeEngine()
    with using(fake):
        assert (
            proxy_facts(resolved(profiles_dir, "  mode: off\n"), no_proxy=False, dry_run=False)
            is None
        )
        assert proxy_facts(resolved(profiles_dir, at(5000)), no_proxy=True, dry_run=False) is None
    assert fake.calls == []


def test_a_serving_proxy_with_its_upstream_up_is_healthy_and_online(
    profiles_dir: Path, front: Fronts
) -> None:
    upstream = front({"/simple/": (200, "text/html", b"")})
    serving(front, profiles_dir, upstream.port)
    app = ProfileStore(profiles_dir).resolve("app")
    with using(FakeEngine()):
        found = proxy_facts(app, no_proxy=False, dry_run=False)
    assert found is not None
    assert (found.healthy, found.offline) == (True, None)
    assert found.digest == state.wanted_spec(app.profile.proxy).digest


def test_a_serving_proxy_whose_upstream_is_down_is_offline(
    profiles_dir: Path, front: Fronts
) -> None:
    serving(front, profiles_dir)  # the upstream's port is closed
    with using(FakeEngine()):
        found = proxy_facts(
            ProfileStore(profiles_dir).resolve("app"), no_proxy=False, dry_run=False
        )
    assert found is not None
    assert found.healthy
    assert found.offline is not None
    assert "unreachable" in found.offline


def test_the_upstream_is_asked_where_proxpi_asks_it_when_the_engine_is_elsewhere(
    profiles_dir: Path, front: Fronts
) -> None:
    """An index only the engine's side reaches (a name this machine cannot resolve, as
    a CI runner's internal index may be): online, because it is asked from there."""
    engine_side_index = front({"/simple/": (200, "text/html", b"")})
    proxy = front({})
    proxy.serves()
    write_profile(
        profiles_dir,
        "app",
        "context: ../ctx\nca_bundle: off\nproxy:\n"
        f"  port: {proxy.port}\n  health_project: demo\n  ca_bundle: off\n"
        "  index: http://index.engine.internal:8080/simple/\n  index_ttl: 0\n",
    )
    app = ProfileStore(profiles_dir).resolve("app")
    config = app.profile.proxy
    proxy.identifies(state.wanted_spec(config).digest)  # no host: not the engine's front
    front_id, backend_id = f"id-{FRONT}", f"id-{BACKEND}"
    world = World(
        containers=[
            container(front_id, name=FRONT, labels=ours_labels(config), published=proxy.port),
            container(backend_id, name=BACKEND, labels=ours_labels(config)),
        ],
        published={"index.engine.internal": engine_side_index.port},
    )
    with using(world.engine()):
        assert not reach.decide(config, front_id, backend_id).local
        found = proxy_facts(app, no_proxy=False, dry_run=False)
    assert found is not None
    assert (found.healthy, found.offline) == (True, None), found


def ours_labels(config: ProxySettings) -> dict[str, str]:
    return {
        OWNER_LABEL: OWNER,
        CONFIG_LABEL: state.wanted_spec(config).digest,
        PROFILE_LABEL: "app",
    }


def test_another_profile_s_proxy_makes_an_auto_build_fall_back(profiles_dir: Path) -> None:
    app = resolved(profiles_dir, at(closed_port()))
    fake = World(containers=others()).engine()
    with using(fake):
        found = proxy_facts(app, no_proxy=False, dry_run=False)
    assert found is not None
    assert not found.healthy
    assert "runs with the settings of profile 'other'" in found.reason
    assert not fake.made("container.remove")


def test_another_profile_s_proxy_stops_a_build_that_requires_one(profiles_dir: Path) -> None:
    app = resolved(profiles_dir, at(closed_port(), mode="require"))
    with using(World(containers=others()).engine()), pytest.raises(Conflict):
        proxy_facts(app, no_proxy=False, dry_run=False)


def test_a_required_proxy_that_does_not_serve_is_unhealthy_for_planning_to_refuse(
    profiles_dir: Path,
) -> None:
    app = resolved(profiles_dir, at(closed_port(), mode="require") + "  startup_timeout: 0.1\n")
    world = World(images={"epicwink/proxpi:1.4.0a1", "nginx:1.27-alpine"})
    with using(world.engine()):
        found = proxy_facts(app, no_proxy=False, dry_run=False)
    assert found is not None
    assert not found.healthy
    assert "did not serve within 0.1 s" in found.reason
    assert world.containers == {}


def test_a_dry_run_only_looks(profiles_dir: Path) -> None:
    app = resolved(profiles_dir, at(closed_port()))
    fake = World(images={"epicwink/proxpi:1.4.0a1", "nginx:1.27-alpine"}).engine()
    with using(fake):
        found = proxy_facts(app, no_proxy=False, dry_run=True)
    assert found is not None
    assert found.reason == "not running yet; a real run creates it first"
    assert not [c for c in fake.verbs() if c.endswith(("create", "start", "pull"))]


# --- the bridge gateway -------------------------------------------------------------------------


def bridge(*config: dict[str, Any]) -> FakeEngine:
    return FakeEngine(
        {"network.inspect": SimpleNamespace(ipam=SimpleNamespace(config=list(config)))}
    )


def test_a_bridged_proxy_is_also_published_on_the_bridge_gateway(profiles_dir: Path) -> None:
    app = resolved(profiles_dir, "  bridge: true\n  port: 5123\n  ca_bundle: off\n")
    fake = bridge({"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"})
    with using(fake):
        spec = state.wanted_spec(app.profile.proxy)
        assert state.published_gateway(app.profile.proxy) == "172.17.0.1"
    assert [address for address, _ in spec.front.publish] == ["127.0.0.1:5123", "172.17.0.1:5123"]
    assert [c.args for c in fake.made("network.inspect")] == [("bridge",)], "asked once"


def test_a_bridge_without_a_gateway_is_reached_at_its_first_address() -> None:
    with using(bridge({"Subnet": "fd00::/64"}, {"Subnet": "10.9.0.0/24"})):
        assert state.bridge_gateway() == "10.9.0.1"


def test_a_bridged_proxy_is_never_taken_on_its_word_alone(profiles_dir: Path) -> None:
    """Its settings include the gateway, which only Docker can say: no fast path."""
    app = resolved(profiles_dir, "  bridge: true\n  ca_bundle: off\n")
    assert state.answering(app.profile.proxy) is None


# --- many jobs at once: a build waits for the proxy another process is making ------------------


class Maker(threading.Thread):
    """Another process making the proxy: it holds the lock (a descriptor of its own, as
    another process would) until ``done`` is set or ``seconds`` pass, does ``then`` (the
    proxy now serves), and lets go."""

    def __init__(self, name: str, then: Callable[[], None], seconds: float) -> None:
        super().__init__(daemon=True)
        self.proxy, self.then, self.seconds = name, then, seconds
        self.holding, self.done = threading.Event(), threading.Event()
        self.start()
        self.holding.wait(5)

    def run(self) -> None:
        with creation_lock(self.proxy):
            self.holding.set()
            self.done.wait(self.seconds)
            self.then()


def test_a_build_waits_for_the_proxy_another_process_is_making(
    profiles_dir: Path, front: Fronts
) -> None:
    upstream = front({"/simple/": (200, "text/html", b"")})
    proxy = front({})  # not serving yet: being made
    app = resolved(profiles_dir, at(proxy.port, upstream.port))
    digest = state.wanted_spec(app.profile.proxy).digest

    def ready() -> None:
        proxy.is_the_engines(app.profile.proxy)
        proxy.serves()

    maker = Maker(app.profile.proxy.name, ready, 1.5)
    fake = FakeEngine()  # once made, it answers over HTTP: no Docker call
    with using(fake):
        found = proxy_facts(app, no_proxy=False, dry_run=False)
    maker.join(5)
    assert found is not None
    assert (found.healthy, found.offline, found.digest) == (True, None, digest), found.reason
    assert fake.calls == []


@pytest.mark.serial  # it must decide before the maker's 3 s are out
def test_a_build_does_not_wait_for_a_proxy_being_made_while_the_upstream_is_down(
    profiles_dir: Path, front: Fronts
) -> None:
    """A proxy made now could fetch nothing: the fallback, at once."""
    proxy = front({})
    app = resolved(profiles_dir, at(proxy.port))  # the upstream: a closed port
    maker = Maker(app.profile.proxy.name, lambda: None, 3.0)
    with using(FakeEngine()):
        found = proxy_facts(app, no_proxy=False, dry_run=False)
    assert maker.is_alive(), "the build waited for the maker"
    maker.done.set()
    assert found is not None
    assert not found.healthy
    assert "another orchestrate is creating or starting" in found.reason
    maker.join(5)
