"""Planning: a resolved profile plus facts about the host become one frozen plan.

Nothing here touches the engine, the network or the file system beyond what the facts
already hold, so every decision can be unit-tested and shown by ``--dry-run`` exactly as
it will be carried out. Each step returns the arguments it adds and the decisions behind
them, with a reason a person can check.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.profiles import ResolvedProfile

PROFILE_LABEL = "io.orchestrator.profile"


@dataclass(frozen=True)
class Decision:
    """One choice the planner made, and why, for people reading ``--dry-run``."""

    topic: str
    choice: str
    reason: str


@dataclass(frozen=True)
class HostFacts:
    """What the planner needs to know about the machine, gathered before planning."""

    uid: int = 0
    gid: int = 0
    user_name: str = "root"


@dataclass(frozen=True)
class BuildPlan:
    """Everything `orchestrate build` will do, as data."""

    profile: str
    sources: tuple[Path, ...]
    argv: tuple[str, ...]
    context: Path
    dockerfile: Path
    tags: tuple[str, ...]
    decisions: tuple[Decision, ...] = field(default=())

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "sources": [str(s) for s in self.sources],
            "context": str(self.context),
            "dockerfile": str(self.dockerfile),
            "tags": list(self.tags),
            "decisions": [asdict(d) for d in self.decisions],
            "argv": list(self.argv),
            "command": self.command_line,
        }


@dataclass
class _Draft:
    args: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def decide(self, topic: str, choice: str, reason: str) -> None:
        self.decisions.append(Decision(topic, choice, reason))


def plan_build(resolved: ResolvedProfile, facts: HostFacts) -> BuildPlan:
    """Turn a profile and host facts into the exact `docker buildx build` to run."""
    profile = resolved.profile
    draft = _Draft()
    _plan_source(draft, resolved)
    _plan_args_and_labels(draft, resolved)
    _plan_output(draft, resolved)
    argv = ("docker", "buildx", "build", *draft.args, str(profile.context))
    return BuildPlan(
        profile=resolved.name,
        sources=resolved.sources,
        argv=argv,
        context=profile.context,
        dockerfile=profile.dockerfile_path,
        tags=profile.tags,
        decisions=tuple(draft.decisions),
    )


def _plan_source(draft: _Draft, resolved: ResolvedProfile) -> None:
    profile = resolved.profile
    draft.args += ["--file", str(profile.dockerfile_path)]
    if profile.target:
        draft.args += ["--target", profile.target]
    if profile.builder:
        draft.args += ["--builder", profile.builder]
        draft.decide("builder", profile.builder, "named by the profile")
    else:
        draft.decide("builder", "current", "the profile names none; buildx uses its current one")
    if profile.progress != "auto":
        draft.args += ["--progress", profile.progress]


def _plan_args_and_labels(draft: _Draft, resolved: ResolvedProfile) -> None:
    profile = resolved.profile
    for key, value in profile.build_args.items():
        draft.args += ["--build-arg", f"{key}={value}"]
    labels = {**profile.labels, PROFILE_LABEL: resolved.name}
    for key, value in labels.items():
        draft.args += ["--label", f"{key}={value}"]


def _plan_output(draft: _Draft, resolved: ResolvedProfile) -> None:
    profile = resolved.profile
    for tag in profile.tags:
        draft.args += ["--tag", tag]
    if profile.platforms:
        draft.args += ["--platform", ",".join(profile.platforms)]
    if len(profile.platforms) > 1:
        draft.decide(
            "output",
            "build cache only",
            "a multi-platform image cannot be loaded into the engine's image store",
        )
        return
    draft.args.append("--load")
    draft.decide("output", "load into the engine", "so `docker run` and `docker image inspect` see it")


def render_text(plan: BuildPlan) -> str:
    """The human-readable plan printed by ``--dry-run``."""
    lines = [
        f"profile:    {plan.profile} ({', '.join(str(s) for s in plan.sources)})",
        f"context:    {plan.context}",
        f"dockerfile: {plan.dockerfile}",
        f"tags:       {', '.join(plan.tags) or '(none)'}",
        "decisions:",
        *(f"  - {d.topic}: {d.choice} ({d.reason})" for d in plan.decisions),
        "command:",
        f"  {plan.command_line}",
    ]
    return "\n".join(lines)
