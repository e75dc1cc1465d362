"""Every file orchestrator keeps for itself lives under a path named here, and only here.

Per-user state (rendered Dockerfiles, cached facts and plans) follows the XDG base
directory rules, so tests and users move all of it with ``XDG_CACHE_HOME``. Locks that
every user of one engine must share cannot live in a home directory: they go to a
world-writable directory (``ORCHESTRATE_LOCK_DIR``, default ``/run/lock/orchestrator``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

LOCK_DIR_ENV = "ORCHESTRATE_LOCK_DIR"
PROFILES_DIR_ENV = "ORCHESTRATE_PROFILES_DIR"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # Debian's, and the proxies'


def shown(path: Path) -> str:
    """A path as a one-line error names it: relative to the working directory when it lies
    below it, else as it is. Two absolute paths (the profile's file and the file it names)
    could take a line past its 200 characters on their own."""
    here = Path.cwd()
    if here == Path(here.anchor):
        return str(path)  # "tmp/x" from / would read as a relative path: keep it whole
    try:
        return str(path.relative_to(here))
    except ValueError:
        return str(path)


def profiles_dir(option: str | Path | None = None) -> Path:
    """--profiles-dir, else $ORCHESTRATE_PROFILES_DIR, else ./profiles."""
    return Path(option or os.environ.get(PROFILES_DIR_ENV) or "profiles")


def cache_dir() -> Path:
    """orchestrator's per-user cache: ``$XDG_CACHE_HOME/orchestrator``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchestrator"


def rendered_dir() -> Path:
    """Build-time copies of Dockerfiles and bake overrides, kept to be read."""
    return cache_dir() / "rendered"


def facts_dir() -> Path:
    """Facts about engines and builders that cannot change until the engine restarts."""
    return cache_dir() / "facts"


def fact_file(kind: str, *key: str) -> Path:
    """Where one remembered fact of ``kind`` is kept, named by a digest of what it is
    about (an engine endpoint, a proxy, an index): the parts may hold credentials or
    slashes, which a file name must not."""
    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
    return facts_dir() / f"{kind}-{digest}.json"


def shared_lock_dir() -> Path:
    """Locks shared by every user on this machine (sticky and world-writable, like /tmp)."""
    chosen = os.environ.get(LOCK_DIR_ENV)
    if chosen:
        return Path(chosen)
    import tempfile  # noqa: PLC0415 - only where /run/lock is missing

    run_lock = Path("/run/lock")
    base = run_lock if run_lock.is_dir() else Path(tempfile.gettempdir())
    return base / "orchestrator"


def pip_lock_dir() -> Path:
    """The directory whose only file is the sitecustomize that locks older pips: mounted
    into runs, and its file handed to builds as a secret."""
    from orchestrator import resources  # noqa: PLC0415

    return Path(resources.__file__).resolve().parent / "pipcache"
