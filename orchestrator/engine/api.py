"""The engine seam: every Docker call orchestrator makes goes through one ``Engine``.

The entry point chooses it (``cli.main(argv, engine=...)``, the real ``DockerEngine`` by
default) and holds it for the command's length with ``using``; the rest of the code asks
``current()``. An engine has three doors, the three ways orchestrator talks to Docker:

- ``client()``: python-on-whales' ``DockerClient`` (or anything with the same nouns and
  verbs), for the short typed calls (``client.call`` logs them and types their failures);
- ``stream(argv)``: a long command attached to the terminal (a build, a bake, `docker run`);
- ``capture(action, argv)``: a short command's output (`docker buildx du`, `docker image
  inspect`), where python-on-whales has no method or its import costs more than the call.

Tests hand ``cli.main`` a fake that scripts answers and records calls
(``tests/support/engine.py``), as tox's tests replace its executor: nothing is patched.
The engine is held process-wide, not per context, because the decision's helper threads
(a proxy started beside a build, the fallback's weighing) must reach the same one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol


class Engine(Protocol):
    """What orchestrator needs of Docker."""

    def client(self) -> Any:
        """python-on-whales' DockerClient, or a stand-in with the same nouns and verbs."""
        ...

    def stream(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        interactive: bool = False,
        on_interrupt: Callable[[], None] | None = None,
    ) -> int:
        """Run a command attached to the terminal; its exit code."""
        ...

    def capture(
        self, action: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> str:
        """A short command's output (``env`` added to its environment, never logged);
        ``DockerRefused`` when it fails."""
        ...


class DockerEngine:
    """The real engine: python-on-whales for calls, ``process`` for commands."""

    def __init__(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        """Made on first use: python-on-whales is imported only when Docker is needed
        (0.4 s, more than a remembered build's whole overhead, see log.py)."""
        if self._client is None:
            from python_on_whales import DockerClient  # noqa: PLC0415

            self._client = DockerClient()
        return self._client

    def stream(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        interactive: bool = False,
        on_interrupt: Callable[[], None] | None = None,
    ) -> int:
        from orchestrator.engine import process  # noqa: PLC0415

        return process.stream(argv, env=env, interactive=interactive, on_interrupt=on_interrupt)

    def capture(
        self, action: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> str:
        from orchestrator.engine import process  # noqa: PLC0415

        return process.capture(action, argv, env)


class _Held:
    """The engine in use, and the real one made when nothing else was chosen."""

    def __init__(self) -> None:
        self.stack: list[Engine] = []
        self.default: Engine | None = None
        self.lock = threading.Lock()


_held = _Held()


def current() -> Engine:
    """The engine the entry point chose; the real one if it chose none (a library use)."""
    with _held.lock:
        if _held.stack:
            return _held.stack[-1]
        if _held.default is None:
            _held.default = DockerEngine()
        return _held.default


@contextmanager
def using(engine: Engine) -> Iterator[Engine]:
    """Make ``engine`` the current one until the block ends."""
    with _held.lock:
        _held.stack.append(engine)
    try:
        yield engine
    finally:
        with _held.lock:
            _held.stack.remove(engine)
