"""The proxy's facts for a plan: found, started or created, and whether its upstream
answers, asked at the same time. Builds, bakes, runs and `env` all ask here, so each
command decides on the same evidence within the same bound.
"""

from __future__ import annotations

import time

from orchestrator.errors import Conflict, DockerRefused, ProxyUnavailable
from orchestrator.facts.model import ProxyFacts
from orchestrator.profiles import ResolvedProfile
from orchestrator.proxy import lifecycle, probe


def proxy_facts(resolved: ResolvedProfile, *, no_proxy: bool, dry_run: bool) -> ProxyFacts | None:
    """None when the proxy is not to be asked (``proxy: off``, ``--no-proxy``); else its
    facts, each part bounded by its own short timeout, so the decision stays short.

    An upstream seen up is remembered for at most the index TTL (and 30 s): past it, the
    front would refresh its pages from the upstream, so whether it is up must be asked
    again before a build sends requests its way. A dry run only looks.
    """
    settings = resolved.profile.proxy
    if settings.mode == "off" or no_proxy:
        return None
    started = time.monotonic()
    clock = lifecycle.Clock()
    remember = probe.remembered_for(settings.index_ttl)
    upstream = None if settings.url else probe.UpstreamCheck(settings.index, remember)
    found = _proxy(resolved, dry_run=dry_run, clock=clock)
    return probe.decided(found, upstream, started, clock.creating)


def _proxy(resolved: ResolvedProfile, *, dry_run: bool, clock: lifecycle.Clock) -> ProxyFacts:
    settings = resolved.profile.proxy
    requester = lifecycle.Requester(profile=resolved.name, replace=False)
    budget = probe.DECISION_BUDGET
    try:
        if dry_run:
            return lifecycle.predict(settings, requester, budget=budget)
        found = lifecycle.ensure(
            settings,
            allow_build=settings.mode == "require",
            requester=requester,
            budget=budget,
            clock=clock,
        )
    except (ProxyUnavailable, DockerRefused, Conflict) as exc:
        if settings.mode == "require" and not isinstance(exc, ProxyUnavailable):
            raise
        return ProxyFacts(healthy=False, reason=exc.message)
    return found.facts()
