"""orchestrator: keep an older pip from corrupting a pip cache that other containers share.

`orchestrate run` mounts this directory read-only and puts it first on PYTHONPATH when pip's
cache is on a named volume that concurrent runs share (the fallback when the proxy cannot
serve). Before 25.3, pip moves a wheel it built into its cache with a plain copy when its
temporary directory is on another file system (pypa/pip#13540), as a volume always is, so
a concurrent pip can read half a wheel; pip 23.3 also wrote cache entries in two
non-atomic parts (pypa/pip#12361). uv locks its cache itself; pip does not.

So a pip older than 25.3 that is about to use the cache (install, download, wheel, cache)
takes an exclusive lock on the file named by ORCHESTRATE_PIP_LOCK, beside the cache, and
holds it until it exits, as BuildKit's ``sharing=locked`` cache mounts would. Builds get
this file as a secret too: their pip cache mounts are shared, so that newer pips and, through
the proxy, busy older ones (ORCHESTRATE_PIP_BUSY=skip) need not wait for each other. The
pips it starts itself (build dependencies) inherit the right to the cache instead of
waiting for their parent. Anything that goes wrong here is reported and ignored: a pip
without the lock is what the user would have had without orchestrator.

The image's own sitecustomize, if it has one, is run afterwards, so nothing it does is lost.
Python 3.7 or newer.
"""

from __future__ import annotations

import os
import sys

LOCK_VARIABLE = "ORCHESTRATE_PIP_LOCK"
HELD_VARIABLE = "ORCHESTRATE_PIP_LOCK_HELD"
# "skip": when another pip holds the cache, run without it rather than wait. Set where a
# proxy serves every file (builds through it), so the cache saves little and a wait costs
# the builds' parallelism; unset (the fallback), the cache is what keeps files from being
# downloaded twice, and a pip waits for it.
BUSY_VARIABLE = "ORCHESTRATE_PIP_BUSY"
SAFE_VERSION = (25, 3)
CACHE_COMMANDS = frozenset({"install", "download", "wheel", "cache"})
_held: list[int] = []  # the lock's descriptor, kept open (and locked) until the process exits


def _say(message: str) -> None:
    sys.stderr.write(f"orchestrator: {message}\n")
    sys.stderr.flush()


def _version(text: str) -> tuple[int, ...]:
    """``23.0.1`` -> (23, 0, 1); ``25.3.dev0`` -> (25, 3, 0)."""
    parts = []
    for piece in text.split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    return tuple(parts)


def _needed() -> bool:
    if os.environ.get(HELD_VARIABLE):
        return False  # started by a pip that holds the lock: it uses the cache on its behalf
    if os.environ.get("PIP_NO_CACHE_DIR", "").lower() in ("1", "true", "yes", "on"):
        return False
    args = set(sys.argv[1:])
    if "--no-cache-dir" in args or not args & CACHE_COMMANDS:
        return False
    version = getattr(sys.modules.get("pip"), "__version__", "0")
    return _version(str(version)) < SAFE_VERSION


def _lock() -> None:
    path = os.environ.get(LOCK_VARIABLE)
    if not path or not _needed():
        return
    try:
        import fcntl  # noqa: PLC0415 - only pip processes pay for it

        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except (ImportError, OSError) as exc:
        _say(f"pip runs without the shared cache's lock ({exc})")
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if os.environ.get(BUSY_VARIABLE) == "skip":
                os.close(descriptor)
                os.environ["PIP_NO_CACHE_DIR"] = "1"  # read when pip parses its options
                _say("another pip has the shared cache: this one runs without it")
                return
            _say("waiting for another pip to finish with the shared cache")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
    except OSError as exc:
        os.close(descriptor)
        _say(f"pip runs without the shared cache's lock ({exc})")
        return
    _held.append(descriptor)
    os.environ[HELD_VARIABLE] = str(os.getpid())


class _PipWatcher:
    """A meta path finder that finds nothing: the first import of pip's internals (by the
    ``pip`` script, ``python -m pip`` or a venv's pip alike) takes the lock, then it retires."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pip._internal":
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            try:
                _lock()
            except Exception as exc:  # never break pip over its lock
                _say(f"pip runs without the shared cache's lock ({exc})")


def _chain() -> None:
    """Run the next sitecustomize on sys.path, the one this module hides."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        directory = os.path.abspath(entry or os.curdir)
        candidate = os.path.join(directory, "sitecustomize.py")
        if directory == here or not os.path.isfile(candidate):
            continue
        import importlib.util  # noqa: PLC0415

        spec = importlib.util.spec_from_file_location("_image_sitecustomize", candidate)
        if spec is not None and spec.loader is not None:
            try:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            except Exception as exc:  # as Python reports a failing one
                _say(f"error in {candidate}: {type(exc).__name__}: {exc}")
        return


if os.environ.get(LOCK_VARIABLE):
    sys.meta_path.insert(0, _PipWatcher())
_chain()
