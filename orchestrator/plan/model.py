"""A build plan as data: every decision with its reason, the exact argv, the files to write.

A plan is the whole truth about a build before it runs: ``--dry-run`` prints it, tests
assert on it, and execution carries it out without deciding anything more.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Mode = Literal["proxy", "offline", "cache-mount", "off"]

PROFILE_LABEL = "io.orchestrator.profile"
ENV_SECRET = "orchestrator-env"
CA_SECRET = "orchestrator-ca"
PIP_CONF_SECRET = "orchestrator-pip-conf"
UV_TOML_SECRET = "orchestrator-uv-toml"
ENV_VARIABLE = "ORCHESTRATE_BUILD_ENV"
PIP_CONF_VARIABLE = "ORCHESTRATE_PIP_CONF"
UV_TOML_VARIABLE = "ORCHESTRATE_UV_TOML"
FRESH_ARG = "ORCHESTRATE_FRESH"
CACHE_ROOT = "/var/cache/orchestrator"  # where orchestrator mounts installers' caches
PIP_LOCK_SECRET = "orchestrator-pip-lock"  # the sitecustomize that makes old pips lock
PIP_LOCK_TARGET = "/opt/orchestrator/python"  # the directory it is put in, on PYTHONPATH
PIP_LOCK_VARIABLE = "ORCHESTRATE_PIP_LOCK"
PIP_BUSY_VARIABLE = "ORCHESTRATE_PIP_BUSY"
EXPOSURE = "proxy exposure"  # the decision on a proxy published beyond loopback, warned of


@dataclass(frozen=True)
class Decision:
    """One choice the planner made, and why, for people reading ``--dry-run``."""

    topic: str
    choice: str
    reason: str


@dataclass(frozen=True)
class Bypass:
    """A RUN step that asks an index other than the proxy, and why: a build through the
    proxy says so on its own line, not only in ``--dry-run``."""

    line: int
    what: str
    why: str

    def text(self) -> str:
        return f"RUN line {self.line}: {self.what} ({self.why})"


@dataclass(frozen=True)
class BuildOptions:
    """Command-line choices that change a plan."""

    no_proxy: bool = False
    fresh: bool = False
    bake: bool = False  # planning one target of `docker buildx bake`


@dataclass(frozen=True)
class BuildPlan:
    """Everything `orchestrate build` will do, as data."""

    profile: str
    sources: tuple[Path, ...]
    mode: Mode
    argv: tuple[str, ...]
    context: Path
    dockerfile: Path
    tags: tuple[str, ...]
    decisions: tuple[Decision, ...]
    index_url: str | None = None
    build_env: Mapping[str, str] = field(default_factory=dict)
    rendered_path: Path | None = None
    rendered_text: str | None = None
    prepare: tuple[tuple[str, ...], ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None  # --network, when the plan sets one
    # Process environment for the build command alone: what feeds env-sourced secrets.
    secret_env: Mapping[str, str] = field(default_factory=dict)
    # Further files the build reads (rewritten lock files...), by path.
    files: Mapping[Path, str] = field(default_factory=dict)
    # The managed proxy's URL from this machine (proxy and offline modes): where the build's
    # failure is explained from, by what the proxy's front served meanwhile.
    proxy_front: str | None = None
    proxy_name: str = ""  # the managed proxy's name: how the decision found it is kept by it
    outage: str | None = None  # offline mode: why the upstream was taken to be down
    # The index URL that needs credentials (proxy.credentials), and where they are kept
    # (env:NAME, file:PATH): read and put into the settings secrets when the build runs,
    # so that no plan, remembered or printed, holds them.
    credentials_url: str | None = None
    credentials_source: str | None = None
    bypasses: tuple[Bypass, ...] = ()  # through the proxy: the steps that go elsewhere

    def bake_target(self) -> dict[str, Any]:
        """The same wiring as a bake target override (bake's JSON keys)."""
        target: dict[str, Any] = {
            "dockerfile": str(self.rendered_path or self.dockerfile),
            "args": dict(self.build_args),
            "labels": dict(self.labels),
            "output": ["type=docker"],
        }
        if self.secrets:
            target["secret"] = list(self.secrets)
        if self.ssh:
            target["ssh"] = list(self.ssh)
        return target

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def mode_reason(self) -> str:
        return next((d.reason for d in self.decisions if d.topic == "mode"), "")

    def read_paths(self) -> tuple[str, ...]:
        """Host files the build reads besides its context: what bake must be allowed."""
        paths = [str(self.rendered_path)] if self.rendered_path else []
        paths += [str(path) for path in self.files]
        for spec in (*self.secrets, *self.ssh):
            for item in spec.split(","):
                key, _, value = item.partition("=")
                if key == "src" or (spec in self.ssh and "=" in spec and key != "id"):
                    paths.append(value)
        return tuple(dict.fromkeys(paths))
