"""Carrying out `orchestrate build`: gather facts, plan, then run exactly that plan."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from orchestrator import builder, dockerfile, paths
from orchestrator.engine import process
from orchestrator.errors import BadInput, BuildFailed, Conflict, DockerRefused, ProxyUnavailable
from orchestrator.host import gather_facts
from orchestrator.log import get_logger
from orchestrator.plan.build import plan_build
from orchestrator.plan.facts import ProxyFacts
from orchestrator.plan.model import BuildOptions, BuildPlan
from orchestrator.profiles import ProfileStore, ResolvedProfile
from orchestrator.proxy import lifecycle, probe

UPSTREAM_TIMEOUT = 0.8  # seconds the upstream gets to answer before it counts as down

log = get_logger(__name__)


def plan_for(store: ProfileStore, name: str, options: BuildOptions, *, dry_run: bool) -> BuildPlan:
    """Resolve, parse and gather facts; starting the proxy is the only side effect, and
    a dry run only looks."""
    resolved = store.resolve(name)
    check_inputs(resolved)
    parsed = dockerfile.parse(resolved.profile.dockerfile_path)
    started = time.monotonic()
    facts = gather_facts(
        builder=builder.detect(resolved.profile.builder),
        proxy=proxy_facts(resolved, options, dry_run=dry_run),
        render_dir=paths.rendered_dir(),
        parsed=parsed,
        context=resolved.profile.context,
    )
    log.debug("facts gathered", seconds=round(time.monotonic() - started, 3))
    return plan_build(resolved, parsed, facts, options)


def check_inputs(resolved: ResolvedProfile) -> None:
    """What the user must fix, found before anything is created on their behalf."""
    profile = resolved.profile
    where = resolved.sources[0]
    for key, secret in profile.secrets.items():
        if secret.env is not None and secret.env not in os.environ:
            raise BadInput(
                f"{where}: field 'secrets.{key}.env': environment variable {secret.env} is not set"
            )
    if profile.ssh and not os.environ.get("SSH_AUTH_SOCK"):
        raise BadInput(
            f"{where}: field 'ssh' is true but no ssh-agent socket was found: start one "
            "(eval $(ssh-agent); ssh-add) so SSH_AUTH_SOCK is set"
        )


def proxy_facts(
    resolved: ResolvedProfile, options: BuildOptions, *, dry_run: bool
) -> ProxyFacts | None:
    """The proxy found, started or created, and whether its upstream answers, found at the
    same time: each is bounded by its own short timeout, so the decision stays short."""
    settings = resolved.profile.proxy
    if settings.mode == "off" or options.no_proxy:
        return None
    with ThreadPoolExecutor(max_workers=1) as pool:
        upstream = (
            None
            if settings.url
            else pool.submit(probe.upstream_remembered, settings.index, UPSTREAM_TIMEOUT)
        )
        found = _proxy(resolved, dry_run=dry_run)
        checked = upstream.result() if upstream is not None else None
    if found.healthy and checked is not None and not checked.ok:
        return replace(found, offline=checked.reason)
    return found


def _proxy(resolved: ResolvedProfile, *, dry_run: bool) -> ProxyFacts:
    settings = resolved.profile.proxy
    requester = lifecycle.Requester(profile=resolved.name, replace=False)
    try:
        if dry_run:
            return lifecycle.predict(settings, requester)
        found = lifecycle.ensure(
            settings, allow_build=settings.mode == "require", requester=requester
        )
    except (ProxyUnavailable, DockerRefused, Conflict) as exc:
        if settings.mode == "require" and not isinstance(exc, ProxyUnavailable):
            raise
        return ProxyFacts(healthy=False, reason=exc.message)
    return found.facts()


def write_files(plan: BuildPlan) -> None:
    """Write the rendered Dockerfile and the lock copies where the plan says; they stay
    there to be read."""
    if plan.rendered_path is not None and plan.rendered_text is not None:
        write_file(plan.rendered_path, plan.rendered_text)
    for path, text in plan.files.items():
        write_file(path, text)


def execute(plan: BuildPlan) -> None:
    """Write the rendered files and run the build exactly as planned."""
    write_files(plan)
    for argv in plan.prepare:
        log.warning("builder must be prepared", command=" ".join(argv))
    code = process.stream(plan.argv, env=plan.secret_env)
    if code != 0:
        raise BuildFailed(
            f"the build of profile '{plan.profile}' failed (docker exited with {code}); "
            "its output above says why",
            detail=plan.command_line,
        )


def write_file(path: Path, text: str) -> None:
    """Atomically, readable by the user and group; unchanged files are not rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    temporary.replace(path)
