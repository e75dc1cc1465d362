"""Which file of the build context a RUN step reads at a path in the image.

Two patterns are followed, the ones installers' Docker guides use: a bind mount in the
step itself, and a COPY or ADD before it. Anything else (a file made by an earlier RUN, a
glob, a path outside the context) is None: the caller then says it cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from orchestrator.dockerfile.parse import ParsedDockerfile, RunStep, mount_options


@dataclass(frozen=True)
class Source:
    """A context file, relative to the context (None when it cannot be told), and the
    step's own bind mount that brings it, if that is how."""

    path: str | None
    bind_flag: str | None = None


def source_of(parsed: ParsedDockerfile, run: RunStep, image_path: str) -> Source:
    """Where the file that ``run`` reads at ``image_path`` comes from."""
    for flag in run.flags:
        options = mount_options(flag)
        if options.get("type", "bind") != "bind" or "from" in options:
            continue
        target = join(run.workdir, options.get("target") or options.get("dst") or "")
        source = options.get("source") or options.get("src") or "."
        if target == image_path:
            return Source(_clean(source), flag)
        relative = _under(image_path, target)
        if relative is not None:
            return Source(_clean(f"{source}/{relative}"))
    return Source(_copied_from(parsed, run, image_path))


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


def join(base: str, path: str) -> str:
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
