"""Carrying out `orchestrate build`: gather facts, plan, then run exactly that plan."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from orchestrator import dockerfile, engine, proxy
from orchestrator.errors import Conflict, EngineUnavailable, ProxyUnavailable
from orchestrator.host import gather_facts
from orchestrator.log import get_logger
from orchestrator.plan import BuildOptions, BuildPlan, ProxyFacts, plan_build
from orchestrator.profiles import ProfileStore, ProxySettings, ResolvedProfile

log = get_logger(__name__)
RENDER_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orchestrator" / "rendered"
)


def plan_for(store: ProfileStore, name: str, options: BuildOptions, *, dry_run: bool) -> BuildPlan:
    """Resolve, parse and gather facts; starting the proxy is the only side effect, and
    a dry run only looks."""
    resolved = store.resolve(name)
    parsed = dockerfile.parse(resolved.profile.dockerfile_path)
    started = time.monotonic()
    facts = gather_facts(
        builder=resolved.profile.builder,
        proxy=proxy_facts(resolved, options, dry_run=dry_run),
        render_dir=RENDER_DIR,
    )
    log.debug("facts gathered", seconds=round(time.monotonic() - started, 3))
    return plan_build(resolved, parsed, facts, options)


def proxy_facts(
    resolved: ResolvedProfile, options: BuildOptions, *, dry_run: bool
) -> ProxyFacts | None:
    settings = resolved.profile.proxy
    if settings.mode == "off" or options.no_proxy:
        return None
    try:
        if dry_run:
            return _looked_up(settings)
        found = proxy.ensure(
            settings,
            allow_build=settings.mode == "require",
            requester=proxy.Requester(profile=resolved.name, replace=False),
        )
    except (ProxyUnavailable, EngineUnavailable, Conflict) as exc:
        if settings.mode == "require" and not isinstance(exc, ProxyUnavailable):
            raise
        return ProxyFacts(healthy=False, reason=exc.message)
    return ProxyFacts(healthy=found.healthy, reason=found.reason, address=found.address)


def _looked_up(settings: ProxySettings) -> ProxyFacts:
    """What a real run would find, without starting anything."""
    found = proxy.status(settings)
    if found.healthy or found.state in ("external", "running"):
        return ProxyFacts(healthy=found.healthy, reason=found.reason, address=found.address)
    try:
        proxy.ensure_image(settings, allow_build=False, pull=False)
    except ProxyUnavailable as exc:
        return ProxyFacts(healthy=False, reason=exc.message)
    return ProxyFacts(healthy=True, reason=f"{found.reason}; a real run starts it first")


def keep_rendered(plan: BuildPlan) -> None:
    """Write the rendered Dockerfile where the plan says; it stays there to be inspected."""
    if plan.rendered_path is not None and plan.rendered_text is not None:
        write_rendered(plan.rendered_path, plan.rendered_text)


def execute(plan: BuildPlan) -> None:
    """Write the rendered Dockerfile and run the build exactly as planned."""
    keep_rendered(plan)
    for argv in plan.prepare:
        log.warning("builder must be prepared", command=" ".join(argv))
    engine.run_streaming(plan.argv, env=plan.secret_env)


def write_rendered(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    temporary.replace(path)
