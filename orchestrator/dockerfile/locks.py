"""Where a uv project step finds its uv.lock in the image, and where that file came from.

A step running ``uv sync --locked`` reads ``uv.lock`` from its project directory. To hand
it a copy whose URLs point at the proxy, orchestrator must know that path and the file of
the build context it was copied or bind-mounted from. This follows the two patterns uv's
Docker guide uses (a bind mount in the step; a COPY before it) and gives up, honestly, on
anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from orchestrator.dockerfile.commands import UvProject, uv_projects
from orchestrator.dockerfile.parse import ParsedDockerfile, RunStep, mount_options

LOCK_NAME = "uv.lock"


@dataclass(frozen=True)
class LockUse:
    """One uv project command's lock: its path in the image and its source, if known."""

    line: int
    project: UvProject
    image_path: str
    source: str | None  # path relative to the build context, None when it cannot be told
    bind_flag: str | None = None  # the step's own bind mount of the lock, if that is how


def lock_uses(parsed: ParsedDockerfile) -> list[LockUse]:
    """Every uv project command of every RUN step, with its lock traced where possible."""
    found = []
    for run in parsed.runs:
        for project in uv_projects(run.text):
            found.append(_trace(parsed, run, project))
    return found


def _trace(parsed: ParsedDockerfile, run: RunStep, project: UvProject) -> LockUse:
    directory = _join(run.workdir, project.directory or ".")
    image_path = str(PurePosixPath(directory) / LOCK_NAME)
    for flag in run.flags:
        options = mount_options(flag)
        if options.get("type", "bind") != "bind" or "from" in options:
            continue
        target = _join(run.workdir, options.get("target") or options.get("dst") or "")
        source = options.get("source") or options.get("src") or "."
        if target == image_path:
            return LockUse(run.line, project, image_path, _clean(source), flag)
        relative = _under(image_path, target)
        if relative is not None:
            return LockUse(run.line, project, image_path, _clean(f"{source}/{relative}"))
    return LockUse(run.line, project, image_path, _copied_from(parsed, run, image_path))


def _copied_from(parsed: ParsedDockerfile, run: RunStep, image_path: str) -> str | None:
    """The context file the last COPY/ADD before ``run`` put at ``image_path``."""
    for copy in reversed(parsed.copies_before(run)):
        for source in reversed(copy.sources):
            if source.rstrip("/") in (".", ""):
                relative = _under(image_path, copy.destination)
                if relative is not None:
                    return _clean(relative)
            elif copy.destination.endswith("/"):
                if str(PurePosixPath(copy.destination) / PurePosixPath(source).name) == image_path:
                    return _clean(source)
            elif copy.destination == image_path:
                return _clean(source)
    return None


def _join(base: str, path: str) -> str:
    return str(PurePosixPath(base) / path) if not path.startswith("/") else str(PurePosixPath(path))


def _under(path: str, directory: str) -> str | None:
    try:
        return str(PurePosixPath(path).relative_to(PurePosixPath(directory.rstrip("/") or "/")))
    except ValueError:
        return None


def _clean(path: str) -> str | None:
    """A context-relative path, or None for anything outside the context or with a glob."""
    if any(char in path for char in "*?[$"):
        return None
    parts = [p for p in PurePosixPath(path.lstrip("/")).parts if p not in (".", "")]
    if ".." in parts:
        return None
    return "/".join(parts) or None
