"""`orchestrate build` and `orchestrate bake`.

A real build first tries the plan it remembers (``remember``): then nothing of planning is
imported, neither pydantic nor PyYAML nor the Dockerfile parser, and nothing is logged at
the default level before Docker starts but the warnings the plan holds (a builder to
prepare, a proxy published beyond loopback); the line that says what the build did comes
after it (the mode and what the cache served).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import log as logs
from orchestrator import paths
from orchestrator.cli.common import print_json
from orchestrator.log import get_logger
from orchestrator.plan.model import BuildOptions, BuildPlan

if TYPE_CHECKING:
    from orchestrator.report import CacheReport

log = get_logger(__name__)


def _options(options: argparse.Namespace) -> BuildOptions:
    return BuildOptions(no_proxy=options.no_proxy, fresh=options.fresh)


def build(options: argparse.Namespace) -> None:
    """Build the image a profile describes, through the proxy or with cache mounts."""
    from orchestrator.builds import execute as execution  # noqa: PLC0415

    if options.dry_run:
        _dry_run(options)
        return
    from orchestrator.builds import remembered as remember  # noqa: PLC0415

    directory = paths.profiles_dir(options.profiles_dir)
    plan = remember.plan(directory, options.profile, _options(options))
    log.debug("build", profile=plan.profile, mode=plan.mode, reason=plan.mode_reason)
    cache = execution.execute(plan)
    logs.say(
        "built",
        f"orchestrate: built {plan.profile} ({plan.mode}: {plan.mode_reason})",
        profile=plan.profile,
        mode=plan.mode,
        reason=plan.mode_reason,
        tags=list(plan.tags),
    )
    bypasses = _bypasses([plan])
    _report(
        cache,
        options.json,
        profile=plan.profile,
        mode=plan.mode,
        tags=list(plan.tags),
        bypasses=bypasses,
    )


def _bypasses(plans: list[BuildPlan]) -> list[dict[str, object]]:
    """The steps that went to another index than the proxy, on one warning line beside the
    cache line: a cache line saying "nothing asked of the proxy" must not be the only word
    on a build whose poetry went to PyPI. Returned as data for --json."""
    found = [(plan.profile, bypass) for plan in plans for bypass in plan.bypasses]
    if found:
        several = len({profile for profile, _ in found}) > 1
        told = [f"{p}: {b.text()}" if several else b.text() for p, b in found]
        logs.say(
            "bypass",
            f"orchestrate: not through the proxy: {'; '.join(told)}",
            level="warning",
            steps=[{"profile": p, **asdict(b)} for p, b in found],
        )
    return [{"profile": p, **asdict(b)} for p, b in found]


def _report(cache: CacheReport, as_json: bool, **result: object) -> None:
    """The cache report's line on stderr; with --json, the result and it on stdout."""
    from orchestrator.report import emit  # noqa: PLC0415

    emit(cache)
    if as_json:
        print_json({**result, "cache": cache.as_dict()})


def _dry_run(options: argparse.Namespace) -> None:
    from orchestrator.builds import execute as execution  # noqa: PLC0415
    from orchestrator.builds import gather as builds  # noqa: PLC0415
    from orchestrator.cli.common import store  # noqa: PLC0415
    from orchestrator.plan import render  # noqa: PLC0415

    plan = builds.plan_for(store(options), options.profile, _options(options), dry_run=True)
    execution.write_files(plan)
    print_json(render.as_dict(plan)) if options.json else print(render.text(plan))


def bake(options: argparse.Namespace) -> None:
    """Run `docker buildx bake` with a profile's wiring applied to every selected target."""
    from orchestrator.builds import bake as bakes  # noqa: PLC0415 - only bake needs it
    from orchestrator.cli.common import store  # noqa: PLC0415
    from orchestrator.plan import render  # noqa: PLC0415

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
        cache = bakes.execute(plan)
        bypasses = _bypasses(list(plan.plans.values()))
        _report(
            cache,
            options.json,
            profile=options.profile,
            targets=list(plan.plans),
            bypasses=bypasses,
        )
