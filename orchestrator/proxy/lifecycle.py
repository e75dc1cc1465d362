"""The caching PyPI proxy's lifecycle: find or start it, check it really serves, keep its cache.

Its containers, network and volumes carry an ownership label; anything with our name but
without the label belongs to somebody else and is never touched. A proxy that answers with
the digest of the wanted settings is used without asking Docker at all (the fast path of
every build). Otherwise creation is serialised by a lock that every user of this machine
shares, and relies on the engine's own atomicity besides (a container name is unique: a
name taken while we create means another process made it, and theirs is used). A failed
run undoes only what it created itself, by id (create.py); the lock is locking.py's,
what is found and the fast path are state.py's; removing it is removal.py's.

Every decision a build makes is bounded (``budget``): only a proxy this run creates is
waited for (``Clock.creating`` says how long). A front that accepts connections and does
not answer (paused, hung) is given up on after ``IDENTITY_TIMEOUT``; one found stopped is
started and gets what is left of the budget; a lock held by another process creating the
proxy is not waited for beyond it either.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.engine import client as engine
from orchestrator.errors import Conflict, ProxyUnavailable
from orchestrator.facts import host
from orchestrator.facts.model import ProxyFacts
from orchestrator.log import get_logger
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import reach
from orchestrator.proxy.create import create_container, ensure_network, ensure_volume, port_taken
from orchestrator.proxy.httpclient import Exchange
from orchestrator.proxy.image import ensure_images
from orchestrator.proxy.locking import creation_lock
from orchestrator.proxy.probe import QUICK_TIMEOUT, Deadline, Probe, wait_ready
from orchestrator.proxy.spec import (
    CONFIG_LABEL,
    PROFILE_LABEL,
    backend_name,
    front_volume,
)
from orchestrator.proxy.state import (
    ProxyStatus,
    answering,
    find_all,
    labels_of,
    state_of,
    status,
    status_of,
    wanted_spec,
)
from orchestrator.urls import redact

if TYPE_CHECKING:
    from python_on_whales import Container

__all__ = [
    "Clock",
    "ProxyStatus",
    "Requester",
    "ensure",
    "predict",
    "report",
    "status",
    "up",
]

log = get_logger(__name__)
STARTED_PATIENCE = 0.7  # seconds a proxy this run started (not created) gets


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
class Requester:
    """Who asks for the proxy: a profile's name ('' for the defaults), and whether it may
    replace a container that runs with other settings (`proxy up` may)."""

    profile: str = ""
    replace: bool = True


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
    ensure_network(settings.network, undo)
    ensure_volume(settings.cache_volume, undo)
    ensure_volume(front_volume(settings), undo)
    for spec in proxy.containers:
        kept = current.get(spec.name)
        if kept is not None:
            _start_existing([kept], settings, Deadline(None))
        else:
            create_container(proxy, spec, undo, requester.profile)
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
                checked = _wait(settings, action, deadline, patient=patient, via=_via(settings))
        except engine.absent_errors() as exc:
            raise _changed(settings, exc) from None
        finally:
            clock.count()
        undo.pop_all()  # it serves: keep what was created
    try:
        if checked is None:  # found or started: waited for without holding the lock
            checked = _wait(settings, action, deadline, patient=patient, via=_via(settings))
        both = find_all((settings.name, backend_name(settings)))
    except engine.absent_errors() as exc:
        raise _changed(settings, exc) from None
    front, backend = both[settings.name], both[backend_name(settings)]
    if front is None or backend is None:
        raise ProxyUnavailable(f"proxy '{settings.name}' disappeared while starting")
    reached = reach.decide(settings, front.id, backend.id)
    log.info(
        "proxy ready",
        name=settings.name,
        action=action,
        url=settings.host_url,
        reach=reached.evidence,
    )
    return status_of(front, backend, settings, checked, reached)


def _via(settings: ProxySettings) -> Exchange:
    """How to ask the proxy while it gets ready (``reach.while_starting``), for the
    containers the engine names now."""
    both = find_all((settings.name, backend_name(settings)))
    front, backend = both[settings.name], both[backend_name(settings)]
    if front is None or backend is None:
        raise ProxyUnavailable(f"proxy '{settings.name}' disappeared while starting")
    return reach.while_starting(settings, front.id, backend.id)


def _changed(settings: ProxySettings, exc: Exception) -> ProxyUnavailable:
    return ProxyUnavailable(
        f"proxy '{settings.name}' changed while starting it (another process removed "
        f"part of it: {type(exc).__name__}); run again"
    )


def _wait(
    settings: ProxySettings, action: str, deadline: Deadline, *, patient: bool, via: Exchange
) -> Probe:
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
        via=via,
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
        states = {state_of(c) for c in existing}
        if states == {"running"}:  # asked where the engine is, as a real run asks it
            return status(settings, probe_timeout=max(0.05, deadline.left(QUICK_TIMEOUT))).facts()
        return _predict_existing(states)
    for container in existing:
        if container is not None:
            _check_replaceable(container, settings, requester)
    images = ensure_images(settings, allow_build=False, pull=False)
    known = reach.recalled(settings)
    # A port taken on this machine says something of the engine's only when its loopback
    # was found to be this machine's.
    taken = port_taken(wanted_spec(settings, images).front) if known and known.local else None
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


def up(settings: ProxySettings, profile: str) -> ProxyStatus:
    """`proxy up`: find, start or create the proxy and wait, however long, until it serves;
    it may replace a proxy that runs with other settings."""
    engine.ensure_engine()
    return ensure(settings, requester=Requester(profile=profile, replace=True), patient=True)


def report(settings: ProxySettings) -> ProxyStatus:
    """`proxy status`: what the proxy is and whether it serves; the engine is asked only
    about a managed proxy (an external one is only probed)."""
    if not settings.url:
        engine.ensure_engine()
    return status(settings)
