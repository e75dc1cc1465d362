"""The proxy as it is: its containers found by name (ours by label, a stranger's a
conflict), their state, addresses, logs and what `proxy status` reports; and the fast
path, a proxy that answers with the wanted settings' digest over HTTP, with no Docker call."""

from __future__ import annotations

import functools
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.engine import client as engine
from orchestrator.errors import Conflict, ProxyUnavailable
from orchestrator.facts import host
from orchestrator.facts.model import ProxyFacts
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import reach
from orchestrator.proxy.probe import Deadline, Probe, probe, served
from orchestrator.proxy.spec import (
    CONFIG_LABEL,
    OWNER,
    OWNER_LABEL,
    ProxySpec,
    backend_name,
    proxy_spec,
)
from orchestrator.urls import redact_all, with_userinfo

if TYPE_CHECKING:
    from python_on_whales import Container


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
    digest: str | None = None  # the settings it runs with: its front's label, or its answer
    reached: str | None = None  # how this process reaches its front, and the evidence

    def as_dict(self) -> dict[str, Any]:
        return dict(redact_all(asdict(self)))

    def facts(self) -> ProxyFacts:
        return ProxyFacts(
            healthy=self.healthy, reason=self.reason, address=self.address, digest=self.digest
        )


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
        index=authed(settings, settings.index) if not settings.url else None,
    )


def authed(settings: ProxySettings, url: str) -> str:
    """``url`` with the profile's credentials in it (proxy.credentials), read now."""
    if settings.credentials is None:
        return url
    return with_userinfo(url, host.read_credentials(settings.credentials.source, "the profile"))


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
        found = probe(authed(settings, settings.url), settings.health_project, probe_timeout)
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
    if state != "running" or backend is None:
        return status_of(front, backend, settings, checked)
    known = reach.of_front(settings, front.id, backend.id)
    checked = served(settings.host_url, settings.health_project, probe_timeout, via=known.exchange)
    return status_of(front, backend, settings, checked, known)


def status_of(
    front: Container,
    backend: Container | None,
    settings: ProxySettings,
    checked: Probe,
    reached: reach.Reach | None = None,
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
        digest=labels_of(front).get(CONFIG_LABEL),
        reached=reached.evidence if reached is not None else None,
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
    known = reach.recalled(settings)
    if known is None:
        return None  # not yet decided for this engine: the engine says which front is ours
    digest = wanted_spec(settings).digest
    checked = reach.answers(
        known,
        settings.host_url,
        settings.health_project,
        digest,
        name=settings.name,
        deadline=deadline,
    )
    if checked is None:
        return None
    return ProxyStatus(
        state="running",
        healthy=True,
        reason=checked.reason,
        network=settings.network,
        cache_volume=settings.cache_volume,
        digest=digest,
        reached=known.evidence,
        **_base(settings),
    )


def logs(settings: ProxySettings, *, tail: int | None = None) -> str:
    """Both containers' logs: proxpi's, then the front's."""
    engine.ensure_engine()
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
