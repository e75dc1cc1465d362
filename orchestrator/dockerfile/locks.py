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
from orchestrator.dockerfile.parse import ParsedDockerfile, RunStep
from orchestrator.dockerfile.sources import join, source_of

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
    directory = join(run.workdir, project.directory or ".")
    image_path = str(PurePosixPath(directory) / LOCK_NAME)
    source = source_of(parsed, run, image_path)
    return LockUse(run.line, project, image_path, source.path, source.bind_flag)
