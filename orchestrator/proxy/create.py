"""Creating the proxy's parts (network, volumes, containers), each undone on failure
only when this run made it: a label with this process's token says whose it is, and a
name taken meanwhile is another process's, used and never removed."""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from orchestrator.engine import client as engine
from orchestrator.errors import DockerRefused, HandledError, ProxyUnavailable
from orchestrator.log import get_logger
from orchestrator.proxy.spec import CONFIG_LABEL, OWNER, OWNER_LABEL, ContainerSpec, ProxySpec
from orchestrator.proxy.state import find, labels_of

if TYPE_CHECKING:
    from python_on_whales import Container

log = get_logger(__name__)
CREATED_LABEL = "io.orchestrator.created-by"  # the run that created a network or volume
RUN_TOKEN = secrets.token_hex(8)  # this process, in CREATED_LABEL
NAME_SETTLE = 2.0  # seconds a name another create holds may take to become inspectable


def ensure_network(name: str, undo: ExitStack) -> None:
    """The network, created if missing; undone, by id, only if this run created it."""
    network = _ensure("network", engine.client().network, name)
    if network is not None:
        undo.callback(_remove, "remove network", engine.client().network.remove, network.id)


def ensure_volume(name: str, undo: ExitStack) -> None:
    """The volume, created if missing; undone only if this run created it (a volume's
    name is its id)."""
    volume = _ensure("volume", engine.client().volume, name)
    if volume is not None:
        undo.callback(_remove, "remove volume", engine.client().volume.remove, volume.name)


def _ensure(noun: str, component: Any, name: str) -> Any:
    """What this run created, or None when it exists already.

    Another process may make it between the look-up and the create (creating a volume
    that exists even answers the existing one): the label says whose it is."""
    if engine.call(f"look up {noun}", component.exists, name):
        return None
    labels = {OWNER_LABEL: OWNER, CREATED_LABEL: RUN_TOKEN}
    try:
        made = engine.call(f"create {noun}", component.create, name, labels=labels)
    except DockerRefused:
        if engine.call(f"look up {noun}", component.exists, name):
            return None  # another process made it first: theirs to keep
        raise
    return made if (made.labels or {}).get(CREATED_LABEL) == RUN_TOKEN else None


def _remove(action: str, fn: Any, target: str, **kwargs: Any) -> None:
    """One undo step; its failure is logged, and the other steps still run."""
    try:
        engine.call(action, fn, target, **kwargs)
    except HandledError as exc:
        log.warning("rollback incomplete", action=action, target=target, reason=exc.message)
    except engine.absent_errors():
        pass


def create_container(proxy: ProxySpec, spec: ContainerSpec, undo: ExitStack, profile: str) -> None:
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
        theirs = _theirs(spec.name)
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


def _theirs(name: str) -> Container | None:
    """The container that took our name while we created ours, if one did. Docker reserves
    a name before the container it names can be inspected, so a create refused for the
    name can find nothing for a moment (seen once on Docker 20.10, processes sharing no
    lock): asked again for up to ``NAME_SETTLE`` seconds before the refusal stands."""
    deadline = time.monotonic() + NAME_SETTLE
    while True:
        found = find(name)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


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
