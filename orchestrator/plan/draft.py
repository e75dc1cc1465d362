"""The plan while it is being made: what each planning step reads and adds to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.dockerfile import ParsedDockerfile
from orchestrator.facts.model import HostFacts
from orchestrator.plan.model import BuildOptions, Bypass, Decision, Mode
from orchestrator.profiles import BuildUser, Profile, ResolvedProfile
from orchestrator.urls import redact


@dataclass
class Draft:
    """Mutable while planning; ``build._finish`` freezes it into a ``BuildPlan``."""

    resolved: ResolvedProfile
    parsed: ParsedDockerfile
    facts: HostFacts
    options: BuildOptions
    args: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # settings every wired step loads
    config_files: dict[str, str] = field(default_factory=dict)  # pip.conf, uv.toml texts
    used_secrets: set[str] = field(default_factory=set)  # settings secrets the rendering mounts
    files: dict[Path, str] = field(default_factory=dict)  # more files the build reads
    build_user: BuildUser | None = None
    ca_bundle: Path | None = None
    secrets: list[str] = field(default_factory=list)
    ssh: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    mode: Mode = "off"
    network: str | None = None
    index_url: str | None = None
    prepare: list[tuple[str, ...]] = field(default_factory=list)
    bypasses: list[Bypass] = field(default_factory=list)

    @property
    def profile(self) -> Profile:
        return self.resolved.profile

    @property
    def wired(self) -> bool:
        """Whether RUN steps are wired at all: in every mode but ``off``."""
        return self.mode != "off"

    def decide(self, topic: str, choice: str, reason: str) -> None:
        self.decisions.append(Decision(topic, redact(choice), redact(reason)))

    def bypass(self, line: int, choice: str, reason: str, short: str) -> None:
        """A step left on another index: a decision in every mode, and through the proxy
        also a bypass that the build itself reports (``short`` says why, briefly)."""
        self.decide(f"RUN line {line}", choice, reason)
        if self.mode in ("proxy", "offline"):
            self.bypasses.append(Bypass(line, redact(choice), short))

    def secret(self, spec: str) -> None:
        self.secrets.append(spec)
        self.args += ["--secret", spec]
