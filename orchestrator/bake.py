"""`orchestrate bake`: the same wiring as `orchestrate build`, for every target of a bake file.

Bake reads its own files; we add one more, an override in bake's JSON format, with each
selected target's rendered Dockerfile, build args, secrets and ssh. The override can be
exported, so CI systems that call bake themselves get the same result without us.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import build as builds
from orchestrator import dockerfile, engine, proxy
from orchestrator.errors import BadInput, EngineUnavailable
from orchestrator.host import gather_facts
from orchestrator.log import get_logger
from orchestrator.plan import (
    ENV_SECRET,
    ENV_VARIABLE,
    BuildOptions,
    BuildPlan,
    HostFacts,
    plan_build,
)
from orchestrator.profiles import ResolvedProfile

log = get_logger(__name__)


@dataclass(frozen=True)
class BakePlan:
    """One plan per selected target, and the override that carries their wiring."""

    files: tuple[Path, ...]
    targets: tuple[str, ...]
    plans: Mapping[str, BuildPlan]

    @property
    def secret_env(self) -> dict[str, str]:
        envs = {json.dumps(p.secret_env, sort_keys=True) for p in self.plans.values()}
        if len(envs) > 1:
            raise BadInput("the selected targets need different build settings; bake them apart")
        return next(iter(self.plans.values())).secret_env if self.plans else {}

    def override(self, settings_file: Path | None = None) -> dict[str, Any]:
        """Bake's JSON override; with ``settings_file``, settings come from that file."""
        targets = {}
        for name, plan in self.plans.items():
            target = plan.bake_target()
            if settings_file is not None and "secret" in target:
                target["secret"] = [
                    f"id={ENV_SECRET},src={settings_file}"
                    if s.startswith(f"id={ENV_SECRET},")
                    else s
                    for s in target["secret"]
                ]
            targets[name] = target
        return {"target": targets}

    def argv(self, override_file: Path) -> tuple[str, ...]:
        files = [arg for f in (*self.files, override_file) for arg in ("--file", str(f))]
        return ("docker", "buildx", "bake", *files, *self.targets)


def read_definition(files: Sequence[Path], targets: Sequence[str]) -> dict[str, Any]:
    """Bake's own view of the files: every selected target, groups expanded."""
    for path in files:
        if not path.is_file():
            raise BadInput(f"{path}: bake file not found")
    docker = engine.client()
    try:
        definition = engine.call(
            "read the bake definition",
            docker.buildx.bake,
            list(targets),
            files=list(files),
            print=True,
        )
    except EngineUnavailable as exc:
        raise BadInput(
            f"bake could not read {', '.join(map(str, files)) or 'the default files'}: "
            f"{exc.message}"
        ) from None
    if not isinstance(definition, dict):
        raise BadInput("bake printed no definition")
    return definition


def target_profile(
    resolved: ResolvedProfile, name: str, target: Mapping[str, Any]
) -> ResolvedProfile:
    """The profile's wiring applied to one bake target's own context, Dockerfile and args."""
    context = Path(str(target.get("context", "."))).resolve()
    dockerfile = str(target.get("dockerfile", "Dockerfile"))
    profile = resolved.profile.model_copy(
        update={
            "context": context,
            "dockerfile": dockerfile,
            "target": target.get("target"),
            "tags": tuple(target.get("tags", ())),
            "build_args": {**dict(target.get("args", {})), **resolved.profile.build_args},
            "labels": {**dict(target.get("labels", {})), **resolved.profile.labels},
        }
    )
    if not profile.dockerfile_path.is_file():
        raise BadInput(f"bake target '{name}': Dockerfile {profile.dockerfile_path} does not exist")
    return ResolvedProfile(resolved.name, profile, resolved.sources)


def plan_bake(
    resolved: ResolvedProfile,
    definition: Mapping[str, Any],
    *,
    files: Sequence[Path],
    targets: Sequence[str],
    facts: HostFacts,
    options: BuildOptions,
) -> BakePlan:
    """One build plan per target of the definition, planned as bake will run it.

    No engine call: the definition and the facts were gathered before.
    """
    bake_options = BuildOptions(no_proxy=options.no_proxy, fresh=options.fresh, bake=True)
    plans = {}
    for name, target in dict(definition.get("target", {})).items():
        per_target = target_profile(resolved, name, target)
        parsed = dockerfile.parse(per_target.profile.dockerfile_path)
        plans[name] = plan_build(per_target, parsed, facts, bake_options)
    if not plans:
        raise BadInput(f"no bake targets selected from {', '.join(map(str, files))}")
    return BakePlan(tuple(files), tuple(targets), plans)


def prepare(
    resolved: ResolvedProfile,
    files: Sequence[Path],
    targets: Sequence[str],
    options: BuildOptions,
    *,
    dry_run: bool,
) -> BakePlan:
    definition = read_definition(files, targets)
    facts = gather_facts(
        builder=resolved.profile.builder,
        proxy=builds.proxy_facts(resolved, options, dry_run=dry_run),
        render_dir=builds.RENDER_DIR,
        bridge_gateway=_bridge_gateway(resolved),
    )
    return plan_bake(
        resolved, definition, files=files, targets=targets, facts=facts, options=options
    )


def _bridge_gateway(resolved: ResolvedProfile) -> str | None:
    try:
        return proxy.published_gateway(resolved.profile.proxy)
    except EngineUnavailable:
        return None


def export(plan: BakePlan) -> dict[str, Any]:
    """Write rendered Dockerfiles and the settings file; return the override to print."""
    for target_plan in plan.plans.values():
        builds.keep_rendered(target_plan)
    settings = plan.secret_env.get(ENV_VARIABLE)
    if settings is None:
        return plan.override()
    digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
    path = builds.RENDER_DIR / f"bake-settings-{digest}.env"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(settings)
    return plan.override(settings_file=path)


def execute(plan: BakePlan) -> None:
    """Run bake with the override in a file of its own, removed afterwards."""
    for target_plan in plan.plans.values():
        builds.keep_rendered(target_plan)
    text = json.dumps(plan.override(), indent=2)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    override = builds.RENDER_DIR / f"bake-override-{digest}.{os.getpid()}.json"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(text, encoding="utf-8")
    try:
        argv = plan.argv(override)
        modes = {name: target.mode for name, target in plan.plans.items()}
        log.info("bake", modes=modes, command=shlex.join(argv))
        engine.run_streaming(argv, env=plan.secret_env)
    finally:
        override.unlink(missing_ok=True)
