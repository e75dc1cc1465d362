"""The installers' caches in a RUN step: where each installer keeps its cache, which the
step already mounts itself, and how parallel builds share each one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from orchestrator.dockerfile import RunStep
from orchestrator.dockerfile.parse import mount_options
from orchestrator.plan.draft import Draft


@dataclass(frozen=True)
class Cache:
    """One installer's cache: where it is, what moves it, how parallel builds share it.

    pip before 25.3 could corrupt a shared cache (pypa/pip#12361, #13540), and Debian 12
    ships 23.0.1, so pip's is locked: by BuildKit (``locked``) where the step has no shell,
    by such a pip itself where it has one (``steps._pip_lock``: the mount is shared, and a
    pip that needs no lock does not wait). uv locks its own cache (<cache>/.lock, entry locks), so
    its is shared: 4 parallel fallback builds whose uv steps overlap all succeed, every
    file intact, each fetched once (tests/integration/test_installers.py, uv 0.13.9),
    and no build waits for another's uv step as it would on a locked mount.
    Poetry keeps its virtualenvs in its cache directory by default, so only the
    ``artifacts`` directory under it (the downloaded files) is mounted, where poetry
    finds it: a venv on a cache mount would be missing from the image.
    """

    tool: str
    variable: str  # the variable that names the installer's cache directory
    leaf: str  # its directory under $XDG_CACHE_HOME (by default ~/.cache)
    sharing: str
    markers: tuple[str, ...] = field(default=())
    subdirectory: str = ""  # mount only this part of the cache directory
    movable: bool = True  # shell-form steps may point the variable at our mount


CACHES = (
    Cache("pip", "PIP_CACHE_DIR", "pip", "locked", ("pip",)),
    Cache("uv", "UV_CACHE_DIR", "uv", "shared", ("uv",)),
    Cache(
        "poetry",
        "POETRY_CACHE_DIR",
        "pypoetry",
        "locked",
        ("pypoetry", "poetry"),
        subdirectory="artifacts",
        movable=False,
    ),
)
CACHES_OF = {"pip": ("pip",), "pip-tools": ("pip",), "pipenv": ("pip",), "uv": ("uv",)}
CACHES_OF |= {"poetry": ("poetry",)}


def own_caches(flags: list[str], run: RunStep) -> set[str]:
    """Installers whose cache the step already mounts itself: those mounts are kept.

    A mount counts when its path names the installer (``/root/.cache/uv``), is a whole
    ``.cache`` directory, or is where the step's environment (its base image's ENV, then
    the Dockerfile's) puts the installer's cache.
    """
    found: set[str] = set()
    for flag in flags:
        options = mount_options(flag)
        if options.get("type") != "cache":
            continue
        target = options.get("target") or options.get("dst") or options.get("destination") or ""
        parts = PurePosixPath(target).parts
        if parts and parts[-1] == ".cache":
            found |= {cache.tool for cache in CACHES}
        found |= {c.tool for c in CACHES if any(marker in parts for marker in c.markers)}
        found |= {
            c.tool
            for c in CACHES
            if target and _same_dir(run.env.get(c.variable, ""), target, run.workdir)
        }
    return found


def _same_dir(path: str, target: str, workdir: str) -> bool:
    if not path:
        return False
    return PurePosixPath(workdir, path) == PurePosixPath(workdir, target)


def default_cache_dir(draft: Draft, run: RunStep, cache: Cache, uid: int | None) -> str | None:
    """Where the installer keeps its cache in this step when nothing moves it: the
    step's environment first (its base image's ENV, then the Dockerfile's), then
    $XDG_CACHE_HOME, then the user's home (``uid`` None: a user whose uid is not known)."""
    base = run.env.get(cache.variable)
    if base is None:
        xdg = run.env.get("XDG_CACHE_HOME")
        if xdg:
            base = f"{xdg}/{cache.leaf}"
        else:
            home = _home(draft, run, uid, cache.tool)
            if home is None:
                return None
            base = f"{home}/.cache/{cache.leaf}"
    path = PurePosixPath(run.workdir, base)
    return str(path / cache.subdirectory if cache.subdirectory else path)


def _home(draft: Draft, run: RunStep, uid: int | None, tool: str) -> str | None:
    """The home directory of the step's user, where installers keep their caches."""
    if run.env.get("HOME"):
        return run.env["HOME"]
    if uid == 0:
        return "/root"
    user = draft.build_user
    if user is not None and uid is not None and uid == user.uid:
        return f"/home/{user.name}"
    draft.decide(
        f"RUN line {run.line}",
        f"no {tool} cache mount",
        f"cannot tell the home directory of USER {run.user}, where {tool} keeps its cache",
    )
    return None
