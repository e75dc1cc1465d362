"""Planning `orchestrate build`: resolve the profile, gather facts, plan.

Finding or starting the proxy is the only side effect, and a dry run only looks. Carrying
the plan out is ``execute``'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator import dockerfile, paths
from orchestrator.facts import builder
from orchestrator.facts.host import check_inputs, gather_facts
from orchestrator.facts.image import base_images
from orchestrator.facts.model import HostFacts, ProxyFacts
from orchestrator.log import get_logger
from orchestrator.plan.build import plan_build
from orchestrator.plan.model import BuildOptions, BuildPlan
from orchestrator.profiles import ProfileStore, ResolvedProfile
from orchestrator.proxy.gather import proxy_facts

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
        proxy=decided if decided is not None else asked(resolved, options, dry_run=dry_run),
        render_dir=paths.rendered_dir(),
        parsed=parsed,
        context=resolved.profile.context,
        base_images=base_images(parsed.image_refs(resolved.profile.build_args).values()),
    )
    log.debug("facts gathered", seconds=round(time.monotonic() - started, 3))
    return Planned(plan_build(resolved, parsed, facts, options), resolved, facts)


def asked(resolved: ResolvedProfile, options: BuildOptions, *, dry_run: bool) -> ProxyFacts | None:
    """The proxy's facts, unless the options say not to ask it."""
    return proxy_facts(resolved, no_proxy=options.no_proxy, dry_run=dry_run)
