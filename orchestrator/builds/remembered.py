"""A repeated build: the remembered plan when nothing it depends on changed, else a new one.

The facts are gathered again on every build, the cheap way (the builder's from their own
cache, the proxy's by asking its front, the host's from this process, the base images' by
one `docker image inspect` each, a few hundredths of a second), and compared by
value with those the plan was made with (plan/cache.py). Only a managed proxy's plan, or
one without a proxy, is remembered: an external proxy has no digest to check.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import paths
from orchestrator.builds.store import (
    Entry,
    ProxyKey,
    differences,
    entry_path,
    facts_key,
    load,
    save,
)
from orchestrator.errors import ProxyUnavailable
from orchestrator.facts import builder
from orchestrator.facts.host import engine_endpoint, gather_facts
from orchestrator.facts.image import base_images
from orchestrator.facts.model import ProxyFacts
from orchestrator.log import get_logger
from orchestrator.plan.model import FRESH_ARG, BuildOptions, BuildPlan
from orchestrator.proxy import probe, reach

if TYPE_CHECKING:
    from orchestrator.builds.gather import Planned

log = get_logger(__name__)


def plan(profiles_dir: Path, name: str, options: BuildOptions) -> BuildPlan:
    """The plan of a real build: remembered if it still holds, else made and remembered."""
    path = entry_path(profiles_dir, name, options, engine_endpoint())
    entry = load(path)
    decided = None
    if entry is not None:
        found, decided = _still_holds(entry, options)
        if found is not None:
            log.debug("plan remembered", entry=str(path))
            return found
    from orchestrator.builds.gather import planned  # noqa: PLC0415 - pydantic and more: slow path only
    from orchestrator.profiles import ProfileStore  # noqa: PLC0415

    made = planned(ProfileStore(profiles_dir), name, options, dry_run=False, decided=decided)
    _keep(path, made, options)
    return made.plan


def _still_holds(entry: Entry, options: BuildOptions) -> tuple[BuildPlan | None, ProxyFacts | None]:
    """The remembered plan if it still holds, and the proxy's facts if this check found
    them for good (so that planning again does not ask a second time). The base images
    are asked beside the proxy's check, which they would otherwise add to (a docker
    command each, 0.015-0.02 s on Docker 20.10)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - 1 ms, this path only

    with ThreadPoolExecutor(max_workers=1) as pool:
        images = pool.submit(base_images, entry.base_images)
        proxy = _proxy(entry.proxy)
        found = images.result()
    if entry.proxy is not None and proxy is None:
        return None, None  # the proxy does not answer as it did: find or make it the slow way
    files = {}
    for relative, absolute in entry.context_files.items():
        try:
            files[relative] = Path(absolute).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None, proxy
    facts = gather_facts(
        builder=builder.detect(entry.builder),
        proxy=proxy,
        render_dir=paths.rendered_dir(),
        context_files=files,
        base_images=found,
    )
    now = facts_key(facts, options)
    if now != entry.facts:
        log.debug("plan made again", changed=differences(entry.facts, now))
        return None, proxy
    plan = _with_fresh_token(entry.plan, facts.fresh_token) if options.fresh else entry.plan
    return plan, proxy


def _proxy(key: ProxyKey | None) -> ProxyFacts | None:
    """The proxy's facts the cheap way, within the decision's bound, the upstream asked
    beside it: None when its front does not answer with the plan's settings (then the
    slow way finds, starts or creates it)."""
    if key is None:
        return None
    started = time.monotonic()
    deadline = probe.Deadline(probe.DECISION_BUDGET)
    known = reach.recalled_by(key.name, key.host_url)
    if known is None:
        return None  # not yet decided for this engine: the slow way decides
    via, where = reach.side(known)
    upstream = probe.UpstreamCheck(key.index, key.remember, via=via, side=where)
    try:
        checked = reach.answers(
            known,
            key.host_url,
            key.health_project,
            key.digest,
            name=key.name,
            deadline=deadline,
        )
        found = (
            ProxyFacts(healthy=True, reason=checked.reason, digest=key.digest) if checked else None
        )
    except ProxyUnavailable as exc:
        found = ProxyFacts(healthy=False, reason=exc.message)
    if found is None:
        return None  # the slow way asks the upstream again; this check is left behind
    return probe.decided(found, upstream, started)


def _with_fresh_token(plan: BuildPlan, token: str) -> BuildPlan:
    """The same plan with this build's --fresh token, which no cache may keep."""
    prefix = f"{FRESH_ARG}="
    argv = tuple(f"{prefix}{token}" if a.startswith(prefix) else a for a in plan.argv)
    return replace(plan, argv=argv, build_args={**plan.build_args, FRESH_ARG: token})


def _keep(path: Path, made: Planned, options: BuildOptions) -> None:
    settings = made.resolved.profile.proxy
    asked = settings.mode != "off" and not options.no_proxy
    proxy = made.facts.proxy
    digest = proxy.digest if proxy is not None and proxy.healthy else None
    if asked and (settings.url or digest is None):
        return  # an external proxy, or one that did not serve: nothing to check it by
    key = None
    if asked and digest is not None:
        key = ProxyKey(
            settings.host_url,
            settings.health_project,
            settings.index,
            digest,
            name=settings.name,
            remember=probe.remembered_for(settings.index_ttl),
        )
    context = made.resolved.profile.context
    context_files = {rel: str(context / rel) for rel in made.facts.context_files}
    entry = Entry(
        plan=made.plan,
        facts=facts_key(made.facts, options),
        builder=made.resolved.profile.builder,
        proxy=key,
        context_files=context_files,
        base_images=tuple(made.facts.base_images),
    )
    inputs = [*made.resolved.sources, made.resolved.profile.dockerfile_path]
    inputs += [Path(p) for p in context_files.values()]
    save(path, entry, inputs)
