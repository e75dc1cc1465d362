"""Planning `orchestrate build`: resolve the profile, gather facts, plan.

Finding or starting the proxy is the only side effect, and a dry run only looks. Carrying
the plan out is ``execution``'s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from orchestrator import builder, dockerfile, paths
from orchestrator.errors import BadInput, Conflict, DockerRefused, ProxyUnavailable
from orchestrator.host import gather_facts
from orchestrator.log import get_logger
from orchestrator.plan.build import plan_build
from orchestrator.plan.facts import HostFacts, ProxyFacts
from orchestrator.plan.model import BuildOptions, BuildPlan
from orchestrator.profiles import ProfileStore, ProxySettings, ResolvedProfile
from orchestrator.proxy import lifecycle, probe

DECISION_BUDGET = probe.DECISION_BUDGET

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


def planned(
    store: ProfileStore,
    name: str,
    options: BuildOptions,
    *,
    dry_run: bool,
    decided: ProxyFacts | None = None,
) -> Planned:
    """``decided``: the proxy's facts, when a remembered plan's check already found them
    (and they changed): not asked for again, so the decision is made once."""
    resolved = store.resolve(name)
    check_inputs(resolved)
    parsed = dockerfile.parse(resolved.profile.dockerfile_path)
    started = time.monotonic()
    facts = gather_facts(
        builder=builder.detect(resolved.profile.builder),
        proxy=decided if decided is not None else proxy_facts(resolved, options, dry_run=dry_run),
        render_dir=paths.rendered_dir(),
        parsed=parsed,
        context=resolved.profile.context,
    )
    log.debug("facts gathered", seconds=round(time.monotonic() - started, 3))
    return Planned(plan_build(resolved, parsed, facts, options), resolved, facts)


def check_inputs(resolved: ResolvedProfile) -> None:
    """What the user must fix, found before anything is created on their behalf."""
    profile = resolved.profile
    where = paths.shown(resolved.sources[0])
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
    same time: each is bounded by its own short timeout, so the decision stays short.

    An upstream seen up is remembered for at most the index TTL (and 30 s): past it, the
    front would refresh its pages from the upstream, so whether it is up must be asked
    again before a build sends requests its way.
    """
    settings = resolved.profile.proxy
    if settings.mode == "off" or options.no_proxy:
        return None
    started = time.monotonic()
    clock = lifecycle.Clock()
    upstream = None if settings.url else probe.UpstreamCheck(settings.index, remember_for(settings))
    found = _proxy(resolved, dry_run=dry_run, clock=clock)
    return probe.decided(found, upstream, started, clock.creating)


def remember_for(settings: ProxySettings) -> float:
    return probe.remembered_for(settings.index_ttl)


def _proxy(resolved: ResolvedProfile, *, dry_run: bool, clock: lifecycle.Clock) -> ProxyFacts:
    settings = resolved.profile.proxy
    requester = lifecycle.Requester(profile=resolved.name, replace=False)
    try:
        if dry_run:
            return lifecycle.predict(settings, requester, budget=DECISION_BUDGET)
        found = lifecycle.ensure(
            settings,
            allow_build=settings.mode == "require",
            requester=requester,
            budget=DECISION_BUDGET,
            clock=clock,
        )
    except (ProxyUnavailable, DockerRefused, Conflict) as exc:
        if settings.mode == "require" and not isinstance(exc, ProxyUnavailable):
            raise
        return ProxyFacts(healthy=False, reason=exc.message)
    return found.facts()
