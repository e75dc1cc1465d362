"""Gathering what planning a run or `orchestrate env` needs, then planning it.

Finding or starting the proxy is the only side effect, and a dry run only looks.
"""

from __future__ import annotations

import secrets

from orchestrator import paths
from orchestrator.facts.container import (
    files_shared,
    network_exists,
    secret_base,
    terminal,
)
from orchestrator.facts.host import check_inputs, gather_facts
from orchestrator.facts.image import image_facts
from orchestrator.facts.model import BuilderFacts, RunFacts
from orchestrator.plan.containers import RunOptions, RunPlan, Wiring
from orchestrator.plan.run import plan_run, run_image
from orchestrator.plan.wiring import plan_wiring
from orchestrator.profiles import ResolvedProfile
from orchestrator.proxy.gather import proxy_facts
from orchestrator.proxy.image import recipes


def gather(
    resolved: ResolvedProfile, *, image: str | None, no_proxy: bool, dry_run: bool
) -> RunFacts:
    """Facts for planning; finding or starting the proxy is the only side effect, and a
    dry run only looks."""
    check_inputs(resolved)
    proxy = proxy_facts(resolved, no_proxy=no_proxy, dry_run=dry_run)
    host = gather_facts(
        builder=BuilderFacts(checked=False), render_dir=paths.rendered_dir(), proxy=proxy
    )
    settings = resolved.profile.proxy
    fallback = settings.mode != "off" and (proxy is None or not proxy.healthy)
    profile = resolved.profile
    binds = profile.ca_bundle_path(host.host_ca_bundle) or profile.ssh or profile.secrets
    shared = None
    if binds or fallback:  # a path of this machine would be handed to the engine
        shared = files_shared(_probe_images(resolved, image), ask=not dry_run)
    return RunFacts(
        host=host,
        terminal=terminal(),
        image=image_facts(image) if fallback and image else None,
        network_exists=network_exists(settings.network) if fallback and not settings.url else None,
        secret_dir=secret_base() / f"orchestrate-run-{secrets.token_hex(6)}",
        token=secrets.token_hex(4),
        pip_lock_dir=paths.pip_lock_dir(),
        files_shared=shared,
    )


def _probe_images(resolved: ResolvedProfile, image: str | None) -> list[str]:
    """Images to look at this machine's files through: the proxy's own (which have a shell,
    whatever the run's image has), then the run's."""
    proxpi = recipes(resolved.profile.proxy)[0]
    found = [proxpi.local, proxpi.configured]
    return [*found, image] if image else found


def plan_for(resolved: ResolvedProfile, options: RunOptions, *, dry_run: bool) -> RunPlan:
    """Gather facts and plan a run; starting the proxy is the only side effect."""
    image = run_image(resolved, options)
    found = gather(resolved, image=image, no_proxy=options.no_proxy, dry_run=dry_run)
    return plan_run(resolved, found, options)


def wiring_for(resolved: ResolvedProfile, options: RunOptions) -> Wiring:
    """Gather facts and plan the wiring `orchestrate env` prints."""
    image = options.image or (resolved.profile.tags[0] if resolved.profile.tags else None)
    found = gather(resolved, image=image, no_proxy=options.no_proxy, dry_run=False)
    return plan_wiring(resolved, found, options, image)
