"""Carrying out a plan exactly as made: write its files, run its command, judge the end.

Kept apart from planning so that a build whose plan was remembered (``remember``) imports
nothing of planning's: no pydantic, no YAML, no Dockerfile parser.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator import log as logs
from orchestrator.engine.api import current as current_engine
from orchestrator.errors import BuildFailed
from orchestrator.log import get_logger
from orchestrator.plan.model import EXPOSURE, BuildPlan
from orchestrator.proxy import accesslog
from orchestrator.report import CacheReport, Watcher

log = get_logger(__name__)


def write_files(plan: BuildPlan) -> None:
    """Write the rendered Dockerfile and the lock copies where the plan says; they stay
    there to be read."""
    if plan.rendered_path is not None and plan.rendered_text is not None:
        write_file(plan.rendered_path, plan.rendered_text)
    for path, text in plan.files.items():
        write_file(path, text)


def execute(plan: BuildPlan) -> CacheReport:
    """Write the rendered files, run the build exactly as planned, and report what the
    package cache did.

    Through the managed proxy, a failed build is explained by what its front served
    meanwhile: the projects it could not serve, named in one line with the reason."""
    write_files(plan)
    env = settings_env(plan)
    for argv in plan.prepare:
        log.warning("builder must be prepared", command=" ".join(argv))
    warn_exposure([plan])
    watcher = start_watch([plan], plan.argv)
    code = current_engine().stream(plan.argv, env=env)
    if code != 0:
        span = watcher.span()
        missing = span.missing() if span is not None else []
        if missing and span is not None:
            raise BuildFailed(unserved_message(plan, span, missing), detail=plan.command_line)
        raise BuildFailed(
            f"the build of profile '{plan.profile}' failed (docker exited with {code}); "
            "its output above says why",
            detail=plan.command_line,
        )
    return watcher.finish()


def warn_exposure(plans: list[BuildPlan]) -> None:
    """A proxy published beyond this machine is said by a real build too, not only by a
    dry run's decisions: once, whatever the number of targets."""
    found = next((d for p in plans for d in p.decisions if d.topic == EXPOSURE), None)
    if found is not None:
        logs.say(
            "proxy exposed",
            f"orchestrate: warning: the proxy's port is published on {found.choice}: "
            f"{found.reason}",
            level="warning",
            address=found.choice,
        )


def settings_env(plan: BuildPlan) -> dict[str, str]:
    """The variables that feed the settings secrets, with the index's credentials put in
    now, read from where the profile keeps them: BuildKit gets them as secrets, and no
    plan (printed or remembered) ever held them."""
    if not plan.credentials_url or not plan.credentials_source:
        return dict(plan.secret_env)
    from orchestrator.facts.host import read_credentials  # noqa: PLC0415 - rare
    from orchestrator.urls import with_userinfo  # noqa: PLC0415

    pair = read_credentials(plan.credentials_source, str(plan.sources[0]))
    bare = plan.credentials_url
    authed = with_userinfo(bare, pair)
    return {name: value.replace(bare, authed) for name, value in plan.secret_env.items()}


def start_watch(plans: list[BuildPlan], argv: tuple[str, ...] | list[str]) -> Watcher:
    """What the cache report needs noted before the build: the front's log (any plan
    through the proxy) or the fallback's cache mounts."""
    through = [p for p in plans if p.mode in ("proxy", "offline")]
    if through:
        first = through[0]
        return Watcher.start(first.mode, front=first.proxy_front, proxy=first.proxy_name)
    mode = plans[0].mode if plans else "off"
    return Watcher.start(mode, rendered=[p.rendered_text for p in plans], argv=argv)


def unserved_message(plan: BuildPlan, span: accesslog.Span, missing: list[str]) -> str:
    """One line: which packages the proxy could not serve during the build, and why."""
    head = f"the build of profile '{plan.profile}' failed: "
    if plan.mode == "offline":
        verb = "are" if len(missing) > 1 else "is"
        return (
            f"{head}{', '.join(missing)} {verb} not in the proxy's cache, and the upstream is "
            f"down (offline mode: {plan.outage or plan.mode_reason})"
        )
    answers = ", ".join(
        f"{name} (answered {'/'.join(str(s) for s in span.statuses(name))})" for name in missing
    )
    return f"{head}the proxy could not serve {answers}: see `orchestrate proxy logs`"


def write_file(path: Path, text: str) -> None:
    """Atomically, readable by the user and group; unchanged files are not rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    temporary.replace(path)
