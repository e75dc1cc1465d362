"""`orchestrate build` and `orchestrate bake`."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator import build as builds
from orchestrator.cli.common import print_json, store
from orchestrator.log import get_logger
from orchestrator.plan import render
from orchestrator.plan.model import BuildOptions

log = get_logger(__name__)


def _options(options: argparse.Namespace) -> BuildOptions:
    return BuildOptions(no_proxy=options.no_proxy, fresh=options.fresh)


def build(options: argparse.Namespace) -> None:
    """Build the image a profile describes, through the proxy or with cache mounts."""
    plan = builds.plan_for(
        store(options), options.profile, _options(options), dry_run=options.dry_run
    )
    if options.dry_run:
        builds.write_files(plan)
        print_json(render.as_dict(plan)) if options.json else print(render.text(plan))
        return
    log.info("build", profile=plan.profile, mode=plan.mode, reason=plan.mode_reason)
    builds.execute(plan)
    log.info("built", profile=plan.profile, mode=plan.mode, tags=list(plan.tags))


def bake(options: argparse.Namespace) -> None:
    """Run `docker buildx bake` with a profile's wiring applied to every selected target."""
    from orchestrator import bake as bakes  # noqa: PLC0415 - only bake needs it

    resolved = store(options).resolve(options.profile)
    files = [Path(f) for f in options.files or ["docker-bake.hcl"]]
    looking = options.dry_run or options.print_override
    plan = bakes.prepare(resolved, files, options.targets, _options(options), dry_run=looking)
    if options.print_override:
        exported = bakes.export(plan)
        print_json(exported) if options.json else print(exported["command"])
    elif options.dry_run:
        for name, target_plan in plan.plans.items():
            print(f"== target {name}\n{render.text(target_plan, command=False)}\n")
        print(f"bake network: {plan.network_route}")
        print(f"command:\n  {' '.join(plan.argv([Path('OVERRIDE.json')]))}")
    else:
        bakes.execute(plan)
