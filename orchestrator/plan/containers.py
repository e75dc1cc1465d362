"""A container's wiring and a run's plan as data, and the facts they are planned from.

``Wiring`` is what any container of a profile gets, whoever starts it: the network where
the proxy's name resolves, the installers' variables, the mounts, the user, the secrets.
``orchestrate env`` prints it; ``RunPlan`` adds what `orchestrate run` itself decides (the
image, the container's name, the terminal, the private copies of the secrets) and the
exact argv. Both are frozen: planning decides, execution only carries out.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.plan.model import CACHE_ROOT, Decision

RunMode = Literal["proxy", "offline", "cache-volume", "off"]

CACHE_TARGET = CACHE_ROOT  # where the fallback's cache volume is mounted, as builds' mounts
SSH_TARGET = "/run/orchestrator/ssh-agent.sock"
SECRETS_DIR = "/run/secrets"
RUN_LABEL = "io.orchestrator.run"  # on run containers: the profile they run
CACHE_LABEL = "io.orchestrator.run-cache"  # on the fallback's volume: the uid:gid owning it


@dataclass(frozen=True)
class Mount:
    """One ``--mount``: a host path (bind) or a named volume."""

    kind: Literal["bind", "volume"]
    source: str
    target: str
    read_only: bool = True

    def option(self) -> str:
        """The value of ``docker run --mount``, CSV-quoted as Docker parses it."""
        fields = [f"type={self.kind}", f"source={self.source}", f"target={self.target}"]
        if self.read_only:
            fields.append("readonly")
        return ",".join(_csv_field(item) for item in fields)


def _csv_field(item: str) -> str:
    if any(c in item for c in ',"\n'):
        return '"' + item.replace('"', '""') + '"'
    return item


@dataclass(frozen=True)
class Secret:
    """A profile secret, as a read-only file at ``target``; its value is never an
    environment variable, which `docker inspect` would show."""

    id: str
    target: str
    file: Path | None = None  # where the profile keeps it
    variable: str | None = None  # or the host variable that holds it

    @property
    def origin(self) -> str:
        return f"file {self.file}" if self.file is not None else f"variable {self.variable}"


@dataclass(frozen=True)
class SecretCopy:
    """A secret written to a private file for one run and removed after it."""

    secret: Secret
    path: Path
    mode: int
    owner: tuple[int, int] | None  # chown to this uid:gid; None leaves the invoking user's


@dataclass(frozen=True)
class CacheVolume:
    """The fallback's named volume for pip's and uv's caches, owned by the run's user."""

    name: str
    uid: int
    gid: int
    image: str | None  # the image whose one-off root container chowns it when created


@dataclass(frozen=True)
class Wiring:
    """What a container of the profile gets, whoever starts it."""

    profile: str
    mode: RunMode
    decisions: tuple[Decision, ...]
    network: str | None = None  # None: the engine's default network
    index_url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    user: str | None = None  # uid:gid; None keeps the image's USER
    secrets: tuple[Secret, ...] = ()
    cache: CacheVolume | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def mode_reason(self) -> str:
        return next((d.reason for d in self.decisions if d.topic == "mode"), "")


@dataclass(frozen=True)
class RunPlan:
    """Everything `orchestrate run` will do, as data."""

    wiring: Wiring
    image: str
    name: str
    command: tuple[str, ...]
    argv: tuple[str, ...]
    copies: tuple[SecretCopy, ...] = ()
    secret_dir: Path | None = None  # private directory of the copies, made and removed
    remove: bool = True
    attached: bool = False  # a terminal on stdin: the command's stderr is left as it is
    decisions: tuple[Decision, ...] = ()  # the run's own, after the wiring's
    # Variables given to the docker client alone (credentials): the argv names them only.
    process_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def all_decisions(self) -> tuple[Decision, ...]:
        return (*self.wiring.decisions, *self.decisions)


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that change a run's plan."""

    image: str | None = None
    no_proxy: bool = False
    docker_opts: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    keep: bool = False
