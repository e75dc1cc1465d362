"""The caching PyPI proxy's lifecycle: find or start it, check it really serves, keep its cache.

Its containers, network and volumes carry an ownership label; anything with our name but
without the label belongs to somebody else and is never touched. A proxy that answers with
the digest of the wanted settings is used without asking Docker at all (the fast path of
every build). Otherwise creation is serialised by a lock that every user of this machine
shares, and relies on the engine's own atomicity besides (a container name is unique: a
name taken while we create means another process made it, and theirs is used). A failed
run undoes only what it created itself, by id.

Every decision a build makes is bounded (``budget``): only a proxy this run creates is
waited for (``Clock.creating`` says how long). A front that accepts connections and does
not answer (paused, hung) is given up on after ``IDENTITY_TIMEOUT``; one found stopped is
started and gets what is left of the budget; a lock held by another process creating the
proxy is not waited for beyond it either.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import ipaddress
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import host, paths
from orchestrator.engine import client as engine
from orchestrator.errors import Conflict, DockerRefused, HandledError, ProxyUnavailable
from orchestrator.log import get_logger
from orchestrator.plan.facts import ProxyFacts
from orchestrator.profiles import ProxySettings
from orchestrator.proxy.image import ensure_images
from orchestrator.proxy.probe import (
    QUICK_TIMEOUT,
    Deadline,
    Probe,
    answers,
    probe,
    served,
    wait_ready,
)
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
STARTED_PATIENCE = 0.7  # seconds a proxy this run started (not created) gets
CREATED_LABEL = "io.orchestrator.created-by"  # the run that created a network or volume
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
RUN_TOKEN = secrets.token_hex(8)  # this process, in CREATED_LABEL


@dataclass
class Clock:
    """What one decision spent creating a proxy and waiting for it: the one wait exempt
    from the decision's bound."""

    creating: float = 0.0
    began: float | None = None  # when creating began, until it is counted

    def count(self) -> None:
        if self.began is not None:
            self.creating += time.monotonic() - self.began
            self.began = None


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


def find_all(names: tuple[str, ...]) -> dict[str, Container | None]:
    """``find`` for each name, asked at the same time (each is a docker CLI process)."""
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(find, names), strict=True))


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
    both = find_all((settings.name, backend_name(settings)))
    front, backend = both[settings.name], both[backend_name(settings)]
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
        checked = served(settings.host_url, settings.health_project, probe_timeout)
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


def answering(settings: ProxySettings, deadline: Deadline | None = None) -> ProxyStatus | None:
    """The proxy, if it serves and says it runs with these settings (HTTP only).

    With a bounded ``deadline``, a front that accepts connections and does not answer,
    or answers with our settings and serves no page in time, is a ProxyUnavailable at
    once: asking Docker would not make it serve within the bound.
    """
    if settings.url or settings.bridge:
        return None  # an external proxy has no identity; the bridge gateway needs Docker
    digest = wanted_spec(settings).digest
    checked = answers(
        settings.host_url, settings.health_project, digest, name=settings.name, deadline=deadline
    )
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
def creation_lock(name: str, timeout: float | None = None) -> Iterator[None]:
    """Serialise find-or-create for every user of this machine and engine.

    The lock file lives in a world-writable sticky directory, not in a home directory, so
    two users share it; it is opened read-only (flock needs no write access), so a file
    another user created still locks. With ``timeout``, a lock another process holds
    longer (while it creates the proxy) is a ProxyUnavailable, not a wait.
    """
    fd = _open_lock(_lock_path(name))
    try:
        _acquire(fd, name, timeout)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def engine_key() -> str:
    """The engine, named the same whichever way a user reaches it: DOCKER_HOST unset and
    set to the default socket (through /var/run or /run) are one engine, one lock."""
    host = os.environ.get("DOCKER_HOST", "").strip() or DEFAULT_DOCKER_HOST
    if host.startswith("unix://"):
        return "unix://" + os.path.realpath(host.removeprefix("unix://"))
    return host


def _lock_path(name: str) -> Path:
    directory = paths.shared_lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    mode = directory.stat()
    if mode.st_mode & 0o1777 != 0o1777 and os.getuid() in (mode.st_uid, 0):
        directory.chmod(0o1777)
    key = hashlib.sha256(f"{engine_key()}\0{name}".encode()).hexdigest()[:16]
    return directory / f"proxy-{key}.lock"


def _open_lock(path: Path) -> int:
    """Open the lock file, creating it if need be, without O_CREAT on a file that exists:
    with fs.protected_regular, O_CREAT on another user's file in a sticky directory is
    refused, even to root. A directory another user made a moment ago may not be
    world-writable yet (they chmod it just after): that is retried for a moment."""
    end = time.monotonic() + 2.0
    while True:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            continue  # another process created it between the two opens
        except PermissionError as exc:
            if time.monotonic() > end:
                raise ProxyUnavailable(
                    f"cannot create the proxy's lock in {path.parent} ({exc.strerror}): "
                    f"make it world-writable and sticky (chmod 1777 {path.parent})"
                ) from None
            time.sleep(0.02)
            continue
        os.fchmod(fd, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        return fd


def _acquire(fd: int, name: str, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if time.monotonic() >= end:
            raise ProxyUnavailable(
                f"another orchestrate is creating or starting proxy '{name}'; "
                "this build does not wait for it"
            )
        time.sleep(0.02)


def _ensure_network(name: str, undo: ExitStack) -> None:
    docker = engine.client()
    if engine.call("look up network", docker.network.exists, name):
        return
    labels = {OWNER_LABEL: OWNER, CREATED_LABEL: RUN_TOKEN}
    try:
        network = engine.call("create network", docker.network.create, name, labels=labels)
    except DockerRefused:
        if engine.call("look up network", docker.network.exists, name):
            return  # another process made it first: theirs to keep
        raise
    undo.callback(_remove, "remove network", docker.network.remove, network.id)


def _ensure_volume(name: str, undo: ExitStack) -> None:
    """The volume, created if missing; undone only if this run created it.

    Creating a volume that exists answers the existing one, so another process may have
    made it between the look-up and the create: the label says whose it is."""
    docker = engine.client()
    if engine.call("look up volume", docker.volume.exists, name):
        return
    labels = {OWNER_LABEL: OWNER, CREATED_LABEL: RUN_TOKEN}
    try:
        volume = engine.call("create volume", docker.volume.create, name, labels=labels)
    except DockerRefused:
        if engine.call("look up volume", docker.volume.exists, name):
            return  # another process made it first: theirs to keep
        raise
    if (volume.labels or {}).get(CREATED_LABEL) == RUN_TOKEN:
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
    """Create, then start, by id: a failed start removes exactly the container we made.

    The engine keeps container names unique: when the name is taken while we create,
    another process (of another user, another lock) made it, and theirs is used. Which
    it is, is asked of the engine, not read from Docker's message."""
    docker = engine.client()
    options: dict[str, Any] = {}
    if spec.command:
        options["command"] = list(spec.command)
    try:
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
    except DockerRefused:
        theirs = find(spec.name)
        if theirs is None:
            raise
        _use_theirs(theirs, proxy, spec, profile)
        return
    undo.callback(_remove, "remove container", docker.container.remove, container.id, force=True)
    try:
        engine.call(f"start the proxy's {spec.role}", docker.container.start, container.id)
    except DockerRefused as exc:
        taken = port_taken(spec)
        hint = f"port {taken} is taken: set proxy.port in the profile" if taken else exc.message
        raise ProxyUnavailable(f"could not start the proxy: {hint}", detail=exc.detail) from None


def _use_theirs(theirs: Container, proxy: ProxySpec, spec: ContainerSpec, profile: str) -> None:
    """A container another process created under our name meanwhile: used if it runs with
    the same settings (and started, as they are about to), never removed by us."""
    if labels_of(theirs).get(CONFIG_LABEL) != proxy.digest:
        raise ProxyUnavailable(
            f"another process created proxy container '{spec.name}' with other settings "
            "at the same moment: run again"
        )
    log.info("proxy container made by another process; using it", container=spec.name)
    if not theirs.state.running:
        engine.call(f"start the proxy's {spec.role}", engine.client().container.start, theirs.id)


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
    settings: ProxySettings,
    undo: ExitStack,
    requester: Requester,
    *,
    allow_build: bool,
    clock: Clock,
    deadline: Deadline,
) -> str:
    """Make both containers exist, match the settings and run; say what was done, and
    tell ``clock`` when creating began.

    Each container is looked at alone: one with the wanted settings is kept (and started),
    whoever made it, so a process arriving while another creates the proxy never removes
    the half already made; only a container with other settings is replaced."""
    docker = engine.client()
    wanted = wanted_spec(settings).digest
    existing = find_all((backend_name(settings), settings.name))
    current = {
        name: container
        for name, container in existing.items()
        if container is not None and labels_of(container).get(CONFIG_LABEL) == wanted
    }
    if len(current) == len(existing):
        return _start_existing(list(current.values()), settings, deadline)
    outdated = [c for n, c in existing.items() if c is not None and n not in current]
    for container in outdated:
        _check_replaceable(container, settings, requester)
    clock.began = time.monotonic()
    images = ensure_images(settings, allow_build=allow_build, ca_bundle=host.host_ca_bundle())
    proxy = wanted_spec(settings, images)
    for container in outdated:
        try:
            engine.call("remove outdated proxy", docker.container.remove, container.id, force=True)
        except engine.absent_errors():
            pass  # another process replaced it already
    _ensure_network(settings.network, undo)
    _ensure_volume(settings.cache_volume, undo)
    _ensure_volume(front_volume(settings), undo)
    for spec in proxy.containers:
        kept = current.get(spec.name)
        if kept is not None:
            _start_existing([kept], settings, Deadline(None))
        else:
            _create(proxy, spec, undo, requester.profile)
    return "recreated" if outdated else "created"


def _start_existing(
    containers: list[Container], settings: ProxySettings, deadline: Deadline
) -> str:
    """Start what is stopped. Within a bounded decision the starts run beside it, one per
    container, and are not waited for past the bound: they go on, and the proxy serves
    the next build."""
    if any(c.state.paused for c in containers):
        raise ProxyUnavailable(
            f"proxy '{settings.name}' is paused: `docker unpause {settings.name}` to use it"
        )
    stopped = [c.id for c in containers if not c.state.running]
    if not stopped:
        return "found running"
    if not deadline.bounded:
        engine.call("start the proxy", engine.client().container.start, stopped)
        return "started"
    starts = [_Start(ident) for ident in stopped]
    for start in starts:
        start.join(deadline.left(float("inf")))
    if any(start.is_alive() for start in starts):
        raise ProxyUnavailable(
            f"proxy '{settings.name}' was stopped: it is starting, for the next build; "
            "this one does not wait for it"
        )
    for start in starts:
        if start.failure is not None:
            raise start.failure
    return "started"


class _Start(threading.Thread):
    """One container started beside the decision; a daemon, so a build that goes on
    without it never waits for it (the docker command it runs finishes on its own)."""

    def __init__(self, ident: str) -> None:
        super().__init__(daemon=True, name=f"start {ident[:12]}")
        self.container = ident
        self.failure: Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            engine.call("start the proxy", engine.client().container.start, self.container)
        except Exception as exc:  # handed to the deciding thread
            self.failure = exc


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
    budget: float | None = None,
    clock: Clock | None = None,
) -> ProxyStatus:
    """Find, start or create the proxy and check that it serves an index page.

    A build passes ``budget``: every wait but the one for a proxy it creates ends within
    it (``clock`` gets the exempt time). ``patient`` (`proxy up`) waits for any proxy.
    """
    deadline = Deadline(budget)
    clock = clock if clock is not None else Clock()
    if settings.url:
        found = status(settings, probe_timeout=max(0.05, deadline.left(2.0)))
        if not found.healthy:
            raise ProxyUnavailable(
                f"external proxy {redact(settings.url)} does not serve: {found.reason}"
            )
        return found
    quick_answer = answering(settings, deadline) if quick else None
    if quick_answer is not None:
        return quick_answer
    lock_wait = deadline.left(float("inf")) if deadline.bounded else None
    checked: Probe | None = None
    with creation_lock(settings.name, lock_wait), ExitStack() as undo:
        try:
            action = _reconcile(
                settings,
                undo,
                requester or Requester(),
                allow_build=allow_build,
                clock=clock,
                deadline=deadline,
            )
            # A proxy this run made is waited for under the lock (and removed again if it
            # never serves); the others wait on the lock meanwhile, and find it ready.
            if action in ("created", "recreated"):
                checked = _wait(settings, action, deadline, patient=patient)
        except engine.absent_errors() as exc:
            raise _changed(settings, exc) from None
        finally:
            clock.count()
        undo.pop_all()  # it serves: keep what was created
    try:
        if checked is None:  # found or started: waited for without holding the lock
            checked = _wait(settings, action, deadline, patient=patient)
        both = find_all((settings.name, backend_name(settings)))
    except engine.absent_errors() as exc:
        raise _changed(settings, exc) from None
    front, backend = both[settings.name], both[backend_name(settings)]
    if front is None:
        raise ProxyUnavailable(f"proxy '{settings.name}' disappeared while starting")
    log.info("proxy ready", name=settings.name, action=action, url=settings.host_url)
    return status_of(front, backend, settings, checked)


def _changed(settings: ProxySettings, exc: Exception) -> ProxyUnavailable:
    return ProxyUnavailable(
        f"proxy '{settings.name}' changed while starting it (another process removed "
        f"part of it: {type(exc).__name__}); run again"
    )


def _wait(settings: ProxySettings, action: str, deadline: Deadline, *, patient: bool) -> Probe:
    """Wait for the proxy to serve: as long as it takes to start one this run created,
    else only what the decision has left."""
    created = action in ("created", "recreated")
    if created or (patient and action == "started"):
        patience = settings.startup_timeout
    elif action == "started":
        patience = deadline.left(STARTED_PATIENCE)
    else:
        patience = deadline.left(QUICK_TIMEOUT)
    checked = wait_ready(
        settings.host_url,
        settings.health_project,
        patience,
        managed=True,
        backend_too=created or patient,
    )
    if not checked.ok and action == "started" and not patient:
        raise ProxyUnavailable(
            f"proxy '{settings.name}' was stopped: it is started, and serves the next build; "
            f"this one does not wait for it ({checked.reason})"
        )
    if not checked.ok:
        raise ProxyUnavailable(
            f"proxy '{settings.name}' ({action}) did not serve within {patience:.2g} s: "
            f"{checked.reason} (see `orchestrate proxy logs`)"
        )
    return checked


def predict(
    settings: ProxySettings, requester: Requester, budget: float | None = None
) -> ProxyFacts:
    """What `ensure` would find or make, found without changing anything (for dry runs).

    A conflict (a stranger's container, another profile's proxy) is raised as `ensure`
    raises it, so the caller decides the same way for a dry run and a real one.
    """
    deadline = Deadline(budget)
    if settings.url:
        found: ProxyStatus | None = status(settings, probe_timeout=max(0.05, deadline.left(2.0)))
    else:
        found = answering(settings, deadline)
    if found is not None:
        return found.facts()
    existing = list(find_all((settings.name, backend_name(settings))).values())
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
    """Stop and remove the proxy; with purge, its cache volumes and network too.

    What another process removed meanwhile is simply gone (absence, as a type)."""
    docker = engine.client()
    done: list[str] = []
    with creation_lock(settings.name):
        for name in (settings.name, backend_name(settings)):
            container = find(name)
            if container is None:
                continue
            try:
                engine.call(
                    "remove proxy container", docker.container.remove, container.id, force=True
                )
            except engine.absent_errors():
                continue
            done.append(f"removed container {name}")
        if purge:
            done += _purge(settings)
    return done


def _purge(settings: ProxySettings) -> list[str]:
    """Our volumes and network (by their ownership label), each asked about once."""
    docker = engine.client()
    done = []
    for name in (settings.cache_volume, front_volume(settings)):
        try:
            volume = engine.call("inspect volume", docker.volume.inspect, name)
            if (volume.labels or {}).get(OWNER_LABEL) == OWNER:
                engine.call("remove cache volume", docker.volume.remove, volume.name)
                done.append(f"removed volume {name}")
        except engine.absent_errors():
            continue
    try:
        network = engine.call("inspect network", docker.network.inspect, settings.network)
        if (network.labels or {}).get(OWNER_LABEL) == OWNER and not network.containers:
            engine.call("remove network", docker.network.remove, network.id)
            done.append(f"removed network {settings.network}")
    except engine.absent_errors():
        pass
    return done


def logs(settings: ProxySettings, *, tail: int | None = None) -> str:
    """Both containers' logs: proxpi's, then the front's."""
    docker = engine.client()
    parts = []
    for name in (backend_name(settings), settings.name):
        container = find(name)
        if container is None:
            continue
        try:
            text = str(
                engine.call("read proxy logs", docker.container.logs, container.id, tail=tail)
            )
        except engine.absent_errors():
            continue
        parts.append(f"== {name}\n{text}")
    if not parts:
        raise ProxyUnavailable(f"no proxy container named '{settings.name}'")
    return "".join(parts)
