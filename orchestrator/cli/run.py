"""`orchestrate run` and `orchestrate env`."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli.common import print_json, store
from orchestrator.facts.container import compose_services
from orchestrator.log import get_logger
from orchestrator.plan.containers import RunOptions
from orchestrator.profiles import ProxySettings
from orchestrator.report import Watcher, emit
from orchestrator.run import execute, gather, render

log = get_logger(__name__)


def _options(options: argparse.Namespace) -> RunOptions:
    return RunOptions(
        image=options.image,
        no_proxy=options.no_proxy,
        docker_opts=tuple(getattr(options, "docker_opts", ())),
        command=tuple(getattr(options, "command", ())),
        keep=getattr(options, "keep", False),
    )


def run(options: argparse.Namespace) -> int:
    """Run a command in the profile's image, wired as its builds are; its exit code is ours."""
    resolved = store(options).resolve(options.profile)
    plan = gather.plan_for(resolved, _options(options), dry_run=options.dry_run)
    if options.dry_run:
        print_json(render.run_dict(plan)) if options.json else print(render.run_text(plan))
        return 0
    wiring = plan.wiring
    log.info(
        "run",
        profile=plan.wiring.profile,
        mode=wiring.mode,
        reason=wiring.mode_reason,
        image=plan.image,
        container=plan.name,
    )
    settings = resolved.profile.proxy
    watcher = Watcher.start(wiring.mode, front=_front(settings, wiring.mode), proxy=settings.name)
    code = execute.run(plan)
    log.info("run ended", container=plan.name, exit_code=code)
    emit(watcher.finish())
    return code


def _front(settings: ProxySettings, mode: str) -> str | None:
    """The managed proxy's URL from this machine, when the run goes through it."""
    return settings.host_url if mode in ("proxy", "offline") and not settings.url else None


def env(options: argparse.Namespace) -> None:
    """Print the wiring of the profile's containers in the chosen format."""
    resolved = store(options).resolve(options.profile)
    services = compose_services(options.services, Path.cwd()) if options.format == "compose" else ()
    wiring = gather.wiring_for(resolved, _options(options))
    execute.prepare(wiring)
    log.info("env", profile=wiring.profile, mode=wiring.mode, reason=wiring.mode_reason)
    if options.format in ("shell", "docker"):
        for secret in render.unmountable(wiring):
            log.warning(
                "secret left out",
                secret=secret.id,
                reason=f"it is held in {secret.variable}, a variable, and this format mounts "
                "files; `orchestrate run` and --format compose give it",
            )
    if options.format == "json":
        print_json(render.wiring_dict(wiring))
    elif options.format == "docker":
        print(render.docker_line(wiring))
    elif options.format == "compose":
        print(render.compose(wiring, services), end="")
    else:
        print(render.shell(wiring))
