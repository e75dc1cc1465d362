"""What planning knows about the world, gathered before planning by ``host`` and ``builder``.

Facts are frozen data. Planning reads them and nothing else: no file, no process, no
network. A fact that could not be checked says so (``checked=False``), and the plan
then says what it assumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ProxyFacts:
    """What the planner needs to know about the proxy."""

    healthy: bool
    reason: str
    address: str | None = None  # the container's IP on its network, for container builders
    offline: str | None = None  # why the upstream is taken to be down, when it is


@dataclass(frozen=True)
class BuilderFacts:
    """What the buildx builder can do, detected through buildx itself (see ``builder``)."""

    name: str = "default"
    driver: str = "docker"
    buildx_version: str = ""
    buildkit_version: str = ""
    heredocs: bool = False  # RUN <<EOF without a syntax line (dockerfile 1.4, BuildKit 0.10)
    mount_variables: bool = False  # ${VAR} in --mount options (dockerfile 1.3)
    secret_env: bool = False  # --mount=type=secret,env=NAME (dockerfile 1.10)
    bake_network: bool = False  # bake's `network` attribute and --allow (buildx 0.17)
    bake_fs_entitlements: bool = False  # bake asks --allow fs.read=PATH (buildx 0.19/0.20)
    checked: bool = True  # False: the engine could not be asked; the values are assumed

    @property
    def label(self) -> str:
        versions = f"buildx {self.buildx_version or '?'}, BuildKit {self.buildkit_version or '?'}"
        return f"{self.name} ({self.driver} driver; {versions})"


@dataclass(frozen=True)
class HostFacts:
    """What the planner needs to know about the machine."""

    uid: int = 0
    gid: int = 0
    user_name: str = "root"
    ssh_auth_sock: str | None = None
    env_names: frozenset[str] = frozenset()
    host_ca_bundle: Path | None = None  # the host's CA bundle, when it has one
    builder: BuilderFacts = field(default_factory=BuilderFacts)
    proxy: ProxyFacts | None = None
    bridge_gateway: str | None = None
    render_dir: Path = Path("/nonexistent")
    fresh_token: str = "0"
    # Files of the build context that wiring reads (uv.lock...), by path relative to it.
    context_files: Mapping[str, str] = field(default_factory=dict)
