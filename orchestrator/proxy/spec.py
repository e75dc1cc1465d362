"""The proxy planned as data: two containers, what they run, publish, mount and are told.

The proxy is proxpi behind an nginx front (``front``): the front takes the configured
name, publishes the port and keeps the stale-serving cache; proxpi runs beside it as
``<name>-backend`` and is reached only through it. Everything here is derived from the
settings and facts alone, so it can be unit-tested and fingerprinted: the digest goes
into a label on both containers (and into the front's ``/_orchestrator/id``), and a
changed setting recreates them while both cache volumes stay.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.profiles import ProxySettings
from orchestrator.proxy.front import (
    CONF_VARIABLE,
    FRONT_DIR,
    LISTEN_PORT,
    SYSTEM_CERTIFICATES,
    FrontConfig,
    nginx_conf,
    start_command,
)

OWNER_LABEL = "io.orchestrator.owner"
OWNER = "orchestrator"
CONFIG_LABEL = "io.orchestrator.proxy-config"
PROFILE_LABEL = "io.orchestrator.proxy-profile"  # the profile whose settings it runs with
ROLE_LABEL = "io.orchestrator.proxy-role"  # front or backend
PROXPI_VERSION = "1.4.0a1"
LOCAL_IMAGE = f"orchestrator/proxpi:{PROXPI_VERSION}"
FRONT_VERSION = "1"
LOCAL_FRONT_IMAGE = f"orchestrator/proxy-front:{FRONT_VERSION}"
CONTAINER_PORT = LISTEN_PORT
BACKEND_PORT = 5000
CACHE_DIR = "/var/cache/proxpi"
CA_TARGET = "/etc/orchestrator/ca-bundle.crt"


@dataclass(frozen=True)
class ContainerSpec:
    """How one container should be run: pure data, derived from settings alone."""

    name: str
    image: str
    network: str
    publish: tuple[tuple[str, int], ...] = ()
    volumes: tuple[tuple[str, str, str], ...] = ()
    envs: dict[str, str] = field(default_factory=dict)
    configured_image: str = ""
    command: tuple[str, ...] = ()
    role: str = "backend"

    def digest(self) -> str:
        """Fingerprint of the settings; the image they resolved to is left out, so a
        proxy built locally matches the same settings as one that was pulled."""
        data = asdict(self)
        del data["image"]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ProxySpec:
    """Both containers of the proxy, and the digest that names their settings."""

    front: ContainerSpec
    backend: ContainerSpec
    digest: str

    @property
    def containers(self) -> tuple[ContainerSpec, ContainerSpec]:
        """In the order they are created: the front needs the backend's name to resolve."""
        return (self.backend, self.front)

    def labels(self, spec: ContainerSpec, profile: str = "") -> dict[str, str]:
        return {
            OWNER_LABEL: OWNER,
            CONFIG_LABEL: self.digest,
            PROFILE_LABEL: profile,
            ROLE_LABEL: spec.role,
        }


def backend_name(settings: ProxySettings) -> str:
    return f"{settings.name}-backend"


def front_volume(settings: ProxySettings) -> str:
    return f"{settings.cache_volume}-front"


def streams_files(settings: ProxySettings) -> bool:
    """Whether the front fetches files itself (streaming them) rather than proxpi: not when
    the upstream needs credentials, which proxpi would put in the file URLs it redirects
    to, and which nginx can neither take in a URL nor send otherwise."""
    urls = (settings.index, *settings.extra_indexes)
    return settings.credentials is None and not any("@" in urlsplit(url).netloc for url in urls)


def proxpi_env(
    settings: ProxySettings, *, with_ca: bool, index: str | None = None
) -> dict[str, str]:
    """proxpi's settings that matter; its defaults lose the cache and redirect cold misses.
    ``index``: the upstream as proxpi asks it (with the profile's credentials in it).
    Where the front fetches files (``streams_files``), proxpi keeps none: size 0 makes it
    answer each file with a redirect to the upstream's URL, at once."""
    cache_size = settings.cache_size if not streams_files(settings) else 0
    env = {
        "PROXPI_INDEX_URL": index or settings.index,
        "PROXPI_INDEX_TTL": str(settings.index_ttl),
        "PROXPI_CACHE_DIR": CACHE_DIR,
        "PROXPI_CACHE_SIZE": str(cache_size),
        "PROXPI_DOWNLOAD_TIMEOUT": str(settings.download_timeout),
        "PROXPI_CONNECT_TIMEOUT": "10",
        "PROXPI_READ_TIMEOUT": "60",
        "PYTHONUNBUFFERED": "1",  # its access log reaches `orchestrate proxy logs` at once
    }
    if settings.extra_indexes:
        env["PROXPI_EXTRA_INDEX_URLS"] = ",".join(settings.extra_indexes)
        env["PROXPI_EXTRA_INDEX_TTLS"] = ",".join(
            str(settings.extra_index_ttl) for _ in settings.extra_indexes
        )
    if with_ca:
        env["REQUESTS_CA_BUNDLE"] = CA_TARGET
    return env


def proxy_spec(
    settings: ProxySettings,
    *,
    image: str | None = None,
    front_image: str | None = None,
    host_ca_bundle: Path | None = None,
    bridge_gateway: str | None = None,
    index: str | None = None,
) -> ProxySpec:
    """Both containers for these settings; images default to the configured ones."""
    ca = settings.ca_bundle_path(host_ca_bundle)
    # Both containers fetch from the upstream: proxpi its pages, the front its files.
    ca_mounts = ((str(ca), CA_TARGET, "ro"),) if ca is not None else ()
    backend = ContainerSpec(
        name=backend_name(settings),
        image=image or settings.image,
        network=settings.network,
        volumes=((settings.cache_volume, CACHE_DIR, "rw"), *ca_mounts),
        envs=proxpi_env(settings, with_ca=ca is not None, index=index),
        configured_image=settings.image,
        role="backend",
    )
    publish = [(f"{settings.bind}:{settings.port}", CONTAINER_PORT)]
    if settings.bridge and bridge_gateway:
        publish.append((f"{bridge_gateway}:{settings.port}", CONTAINER_PORT))
    front = ContainerSpec(
        name=settings.name,
        image=front_image or settings.front_image,
        network=settings.network,
        publish=tuple(publish),
        volumes=((front_volume(settings), FRONT_DIR, "rw"), *ca_mounts),
        configured_image=settings.front_image,
        command=tuple(start_command()),
        role="front",
    )
    trusted = CA_TARGET if ca is not None else SYSTEM_CERTIFICATES
    digest = spec_digest(backend, front, nginx_conf(_front_config(settings, "", trusted)))
    conf = nginx_conf(_front_config(settings, digest, trusted))
    front = replace(front, envs={CONF_VARIABLE: conf})
    return ProxySpec(front=front, backend=backend, digest=digest)


def spec_digest(backend: ContainerSpec, front: ContainerSpec, conf: str) -> str:
    """What names the proxy's settings: both containers and the nginx configuration's
    text, which is part of the settings: a new orchestrator that writes it differently
    (a new template) recreates the front."""
    blob = json.dumps([backend.digest(), front.digest(), conf])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _front_config(settings: ProxySettings, digest: str, trusted: str) -> FrontConfig:
    return FrontConfig(
        backend=backend_name(settings),
        backend_port=BACKEND_PORT,
        cache_bytes=settings.cache_size,
        index_ttl=settings.index_ttl,
        download_timeout=settings.download_timeout,
        digest=digest,
        name=settings.name,
        streams=streams_files(settings),
        trusted_certificates=trusted,
    )
