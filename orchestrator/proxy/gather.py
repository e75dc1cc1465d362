"""The proxy's facts for a plan: found, started or created, and whether its upstream
answers, asked at the same time. Builds, bakes, runs and `env` all ask here, so each
command decides on the same evidence within the same bound.
"""

from __future__ import annotations

import time

from orchestrator.errors import Conflict, DockerRefused, ProxyUnavailable
from orchestrator.facts.model import ProxyFacts
from orchestrator.log import get_logger
from orchestrator.profiles import ProxySettings, ResolvedProfile
from orchestrator.proxy import lifecycle, probe, reach
from orchestrator.proxy.locking import ProxyBusy, creation_lock

log = get_logger(__name__)


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
    upstream = None if settings.url else _upstream_check(settings, reach.recalled(settings))
    found = _proxy(resolved, dry_run=dry_run, clock=clock, upstream=upstream)
    if upstream is not None and not upstream.side:
        now = reach.recalled(settings)
        if now is not None and not now.local:  # found elsewhere only now: ask from there
            upstream = _upstream_check(settings, now)
    return probe.decided(found, upstream, started, clock.creating)


def _upstream_check(settings: ProxySettings, known: reach.Reach | None) -> probe.UpstreamCheck:
    """Whether the upstream answers, asked where proxpi asks it: from the engine's side
    when the engine is elsewhere (an index this machine cannot reach may well be reachable
    there, and the other way round)."""
    via, where = reach.side(known)
    remember = probe.remembered_for(settings.index_ttl)
    return probe.UpstreamCheck(settings.index, remember, via=via, side=where)


def _proxy(
    resolved: ResolvedProfile,
    *,
    dry_run: bool,
    clock: lifecycle.Clock,
    upstream: probe.UpstreamCheck | None,
) -> ProxyFacts:
    settings = resolved.profile.proxy
    requester = lifecycle.Requester(profile=resolved.name, replace=False)
    try:
        if dry_run:
            return lifecycle.predict(settings, requester, budget=probe.DECISION_BUDGET)
        try:
            found = _ensure(settings, requester, clock)
        except ProxyBusy:
            if upstream is None or not upstream.result()[0].ok:
                raise  # nothing to wait for: a proxy being made now could fetch nothing
            found = _after_its_maker(settings, requester, clock)
    except (ProxyUnavailable, DockerRefused, Conflict) as exc:
        if settings.mode == "require" and not isinstance(exc, ProxyUnavailable):
            raise
        return ProxyFacts(healthy=False, reason=exc.message)
    return found.facts()


def _ensure(
    settings: ProxySettings, requester: lifecycle.Requester, clock: lifecycle.Clock
) -> lifecycle.ProxyStatus:
    return lifecycle.ensure(
        settings,
        allow_build=settings.mode == "require",
        requester=requester,
        budget=probe.DECISION_BUDGET,
        clock=clock,
    )


def _after_its_maker(
    settings: ProxySettings, requester: lifecycle.Requester, clock: lifecycle.Clock
) -> lifecycle.ProxyStatus:
    """Another process holds the proxy's lock (it creates or starts the proxy) and the
    upstream answers: wait for it, up to the proxy's start-up timeout, as for a proxy this
    build made itself (the wait is exempt from the decision's bound), then decide as usual.
    Many CI jobs starting together on a cold runner then all go through the one proxy, and
    each file is fetched from the upstream once, rather than each job falling back and
    fetching everything itself."""
    log.info(
        "waiting for the proxy another orchestrate is making",
        proxy=settings.name,
        up_to=settings.startup_timeout,
    )
    began = time.monotonic()
    try:
        with creation_lock(settings.name, settings.startup_timeout):
            pass
    finally:
        clock.creating += time.monotonic() - began
    return _ensure(settings, requester, clock)
