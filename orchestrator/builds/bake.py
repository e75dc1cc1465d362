"""`orchestrate bake`: the same wiring as `orchestrate build`, for every target of a bake file.

Bake reads its own files; we add an override in bake's JSON format with each selected
target's rendered Dockerfile, build args, secrets and ssh. Host networking reaches bake
targets through the override's `network` attribute on buildx 0.17 and newer (with the
`network.host` entitlement); before 0.17 bake had no such attribute, and the only way to
set a target's network was a compose file, which bake merges with the HCL target of the
same name (docs/design.md). Newer buildx also asks to be allowed to read files outside
the working directory: orchestrator grants exactly the files it rendered and the secret
and ssh paths the profile names, no more.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator import dockerfile, paths
from orchestrator.builds import execute as execution
from orchestrator.engine import client as engine
from orchestrator.engine.api import current as current_engine
from orchestrator.errors import BadInput, BuildFailed, HandledError
from orchestrator.facts import builder
from orchestrator.facts.host import check_inputs, gather_facts
from orchestrator.facts.image import base_images
from orchestrator.facts.model import HostFacts, ImageFacts
from orchestrator.log import get_logger
from orchestrator.plan.build import plan_build
from orchestrator.plan.model import BuildOptions, BuildPlan
from orchestrator.profiles import ResolvedProfile
from orchestrator.proxy import state
from orchestrator.proxy.gather import proxy_facts
from orchestrator.report import CacheReport

log = get_logger(__name__)


@dataclass(frozen=True)
class BakePlan:
    """One plan per selected target, and how bake is told about their wiring."""

    files: tuple[Path, ...]
    targets: tuple[str, ...]
    plans: Mapping[str, BuildPlan]
    facts: HostFacts
    builder: str | None = None  # the profile's builder, when it names one
    cwd: Path = field(default_factory=Path.cwd)

    @property
    def secret_env(self) -> dict[str, str]:
        envs = {json.dumps(dict(p.secret_env), sort_keys=True) for p in self.plans.values()}
        if len(envs) > 1:
            raise BadInput("the selected targets need different build settings; bake them apart")
        return execution.settings_env(next(iter(self.plans.values()))) if self.plans else {}

    @property
    def host_network(self) -> bool:
        return any(plan.network == "host" for plan in self.plans.values())

    @property
    def compose_network(self) -> bool:
        """Host networking through a merged compose file: buildx before 0.17."""
        return self.host_network and not self.facts.builder.bake_network

    @property
    def network_route(self) -> str:
        """How bake targets get host networking on this buildx, for the plan to say."""
        if not self.host_network:
            return "default: no target needs host networking"
        if self.facts.builder.bake_network:
            return "host: the override's `network` attribute, allowed with --allow=network.host"
        return (
            "host: a compose file merged by target name (bake before buildx 0.17 has no "
            "`network` attribute; its compose loader sets the target's network)"
        )

    def override(self, settings_files: Mapping[str, Path] | None = None) -> dict[str, Any]:
        """Bake's JSON override; with ``settings_files`` (by variable), settings secrets
        are read from those files instead of the environment."""
        files = settings_files or {}
        targets = {}
        for name, plan in self.plans.items():
            target = plan.bake_target()
            target["secret"] = [_from_file(spec, files) for spec in target.get("secret", [])]
            if not target["secret"]:
                del target["secret"]
            if plan.network == "host" and self.facts.builder.bake_network:
                target["network"] = "host"
            targets[name] = target
        return {"target": targets}

    def compose(self) -> str:
        """A compose file that gives each target host networking (buildx 0.13 to 0.16)."""
        services = {
            name: {"build": {"network": "host"}}
            for name, plan in self.plans.items()
            if plan.network == "host"
        }
        return json.dumps({"services": services}, indent=2)

    def allow(self, extra_reads: Sequence[Path] = ()) -> list[str]:
        """The entitlements bake must be granted: host networking and exactly our files."""
        flags = []
        if self.host_network and self.facts.builder.bake_network:
            flags.append("--allow=network.host")
        if self.facts.builder.bake_fs_entitlements:
            reads = [p for plan in self.plans.values() for p in plan.read_paths()]
            reads += [str(p) for p in extra_reads]
            for path in dict.fromkeys(reads):
                if not _under(Path(path), self.cwd):
                    flags.append(f"--allow=fs.read={path}")
        return flags

    def argv(self, override_files: Sequence[Path], extra_reads: Sequence[Path] = ()) -> list[str]:
        files = [arg for f in (*self.files, *override_files) for arg in ("--file", str(f))]
        chosen = ["--builder", self.builder] if self.builder else []
        return [
            "docker",
            "buildx",
            "bake",
            *chosen,
            *files,
            *self.allow(extra_reads),
            *self.targets,
        ]


def _from_file(spec: str, files: Mapping[str, Path]) -> str:
    """``id=X,env=VAR`` as ``id=X,src=FILE`` when VAR's value was written to FILE."""
    secret_id, _, source = spec.partition(",")
    variable = source.removeprefix("env=")
    return f"{secret_id},src={files[variable]}" if variable in files else spec


def _under(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


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
    except HandledError as exc:
        raise BadInput(
            f"bake could not read {', '.join(map(str, files))}: {exc.message}", detail=exc.detail
        ) from None
    if not isinstance(definition, dict):
        raise BadInput("bake printed no definition")
    return definition


def target_profile(
    resolved: ResolvedProfile, name: str, target: Mapping[str, Any]
) -> ResolvedProfile:
    """The profile's wiring applied to one bake target's own context, Dockerfile and args."""
    context = Path(str(target.get("context", "."))).resolve()
    profile = resolved.profile.model_copy(
        update={
            "context": context,
            "dockerfile": str(target.get("dockerfile", "Dockerfile")),
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
    images: Callable[[Iterable[str | None]], Mapping[str, ImageFacts]] | None = None,
) -> BakePlan:
    """One build plan per target of the definition, planned as bake will run it.
    ``images`` asks the engine about each target's base images (``facts/image.py``);
    without it, none is asked and each plan keeps to what its Dockerfile says."""
    bake_options = BuildOptions(no_proxy=options.no_proxy, fresh=options.fresh, bake=True)
    plans = {}
    for name, target in dict(definition.get("target", {})).items():
        per_target = target_profile(resolved, name, target)
        parsed = dockerfile.parse(per_target.profile.dockerfile_path)
        per_facts = _with_context_files(facts, parsed, per_target.profile.context)
        if images is not None:
            refs = parsed.image_refs(per_target.profile.build_args).values()
            per_facts = replace(per_facts, base_images=images(refs))
        plans[name] = plan_build(per_target, parsed, per_facts, bake_options)
    if not plans:
        raise BadInput(f"no bake targets selected from {', '.join(map(str, files))}")
    return BakePlan(tuple(files), tuple(targets), plans, facts, resolved.profile.builder)


def _with_context_files(
    facts: HostFacts, parsed: dockerfile.ParsedDockerfile, context: Path
) -> HostFacts:
    from orchestrator.facts.host import read_context_files  # noqa: PLC0415

    return replace(facts, context_files=read_context_files(parsed, context))


def prepare(
    resolved: ResolvedProfile,
    files: Sequence[Path],
    targets: Sequence[str],
    options: BuildOptions,
    *,
    dry_run: bool,
) -> BakePlan:
    check_inputs(resolved)
    definition = read_definition(files, targets)
    facts = gather_facts(
        builder=builder.detect(resolved.profile.builder),
        proxy=proxy_facts(resolved, no_proxy=options.no_proxy, dry_run=dry_run),
        render_dir=paths.rendered_dir(),
        bridge_gateway=_bridge_gateway(resolved),
    )
    return plan_bake(
        resolved,
        definition,
        files=files,
        targets=targets,
        facts=facts,
        options=options,
        images=base_images,
    )


def _bridge_gateway(resolved: ResolvedProfile) -> str | None:
    try:
        return state.published_gateway(resolved.profile.proxy)
    except HandledError:
        return None


def _write_overrides(
    plan: BakePlan, settings_files: Mapping[str, Path] | None = None
) -> list[Path]:
    """The override JSON (and compose file, before buildx 0.17), named by content."""
    for target_plan in plan.plans.values():
        execution.write_files(target_plan)
    written = []
    documents = [("json", json.dumps(plan.override(settings_files), indent=2))]
    if plan.compose_network:
        documents.append(("compose.yaml", plan.compose()))  # JSON is YAML; .yaml means compose
    for suffix, text in documents:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        path = paths.rendered_dir() / f"bake-override-{digest}.{suffix}"
        execution.write_file(path, text)
        written.append(path)
    return written


def export(plan: BakePlan) -> dict[str, Any]:
    """Write everything plain bake needs (settings in 0600 files) and say how to run it."""
    settings_files = {
        variable: _private_file(f"bake-settings-{variable.lower()}", value)
        for variable, value in plan.secret_env.items()
    }
    overrides = _write_overrides(plan, settings_files)
    argv = plan.argv(overrides, list(settings_files.values()))
    return {
        "command": shlex.join(argv),
        "argv": argv,
        "override_files": [str(p) for p in overrides],
        "override": plan.override(settings_files),
    }


def _private_file(stem: str, text: str) -> Path:
    """A file only its owner reads: settings may carry an index's credentials."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = paths.rendered_dir() / f"{stem}-{digest}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def execute(plan: BakePlan) -> CacheReport:
    """Run bake with the override in files of its own; report what the cache did."""
    argv = plan.argv(_write_overrides(plan))
    modes = {name: target.mode for name, target in plan.plans.items()}
    log.info("bake", modes=modes)
    execution.warn_exposure(list(plan.plans.values()))
    watcher = execution.start_watch(list(plan.plans.values()), argv)
    code = current_engine().stream(argv, env=plan.secret_env)
    if code != 0:
        raise BuildFailed(
            f"bake failed (docker exited with {code}); its output above says why",
            detail=shlex.join(argv),
        )
    return watcher.finish()
