"""One lock per proxy name and engine, shared by every user of this machine: creation
and removal of a proxy are serialised across users and processes."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator import paths
from orchestrator.errors import ProxyUnavailable

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


class ProxyBusy(ProxyUnavailable):
    """Another process holds the proxy's lock (it creates or starts it) past the wait."""


@contextmanager
def creation_lock(name: str, timeout: float | None = None) -> Iterator[None]:
    """Serialise find-or-create for every user of this machine and engine.

    The lock file lives in a world-writable sticky directory, not in a home directory, so
    two users share it; it is opened read-only (flock needs no write access), so a file
    another user created still locks. With ``timeout``, a lock another process holds
    longer (while it creates the proxy) is a ProxyUnavailable, not a wait.
    """
    fd = _open_lock(_lock_path(name))
    try:
        _acquire(fd, name, timeout)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def engine_key() -> str:
    """The engine, named the same whichever way a user reaches it: DOCKER_HOST unset and
    set to the default socket (through /var/run or /run) are one engine, one lock."""
    host = os.environ.get("DOCKER_HOST", "").strip() or DEFAULT_DOCKER_HOST
    if host.startswith("unix://"):
        return "unix://" + os.path.realpath(host.removeprefix("unix://"))
    return host


def _lock_path(name: str) -> Path:
    directory = paths.shared_lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    mode = directory.stat()
    if mode.st_mode & 0o1777 != 0o1777 and os.getuid() in (mode.st_uid, 0):
        directory.chmod(0o1777)
    key = hashlib.sha256(f"{engine_key()}\0{name}".encode()).hexdigest()[:16]
    return directory / f"proxy-{key}.lock"


def _open_lock(path: Path, opener: Callable[..., int] = os.open) -> int:
    """Open the lock file, creating it if need be, without O_CREAT on a file that exists:
    with fs.protected_regular, O_CREAT on another user's file in a sticky directory is
    refused, even to root. A directory another user made a moment ago may not be
    world-writable yet (they chmod it just after): that is retried for a moment.
    ``opener``: ``os.open``, or a test's witness of the flags."""
    end = time.monotonic() + 2.0
    while True:
        try:
            return opener(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        try:
            fd = opener(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            continue  # another process created it between the two opens
        except PermissionError as exc:
            if time.monotonic() > end:
                raise ProxyUnavailable(
                    f"cannot create the proxy's lock in {path.parent} ({exc.strerror}): "
                    f"make it world-writable and sticky (chmod 1777 {path.parent})"
                ) from None
            time.sleep(0.02)
            continue
        os.fchmod(fd, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        return fd


def _acquire(fd: int, name: str, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if time.monotonic() >= end:
            raise ProxyBusy(
                f"another orchestrate is creating or starting proxy '{name}'; "
                "this build does not wait for it"
            )
        time.sleep(0.02)
