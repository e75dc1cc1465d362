"""The caching PyPI proxy's lifecycle: find or start proxpi, check it really serves, keep its cache.

The container, its network and its cache volume carry an ownership label; anything with
our name but without the label belongs to somebody else and is never touched. What the
container should look like is planned as data (:func:`container_spec`) and fingerprinted
into a label, so a changed setting recreates the container while the cache volume stays.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from python_on_whales import Container

from orchestrator import engine
from orchestrator.errors import Conflict, EngineUnavailable, ProxyUnavailable
from orchestrator.log import get_logger
from orchestrator.profiles import ProxySettings
from orchestrator.urls import redact, redact_all, split_credentials

log = get_logger(__name__)

OWNER_LABEL = "io.orchestrator.owner"
OWNER = "orchestrator"
CONFIG_LABEL = "io.orchestrator.proxy-config"
PROFILE_LABEL = "io.orchestrator.proxy-profile"  # the profile whose settings it runs with
PROXPI_VERSION = "1.3.1"
LOCAL_IMAGE = f"orchestrator/proxpi:{PROXPI_VERSION}"
CONTAINER_PORT = 5000
CACHE_DIR = "/var/cache/proxpi"
CA_TARGET = "/etc/orchestrator/ca-bundle.crt"
SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
RUNNING_PATIENCE = 3.0  # seconds a proxy found running gets to answer
LOCK_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orchestrator" / "locks"
)


@dataclass(frozen=True)
class ContainerSpec:
    """How the proxy container should be run: pure data, derived from settings alone."""

    name: str
    image: str
    network: str
    publish: tuple[tuple[str, int], ...]
    volumes: tuple[tuple[str, str, str], ...]
    envs: dict[str, str] = field(default_factory=dict)
    configured_image: str = ""

    def digest(self) -> str:
        """Fingerprint of the settings; the image they resolved to is left out, so a
        proxy built locally matches the same settings as one that was pulled."""
        data = asdict(self)
        del data["image"]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def labels(self, profile: str = "") -> dict[str, str]:
        return {OWNER_LABEL: OWNER, CONFIG_LABEL: self.digest(), PROFILE_LABEL: profile}


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

    def as_dict(self) -> dict[str, Any]:
        return dict(redact_all(asdict(self)))


def proxpi_env(settings: ProxySettings, *, with_ca: bool) -> dict[str, str]:
    """proxpi's settings that matter; its defaults lose the cache and redirect cold misses."""
    env = {
        "PROXPI_INDEX_URL": settings.index,
        "PROXPI_INDEX_TTL": str(settings.index_ttl),
        "PROXPI_CACHE_DIR": CACHE_DIR,
        "PROXPI_CACHE_SIZE": str(settings.cache_size),
        "PROXPI_DOWNLOAD_TIMEOUT": str(settings.download_timeout),
        "PROXPI_CONNECT_TIMEOUT": "10",
        "PROXPI_READ_TIMEOUT": "60",
    }
    if settings.extra_indexes:
        env["PROXPI_EXTRA_INDEX_URLS"] = ",".join(settings.extra_indexes)
        env["PROXPI_EXTRA_INDEX_TTLS"] = ",".join(
            str(settings.extra_index_ttl) for _ in settings.extra_indexes
        )
    if with_ca:
        env["REQUESTS_CA_BUNDLE"] = CA_TARGET
    return env


def container_spec(
    settings: ProxySettings, image: str, bridge_gateway: str | None = None
) -> ContainerSpec:
    ca = settings.ca_bundle_path()
    publish = [(f"{settings.bind}:{settings.port}", CONTAINER_PORT)]
    if settings.bridge and bridge_gateway:
        publish.append((f"{bridge_gateway}:{settings.port}", CONTAINER_PORT))
    volumes = [(settings.cache_volume, CACHE_DIR, "rw")]
    if ca is not None:
        volumes.append((str(ca), CA_TARGET, "ro"))
    return ContainerSpec(
        name=settings.name,
        image=image,
        network=settings.network,
        publish=tuple(publish),
        volumes=tuple(volumes),
        envs=proxpi_env(settings, with_ca=ca is not None),
        configured_image=settings.image,
    )


# --- readiness -------------------------------------------------------------------------


def probe(index_url: str, project: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Fetch one index page through the proxy, as pip would; the only proof it serves."""
    bare, auth = split_credentials(index_url)
    url = f"{bare.rstrip('/')}/{project}/"
    headers = {"Accept": SIMPLE_ACCEPT, **auth}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return True, f"served {url} ({response.status})"
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return True, f"answered 404 for {url}: upstream has no '{project}'"
        return False, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url} unreachable: {reason}"


def wait_ready(index_url: str, project: str, timeout: float) -> tuple[bool, str]:
    """Probe with exponential backoff until ready or out of time."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        ok, reason = probe(index_url, project, timeout=min(5.0, timeout))
        if ok or time.monotonic() + delay > deadline:
            return ok, reason
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


# --- finding and inspecting -------------------------------------------------------------


def _find(name: str) -> Container | None:
    docker = engine.client()
    try:
        container = engine.call("inspect container", docker.container.inspect, name)
    except EngineUnavailable as exc:
        if "no such" in exc.message.lower():
            return None
        raise
    if _labels(container).get(OWNER_LABEL) != OWNER:
        raise Conflict(
            f"a container named '{name}' exists but was not created by orchestrator; "
            "it is left alone: set proxy.name in the profile to another name"
        )
    return container


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


def _bake_url(settings: ProxySettings) -> str | None:
    """Where bake builds (default bridge) reach the proxy, when it is published there."""
    gateway = published_gateway(settings)
    return f"http://{gateway}:{settings.port}/index/" if gateway else None


def _labels(container: Container) -> dict[str, str]:
    return dict(container.config.labels or {})


def address_on(container: Container, network: str) -> str | None:
    """The container's IP on a network: what RUN steps of a container builder can reach."""
    endpoint = (container.network_settings.networks or {}).get(network)
    return endpoint.ip_address if endpoint is not None and endpoint.ip_address else None


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
        ok, reason = probe(settings.url, settings.health_project, probe_timeout)
        return ProxyStatus(state="external", healthy=ok, reason=reason, **_base(settings))
    container = _find(settings.name)
    if container is None:
        return ProxyStatus(
            state="absent", healthy=False, reason="no proxy container", **_base(settings)
        )
    state = container.state.status or "unknown"
    healthy, reason = False, f"container is {state}"
    if state == "running":
        healthy, reason = probe(settings.host_url, settings.health_project, probe_timeout)
    return _status_of(container, settings, healthy=healthy, reason=reason)


def _status_of(
    container: Container, settings: ProxySettings, *, healthy: bool, reason: str
) -> ProxyStatus:
    return ProxyStatus(
        state=container.state.status or "unknown",
        healthy=healthy,
        reason=reason,
        network=settings.network,
        cache_volume=settings.cache_volume,
        container_id=container.id[:12],
        image=container.config.image,
        address=address_on(container, settings.network),
        bake_url=_bake_url(settings),
        **_base(settings),
    )


# --- the image ----------------------------------------------------------------------------


def ensure_image(settings: ProxySettings, *, allow_build: bool = True, pull: bool = True) -> str:
    """The configured image if present or pullable, else our own, built if need be."""
    docker = engine.client()
    if engine.call("look up image", docker.image.exists, settings.image):
        return settings.image
    if pull:
        try:
            engine.call("pull image", docker.image.pull, settings.image, quiet=True)
            return settings.image
        except EngineUnavailable as exc:
            log.info("proxy image not pullable", image=settings.image, reason=exc.message)
    if engine.call("look up image", docker.image.exists, LOCAL_IMAGE):
        return LOCAL_IMAGE
    if not allow_build:
        raise ProxyUnavailable(
            f"proxy image {settings.image} is neither present nor pullable, and "
            f"{LOCAL_IMAGE} is not built yet: run `orchestrate proxy image`"
        )
    build_image(settings.base_image, settings.ca_bundle_path())
    return LOCAL_IMAGE


def build_image_argv(base_image: str, ca_bundle: Path | None) -> tuple[str, ...]:
    dockerfile = resources.files("orchestrator.resources").joinpath("proxpi/Dockerfile")
    context = Path(str(dockerfile)).parent
    argv = ["docker", "buildx", "build", "--file", str(context / "Dockerfile")]
    argv += ["--build-arg", f"BASE_IMAGE={base_image}"]
    argv += ["--build-arg", f"PROXPI_VERSION={PROXPI_VERSION}"]
    if ca_bundle is not None:
        argv += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    argv += ["--label", f"{OWNER_LABEL}={OWNER}", "--tag", LOCAL_IMAGE, "--load", str(context)]
    return tuple(argv)


def build_image(base_image: str, ca_bundle: Path | None) -> None:
    log.info("building proxy image", image=LOCAL_IMAGE, base_image=base_image)
    try:
        engine.run_streaming(build_image_argv(base_image, ca_bundle))
    except Exception as exc:
        message = getattr(exc, "message", str(exc))
        raise ProxyUnavailable(f"could not build the proxy image: {message}") from None


# --- starting ------------------------------------------------------------------------------


@contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise find-or-create across processes on this machine."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCK_DIR / f"proxy-{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _Created:
    """What this run created, so that a failed start removes exactly that and no more."""

    container: str | None = None
    network: str | None = None
    volume: str | None = None

    def rollback(self) -> None:
        docker = engine.client()
        for action, fn, target in (
            ("remove container", docker.container.remove, self.container),
            ("remove network", docker.network.remove, self.network),
            ("remove volume", docker.volume.remove, self.volume),
        ):
            if target is not None:
                try:
                    kwargs = {"force": True} if fn is docker.container.remove else {}
                    engine.call(action, fn, target, **kwargs)
                except EngineUnavailable as exc:
                    log.warning("rollback incomplete", action=action, reason=exc.message)


def _ensure_network(name: str, created: _Created) -> None:
    docker = engine.client()
    if engine.call("look up network", docker.network.exists, name):
        return
    try:
        engine.call("create network", docker.network.create, name, labels={OWNER_LABEL: OWNER})
        created.network = name
    except EngineUnavailable:
        if not engine.call("look up network", docker.network.exists, name):
            raise


def _ensure_volume(name: str, created: _Created) -> None:
    docker = engine.client()
    if engine.call("look up volume", docker.volume.exists, name):
        return
    engine.call("create volume", docker.volume.create, name, labels={OWNER_LABEL: OWNER})
    created.volume = name


def _run(spec: ContainerSpec, created: _Created, profile: str) -> None:
    docker = engine.client()
    try:
        engine.call(
            "start the proxy container",
            docker.container.run,
            spec.image,
            detach=True,
            name=spec.name,
            restart="always",
            networks=[spec.network],
            publish=list(spec.publish),
            volumes=list(spec.volumes),
            envs=spec.envs,
            labels=spec.labels(profile),
            pull="never",
        )
    except EngineUnavailable as exc:
        if engine.call("look up container", docker.container.exists, spec.name):
            created.container = spec.name
        hint = ""
        if "address already in use" in exc.message or "port is already allocated" in exc.message:
            hint = f" (port {spec.publish[0][0]} is taken: set proxy.port in the profile)"
        raise ProxyUnavailable(f"could not start the proxy: {exc.message}{hint}") from None
    created.container = spec.name


@dataclass(frozen=True)
class Requester:
    """Who asks for the proxy: a profile's name ('' for the defaults), and whether it may
    replace a container that runs with other settings (`proxy up` may)."""

    profile: str = ""
    replace: bool = True


def _reconcile(
    settings: ProxySettings, created: _Created, requester: Requester, *, allow_build: bool
) -> str:
    """Make the container exist, match the settings and run; say what was done."""
    docker = engine.client()
    existing = _find(settings.name)
    wanted = container_spec(settings, settings.image, published_gateway(settings)).digest()
    if existing is not None and _labels(existing).get(CONFIG_LABEL) == wanted:
        if not existing.state.running:
            engine.call("start the proxy container", docker.container.start, existing)
            return "started"
        return "found running"
    if existing is not None:
        _check_replaceable(existing, settings, requester)
    spec = container_spec(
        settings, ensure_image(settings, allow_build=allow_build), published_gateway(settings)
    )
    if existing is not None:
        engine.call(
            "remove outdated proxy container", docker.container.remove, existing, force=True
        )
    _ensure_network(settings.network, created)
    _ensure_volume(settings.cache_volume, created)
    _run(spec, created, requester.profile)
    return "recreated with new settings" if existing is not None else "created"


def _check_replaceable(existing: Container, settings: ProxySettings, requester: Requester) -> None:
    """A build may update its own profile's proxy, never one another profile set up."""
    labels = _labels(existing)
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


def published_gateway(settings: ProxySettings) -> str | None:
    """The bridge gateway address the managed proxy is also published on, if any."""
    return bridge_gateway() if settings.bridge and not settings.url else None


def ensure(
    settings: ProxySettings,
    *,
    allow_build: bool = True,
    requester: Requester | None = None,
) -> ProxyStatus:
    """Find, start or create the proxy and wait until it serves an index page."""
    if settings.url:
        found = status(settings)
        if not found.healthy:
            raise ProxyUnavailable(
                f"external proxy {redact(settings.url)} does not serve: {found.reason}"
            )
        return found
    created = _Created()
    with _lock(settings.name):
        try:
            action = _reconcile(
                settings, created, requester or Requester(), allow_build=allow_build
            )
            # A proxy that was already running answers at once or is hung: don't wait long.
            patience = RUNNING_PATIENCE if action == "found running" else settings.startup_timeout
            ok, reason = wait_ready(settings.host_url, settings.health_project, patience)
            if not ok:
                raise ProxyUnavailable(
                    f"proxy '{settings.name}' did not become ready in "
                    f"{patience:g} s: {reason} (see `orchestrate proxy logs`)"
                )
            container = _find(settings.name)
        except BaseException:
            created.rollback()
            raise
    log.info("proxy ready", name=settings.name, action=action, url=settings.host_url)
    if container is None:
        raise ProxyUnavailable(f"proxy '{settings.name}' disappeared while starting")
    return _status_of(container, settings, healthy=True, reason=reason)


def down(settings: ProxySettings, *, purge: bool = False) -> list[str]:
    """Stop and remove the proxy; with purge, its cache volume and network too."""
    docker = engine.client()
    done: list[str] = []
    with _lock(settings.name):
        container = _find(settings.name)
        if container is not None:
            engine.call("remove proxy container", docker.container.remove, container, force=True)
            done.append(f"removed container {settings.name}")
        if purge:
            done += _purge(settings)
    return done


def _purge(settings: ProxySettings) -> list[str]:
    docker = engine.client()
    done = []
    if engine.call("look up volume", docker.volume.exists, settings.cache_volume):
        volume = engine.call("inspect volume", docker.volume.inspect, settings.cache_volume)
        if (volume.labels or {}).get(OWNER_LABEL) == OWNER:
            engine.call("remove cache volume", docker.volume.remove, volume)
            done.append(f"removed volume {settings.cache_volume}")
    if engine.call("look up network", docker.network.exists, settings.network):
        network = engine.call("inspect network", docker.network.inspect, settings.network)
        if (network.labels or {}).get(OWNER_LABEL) == OWNER and not network.containers:
            engine.call("remove network", docker.network.remove, network)
            done.append(f"removed network {settings.network}")
    return done


def logs(settings: ProxySettings, *, tail: int | None = None) -> str:
    container = _find(settings.name)
    if container is None:
        raise ProxyUnavailable(f"no proxy container named '{settings.name}'")
    docker = engine.client()
    output = engine.call("read proxy logs", docker.container.logs, container, tail=tail)
    return str(output)
