"""Planning `orchestrate build`: resolve the profile, gather facts, plan.

Finding or starting the proxy is the only side effect, and a dry run only looks. Carrying
the plan out is ``execution``'s.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from orchestrator import builder, dockerfile, paths
from orchestrator.errors import BadInput, Conflict, DockerRefused, ProxyUnavailable
from orchestrator.host import gather_facts
from orchestrator.log import get_logger
from orchestrator.plan.build import plan_build
from orchestrator.plan.facts import HostFacts, ProxyFacts
from orchestrator.plan.model import BuildOptions, BuildPlan
from orchestrator.profiles import ProfileStore, ResolvedProfile
from orchestrator.proxy import lifecycle, probe

UPSTREAM_TIMEOUT = 0.8  # seconds the upstream gets to answer before it counts as down

log = get_logger(__name__)


def plan_for(store: ProfileStore, name: str, options: BuildOptions, *, dry_run: bool) -> BuildPlan:
    """Resolve, parse and gather facts; starting the proxy is the only side effect, and
    a dry run only looks."""
    return planned(store, name, options, dry_run=dry_run).plan


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made from, for remembering it."""

    plan: BuildPlan
    resolved: ResolvedProfile
    facts: HostFacts


def planned(store: ProfileStore, name: str, options: BuildOptions, *, dry_run: bool) -> Planned:
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
    return Planned(plan_build(resolved, parsed, facts, options), resolved, facts)


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
