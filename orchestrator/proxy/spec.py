"""The proxy container planned as data: what it runs, publishes, mounts and is told.

Everything here is derived from the settings and facts alone, so it can be unit-tested
and fingerprinted: the digest goes into a label, and a changed setting recreates the
container while its cache volume stays.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestrator.profiles import ProxySettings

OWNER_LABEL = "io.orchestrator.owner"
OWNER = "orchestrator"
CONFIG_LABEL = "io.orchestrator.proxy-config"
PROFILE_LABEL = "io.orchestrator.proxy-profile"  # the profile whose settings it runs with
PROXPI_VERSION = "1.3.1"
LOCAL_IMAGE = f"orchestrator/proxpi:{PROXPI_VERSION}"
CONTAINER_PORT = 5000
CACHE_DIR = "/var/cache/proxpi"
CA_TARGET = "/etc/orchestrator/ca-bundle.crt"


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
    settings: ProxySettings,
    image: str,
    *,
    host_ca_bundle: Path | None = None,
    bridge_gateway: str | None = None,
) -> ContainerSpec:
    ca = settings.ca_bundle_path(host_ca_bundle)
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
