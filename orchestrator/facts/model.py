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
    digest: str | None = None  # the settings a managed proxy runs with (its identity)


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
    # A container builder's network (its `--driver-opt network=`): "host", a network's
    # name, or None (its own, or not a container builder)
    network: str | None = None
    checked: bool = True  # False: the engine could not be asked; the values are assumed

    @property
    def label(self) -> str:
        versions = f"buildx {self.buildx_version or '?'}, BuildKit {self.buildkit_version or '?'}"
        return f"{self.name} ({self.driver} driver; {versions})"


@dataclass(frozen=True)
class ImageFacts:
    """What the engine says about an image: a run's (asked only when the fallback may need
    it) or a build's base image (``facts/image.py``). ``present``: the engine showed it."""

    present: bool
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    id: str = ""  # the digest of its configuration: a changed image has another


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
    # The images the Dockerfile's stages start from, by reference as FROM names them once
    # expanded: their ENV, USER and WORKDIR are where a RUN step starts. An image missing
    # here was not asked about, and the plan keeps to what the Dockerfile says.
    base_images: Mapping[str, ImageFacts] = field(default_factory=dict)
    # The sitecustomize that makes a pip older than 25.3 lock a shared cache (builds get
    # it as a secret; ``paths.pip_lock_dir``).
    pip_lock_file: Path = Path("/nonexistent/sitecustomize.py")


@dataclass(frozen=True)
class TerminalFacts:
    """What orchestrate's own standard streams are, which decides ``-i`` and ``-t``."""

    stdin_tty: bool = False
    stdout_tty: bool = False
    stdin_readable: bool = False  # a pipe or a file: something for the container to read


@dataclass(frozen=True)
class RunFacts:
    """Everything planning a run or an env needs, gathered before planning."""

    host: HostFacts
    terminal: TerminalFacts = field(default_factory=TerminalFacts)
    image: ImageFacts | None = None  # None: not asked (the proxy serves)
    network_exists: bool | None = None  # the proxy's network; None: not asked
    secret_dir: Path = Path("/nonexistent")
    token: str = "0"  # makes the container's name unique
    pip_lock_dir: Path = Path("/nonexistent")  # host directory of the pip-lock sitecustomize
    # Whether the engine sees this machine's files (bind mounts of paths here); None: not
    # known (not asked, or nothing could tell), and taken as shared, as before it was asked.
    files_shared: bool | None = None


@dataclass(frozen=True)
class ComposeService:
    """One service an override fragment is for, and what it already says about networks."""

    name: str
    networks: bool = False  # it lists networks of its own (so it is not on default alone)
    network_mode: str | None = None
    user: str | None = None  # its own user:, which an override leaves alone
