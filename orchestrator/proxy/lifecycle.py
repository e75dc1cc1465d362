"""The caching PyPI proxy's lifecycle: find or start it, check it really serves, keep its cache.

Its containers, network and volumes carry an ownership label; anything with our name but
without the label belongs to somebody else and is never touched. A proxy that answers with
the digest of the wanted settings is used without asking Docker at all (the fast path of
every build). Otherwise creation is serialised by a lock that every user of this machine
shares, and relies on the engine's own atomicity besides (a container name is unique).
A failed run undoes only what it created itself, by id. Only a proxy this run created is
waited for; one found stopped gets a moment, one found paused or hung none.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import os
import stat
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from orchestrator import host, paths
from orchestrator.engine import client as engine
from orchestrator.errors import Conflict, DockerRefused, HandledError, ProxyUnavailable
from orchestrator.log import get_logger
from orchestrator.plan.facts import ProxyFacts
from orchestrator.profiles import ProxySettings
from orchestrator.proxy.image import ensure_images
from orchestrator.proxy.probe import Probe, answers, probe, wait_ready
from orchestrator.proxy.spec import (
    CONFIG_LABEL,
    OWNER,
    OWNER_LABEL,
    PROFILE_LABEL,
    ContainerSpec,
    ProxySpec,
    backend_name,
    front_volume,
    proxy_spec,
)
from orchestrator.urls import redact, redact_all

if TYPE_CHECKING:
    from python_on_whales import Container

log = get_logger(__name__)
QUICK_TIMEOUT = 0.8  # seconds a running proxy gets to answer before a build falls back
STARTED_PATIENCE = 0.7  # seconds a proxy this run started (not created) gets


@dataclass(frozen=True)
class ProxyStatus:
    """What `orchestrate proxy status` reports and what planning decides on."""

    name: str
    state: str
    healthy: bool
    reason: str
    host_url: str
    build_url: str
    upstream: str
    network: str | None = None
    cache_volume: str | None = None
    container_id: str | None = None
    image: str | None = None
    address: str | None = None
    bake_url: str | None = None
    backend: str | None = None  # the proxpi container's state

    def as_dict(self) -> dict[str, Any]:
        return dict(redact_all(asdict(self)))

    def facts(self) -> ProxyFacts:
        return ProxyFacts(healthy=self.healthy, reason=self.reason, address=self.address)


@dataclass(frozen=True)
class Requester:
    """Who asks for the proxy: a profile's name ('' for the defaults), and whether it may
    replace a container that runs with other settings (`proxy up` may)."""

    profile: str = ""
    replace: bool = True


# --- finding and inspecting -------------------------------------------------------------


def find(name: str) -> Container | None:
    """Our container of that name, None if there is none; a stranger's is a conflict."""
    from python_on_whales.exceptions import NoSuchContainer  # noqa: PLC0415

    docker = engine.client()
    try:
        container = engine.call("inspect container", docker.container.inspect, name)
    except NoSuchContainer:
        return None
    if labels_of(container).get(OWNER_LABEL) != OWNER:
        raise Conflict(
            f"a container named '{name}' exists but was not created by orchestrator; "
            "it is left alone: set proxy.name in the profile to another name"
        )
    return container


def labels_of(container: Container) -> dict[str, str]:
    return dict(container.config.labels or {})


def state_of(container: Container | None) -> str:
    if container is None:
        return "absent"
    if container.state.paused:
        return "paused"
    return str(container.state.status or "unknown")


@functools.cache
def bridge_gateway() -> str | None:
    """The default bridge's gateway: where containers on it reach the host."""
    docker = engine.client()
    network = engine.call("inspect the default bridge", docker.network.inspect, "bridge")
    for config in network.ipam.config or []:
        if not isinstance(config, dict):
            continue
        if config.get("Gateway"):
            return str(config["Gateway"])
        subnet = ipaddress.ip_network(str(config.get("Subnet", "")), strict=False)
        if subnet.version == 4:
            return str(next(subnet.hosts()))  # docker gives the bridge the first address
    return None


def published_gateway(settings: ProxySettings) -> str | None:
    """The bridge gateway address the managed proxy is also published on, if any."""
    return bridge_gateway() if settings.bridge and not settings.url else None


def address_on(container: Container, network: str) -> str | None:
    """The container's IP on a network: what RUN steps of a container builder can reach."""
    endpoint = (container.network_settings.networks or {}).get(network)
    return endpoint.ip_address if endpoint is not None and endpoint.ip_address else None


def wanted_spec(settings: ProxySettings, images: tuple[str, str] | None = None) -> ProxySpec:
    backend, front = images or (None, None)
    return proxy_spec(
        settings,
        image=backend,
        front_image=front,
        host_ca_bundle=host.host_ca_bundle(),
        bridge_gateway=published_gateway(settings),
    )


def _base(settings: ProxySettings) -> dict[str, Any]:
    return {
        "name": settings.name,
        "host_url": settings.host_url,
        "build_url": settings.host_url,
        "upstream": settings.url or settings.index,
    }


def status(settings: ProxySettings, *, probe_timeout: float = 2.0) -> ProxyStatus:
    """Report without changing anything; fast when the proxy is plainly absent."""
    if settings.url:
        found = probe(settings.url, settings.health_project, probe_timeout)
        return ProxyStatus(
            state="external", healthy=found.ok, reason=found.reason, **_base(settings)
        )
    front = find(settings.name)
    backend = find(backend_name(settings))
    if front is None:
        return ProxyStatus(
            state="absent",
            healthy=False,
            reason="no proxy container",
            backend=state_of(backend),
            **_base(settings),
        )
    state = state_of(front)
    checked = Probe(False, f"container is {state}")
    if state == "running":
        checked = probe(settings.host_url, settings.health_project, probe_timeout)
    return status_of(front, backend, settings, checked)


def status_of(
    front: Container, backend: Container | None, settings: ProxySettings, checked: Probe
) -> ProxyStatus:
    gateway = published_gateway(settings)
    return ProxyStatus(
        state=state_of(front),
        healthy=checked.ok,
        reason=checked.reason,
        network=settings.network,
        cache_volume=settings.cache_volume,
        container_id=front.id[:12],
        image=front.config.image,
        address=address_on(front, settings.network),
        bake_url=f"http://{gateway}:{settings.port}/index/" if gateway else None,
        backend=state_of(backend),
        **_base(settings),
    )


# --- the fast path: a proxy that answers with our settings needs no Docker call -----------


def answering(settings: ProxySettings) -> ProxyStatus | None:
    """The proxy, if it serves and says it runs with these settings (HTTP only)."""
    if settings.url or settings.bridge:
        return None  # an external proxy has no identity; the bridge gateway needs Docker
    digest = wanted_spec(settings).digest
    checked = answers(settings.host_url, settings.health_project, digest, QUICK_TIMEOUT)
    if checked is None:
        return None
    return ProxyStatus(
        state="running",
        healthy=True,
        reason=checked.reason,
        network=settings.network,
        cache_volume=settings.cache_volume,
        **_base(settings),
    )


# --- starting ------------------------------------------------------------------------------


@contextmanager
def creation_lock(name: str) -> Iterator[None]:
    """Serialise find-or-create for every user of this machine and engine.

    The lock file lives in a world-writable sticky directory, not in a home directory, so
    two users share it; it is opened read-only (flock needs no write access), so a file
    another user created still locks.
    """
    directory = paths.shared_lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    if directory.stat().st_uid == os.getuid():
        directory.chmod(0o1777)
    engine_id = os.environ.get("DOCKER_HOST", "default")
    key = hashlib.sha256(f"{engine_id}\0{name}".encode()).hexdigest()[:16]
    path = directory / f"proxy-{key}.lock"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o444)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _ensure_network(name: str, undo: ExitStack) -> None:
    docker = engine.client()
    if engine.call("look up network", docker.network.exists, name):
        return
    try:
        network = engine.call(
            "create network", docker.network.create, name, labels={OWNER_LABEL: OWNER}
        )
    except DockerRefused:
        if engine.call("look up network", docker.network.exists, name):
            return  # another process made it first: theirs to keep
        raise
    undo.callback(_remove, "remove network", docker.network.remove, network.id)


def _ensure_volume(name: str, undo: ExitStack) -> None:
    docker = engine.client()
    if engine.call("look up volume", docker.volume.exists, name):
        return
    volume = engine.call("create volume", docker.volume.create, name, labels={OWNER_LABEL: OWNER})
    undo.callback(_remove, "remove volume", docker.volume.remove, volume.name)


def _remove(action: str, fn: Any, target: str, **kwargs: Any) -> None:
    """One undo step; its failure is logged, and the other steps still run."""
    try:
        engine.call(action, fn, target, **kwargs)
    except HandledError as exc:
        log.warning("rollback incomplete", action=action, target=target, reason=exc.message)
    except engine.absent_errors():
        pass


def _create(proxy: ProxySpec, spec: ContainerSpec, undo: ExitStack, profile: str) -> None:
    """Create, then start, by id: a failed start removes exactly the container we made."""
    docker = engine.client()
    options: dict[str, Any] = {}
    if spec.command:
        options["command"] = list(spec.command)
    container = engine.call(
        f"create the proxy's {spec.role}",
        docker.container.create,
        spec.image,
        name=spec.name,
        restart="always",
        networks=[spec.network],
        publish=list(spec.publish),
        volumes=list(spec.volumes),
        envs=spec.envs,
        labels=proxy.labels(spec, profile),
        pull="never",
        **options,
    )
    undo.callback(_remove, "remove container", docker.container.remove, container.id, force=True)
    try:
        engine.call(f"start the proxy's {spec.role}", docker.container.start, container.id)
    except DockerRefused as exc:
        taken = port_taken(spec)
        hint = f"port {taken} is taken: set proxy.port in the profile" if taken else exc.message
        raise ProxyUnavailable(f"could not start the proxy: {hint}", detail=exc.detail) from None


def port_taken(spec: ContainerSpec) -> str | None:
    """Which published address something else already listens on (asked, not guessed)."""
    import socket  # noqa: PLC0415

    for address, _ in spec.publish:
        host_part, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host_part.strip("[]"), int(port)), timeout=0.5):
                return address
        except OSError:
            continue
    return None


def _reconcile(
    settings: ProxySettings, undo: ExitStack, requester: Requester, *, allow_build: bool
) -> str:
    """Make both containers exist, match the settings and run; say what was done."""
    docker = engine.client()
    existing = [find(settings.name), find(backend_name(settings))]
    wanted = wanted_spec(settings).digest
    if all(c is not None and labels_of(c).get(CONFIG_LABEL) == wanted for c in existing):
        return _start_existing([c for c in existing if c is not None], settings)
    for container in existing:
        if container is not None:
            _check_replaceable(container, settings, requester)
    images = ensure_images(settings, allow_build=allow_build, ca_bundle=host.host_ca_bundle())
    proxy = wanted_spec(settings, images)
    for container in existing:
        if container is not None:
            engine.call("remove outdated proxy", docker.container.remove, container.id, force=True)
    _ensure_network(settings.network, undo)
    _ensure_volume(settings.cache_volume, undo)
    _ensure_volume(front_volume(settings), undo)
    for spec in proxy.containers:
        _create(proxy, spec, undo, requester.profile)
    return "recreated" if any(existing) else "created"


def _start_existing(containers: list[Container], settings: ProxySettings) -> str:
    docker = engine.client()
    if any(c.state.paused for c in containers):
        raise ProxyUnavailable(
            f"proxy '{settings.name}' is paused: `docker unpause {settings.name}` to use it"
        )
    stopped = [c for c in containers if not c.state.running]
    for container in stopped:
        engine.call("start the proxy", docker.container.start, container.id)
    return "started" if stopped else "found running"


def _check_replaceable(existing: Container, settings: ProxySettings, requester: Requester) -> None:
    """A build may update its own profile's proxy, never one another profile set up."""
    labels = labels_of(existing)
    owner = labels.get(PROFILE_LABEL, "")
    # No profile label at all: made by an earlier orchestrator, before profiles were recorded.
    if requester.replace or owner == requester.profile or PROFILE_LABEL not in labels:
        return
    raise Conflict(
        f"proxy '{settings.name}' runs with the settings of "
        f"{f'profile {owner!r}' if owner else 'the defaults'}, not those of profile "
        f"'{requester.profile}': run `orchestrate proxy up --profile {requester.profile}` "
        "to switch it, or give this profile its own proxy.name"
    )


def ensure(
    settings: ProxySettings,
    *,
    allow_build: bool = True,
    requester: Requester | None = None,
    quick: bool = True,
    patient: bool = False,
) -> ProxyStatus:
    """Find, start or create the proxy and check that it serves an index page.

    A build waits only for a proxy it created; ``patient`` (`proxy up`) waits for any.
    """
    if settings.url:
        found = status(settings)
        if not found.healthy:
            raise ProxyUnavailable(
                f"external proxy {redact(settings.url)} does not serve: {found.reason}"
            )
        return found
    quick_answer = answering(settings) if quick else None
    if quick_answer is not None:
        return quick_answer
    with creation_lock(settings.name), ExitStack() as undo:
        action = _reconcile(settings, undo, requester or Requester(), allow_build=allow_build)
        patience = {
            "created": settings.startup_timeout,
            "recreated": settings.startup_timeout,
            "started": settings.startup_timeout if patient else STARTED_PATIENCE,
        }.get(action, QUICK_TIMEOUT)
        checked = wait_ready(settings.host_url, settings.health_project, patience)
        if not checked.ok:
            raise ProxyUnavailable(
                f"proxy '{settings.name}' ({action}) did not serve within {patience:g} s: "
                f"{checked.reason} (see `orchestrate proxy logs`)"
            )
        front, backend = find(settings.name), find(backend_name(settings))
        if front is None:
            raise ProxyUnavailable(f"proxy '{settings.name}' disappeared while starting")
        undo.pop_all()  # it serves: keep what was created
    log.info("proxy ready", name=settings.name, action=action, url=settings.host_url)
    return status_of(front, backend, settings, checked)


def predict(settings: ProxySettings, requester: Requester) -> ProxyFacts:
    """What `ensure` would find or make, found without changing anything (for dry runs).

    A conflict (a stranger's container, another profile's proxy) is raised as `ensure`
    raises it, so the caller decides the same way for a dry run and a real one.
    """
    found = status(settings) if settings.url else answering(settings)
    if found is not None:
        return found.facts()
    existing = [find(settings.name), find(backend_name(settings))]
    wanted = wanted_spec(settings).digest
    if all(c is not None and labels_of(c).get(CONFIG_LABEL) == wanted for c in existing):
        return _predict_existing({state_of(c) for c in existing})
    for container in existing:
        if container is not None:
            _check_replaceable(container, settings, requester)
    images = ensure_images(settings, allow_build=False, pull=False)
    taken = port_taken(wanted_spec(settings, images).front)
    if taken is not None and existing[0] is None:
        return ProxyFacts(healthy=False, reason=f"port {taken} is taken: set proxy.port")
    what = "recreates it with the profile's settings" if any(existing) else "creates it"
    return ProxyFacts(healthy=True, reason=f"not running yet; a real run {what} first")


def _predict_existing(states: set[str]) -> ProxyFacts:
    if "paused" in states:
        return ProxyFacts(healthy=False, reason="paused")
    if states == {"running"}:
        return ProxyFacts(healthy=False, reason="running but not answering")
    return ProxyFacts(healthy=True, reason="stopped; a real run starts it first")


def down(settings: ProxySettings, *, purge: bool = False) -> list[str]:
    """Stop and remove the proxy; with purge, its cache volumes and network too."""
    docker = engine.client()
    done: list[str] = []
    with creation_lock(settings.name):
        for name in (settings.name, backend_name(settings)):
            container = find(name)
            if container is not None:
                engine.call(
                    "remove proxy container", docker.container.remove, container.id, force=True
                )
                done.append(f"removed container {name}")
        if purge:
            done += _purge(settings)
    return done


def _purge(settings: ProxySettings) -> list[str]:
    docker = engine.client()
    done = []
    for name in (settings.cache_volume, front_volume(settings)):
        if engine.call("look up volume", docker.volume.exists, name):
            volume = engine.call("inspect volume", docker.volume.inspect, name)
            if (volume.labels or {}).get(OWNER_LABEL) == OWNER:
                engine.call("remove cache volume", docker.volume.remove, volume.name)
                done.append(f"removed volume {name}")
    if engine.call("look up network", docker.network.exists, settings.network):
        network = engine.call("inspect network", docker.network.inspect, settings.network)
        if (network.labels or {}).get(OWNER_LABEL) == OWNER and not network.containers:
            engine.call("remove network", docker.network.remove, network.id)
            done.append(f"removed network {settings.network}")
    return done


def logs(settings: ProxySettings, *, tail: int | None = None) -> str:
    """Both containers' logs: proxpi's, then the front's."""
    docker = engine.client()
    parts = []
    for name in (backend_name(settings), settings.name):
        container = find(name)
        if container is not None:
            text = str(
                engine.call("read proxy logs", docker.container.logs, container.id, tail=tail)
            )
            parts.append(f"== {name}\n{text}")
    if not parts:
        raise ProxyUnavailable(f"no proxy container named '{settings.name}'")
    return "".join(parts)
