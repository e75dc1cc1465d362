"""The one place orchestrator calls Docker through python-on-whales.

Every call is logged with what it does. Absence is reported with python-on-whales' own
typed errors (``NoSuchContainer`` and kin), which callers catch as types. Any other
failure becomes a handled error: ``EngineUnavailable`` when the engine does not answer,
``DockerRefused`` when it answered no; the docker command line and Docker's full text
go into the error's detail, shown with ``-v``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar, cast

from orchestrator.engine.api import current
from orchestrator.errors import DockerRefused, EngineUnavailable, HandledError
from orchestrator.log import get_logger

if TYPE_CHECKING:
    from python_on_whales import DockerClient

T = TypeVar("T")
log = get_logger(__name__)
REASON_LIMIT = 120  # characters of Docker's reason kept in the one-line message
SETUP_HINT = "start dockerd, or run scripts/setup"


def client() -> DockerClient:
    """The current engine's client (``api.current``): the real one, made on first use, or
    the stand-in a test handed to the entry point."""
    return cast("DockerClient", current().client())


def absent_errors() -> tuple[type[Exception], ...]:
    """python-on-whales' errors for an object that does not exist, caught as types."""
    from python_on_whales.exceptions import (  # noqa: PLC0415
        NoSuchContainer,
        NoSuchImage,
        NoSuchNetwork,
        NoSuchVolume,
    )

    return (NoSuchContainer, NoSuchImage, NoSuchNetwork, NoSuchVolume)


def call(action: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run one python-on-whales call, logged, with Docker's failure made a handled error."""
    from python_on_whales.exceptions import DockerException  # noqa: PLC0415

    log.debug("docker", action=action)
    try:
        return fn(*args, **kwargs)
    except absent_errors():
        raise
    except DockerException as exc:
        raise classify(action, exc) from None
    except FileNotFoundError:
        raise EngineUnavailable("the docker command is not installed (run scripts/setup)") from None


def classify(action: str, exc: Exception) -> HandledError:
    """Unreachable or refused, told apart by asking the engine, not by reading the text."""
    stderr = str(getattr(exc, "stderr", "") or "")
    command = shlex.join(getattr(exc, "docker_command", None) or ["docker"])
    detail = f"command: {command}\n{stderr.strip()}"
    if not reachable():
        return EngineUnavailable(
            f"cannot reach the Docker engine to {action} ({SETUP_HINT})", detail=detail
        )
    code = getattr(exc, "return_code", "?")
    reason = shorten(last_line(stderr) or f"exit status {code}")
    return DockerRefused(f"docker refused to {action}: {reason}", detail=detail)


def reachable() -> bool:
    """Whether the engine answers at all: `docker version` fails without a server."""
    from python_on_whales.exceptions import DockerException  # noqa: PLC0415

    try:
        client().version()
    except (DockerException, FileNotFoundError):
        return False
    return True


def ensure_engine() -> None:
    """Fail fast, in one line, when no engine answers or buildx is missing."""
    if not reachable():
        raise EngineUnavailable(f"cannot reach the Docker engine ({SETUP_HINT})")
    if not client().buildx.is_installed():
        raise EngineUnavailable("the docker buildx plugin is missing (run scripts/setup)")


def last_line(text: str | None) -> str:
    """Docker's own reason: its error line, not the `--help` hint that follows it."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1]


def shorten(text: str, limit: int = REASON_LIMIT) -> str:
    """Docker's reason trimmed for a one-line message; the end says the most."""
    text = text.removeprefix("docker: ").removeprefix("Error response from daemon: ")
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def execute(action: str, container: str, command: list[str]) -> str:
    """A command's output in a running container (`docker exec`), as text."""
    docker = client()
    return str(call(action, docker.container.execute, container, command) or "")


def run_in(action: str, container: str, command: list[str], passed: Mapping[str, str]) -> str:
    """A command's output in a running container, with ``passed`` in its environment by
    name only (`docker exec -e NAME`, the value from this process's environment), so that
    no argv (``ps`` on this machine, the engine's exec record) and no log holds a value:
    the engine-side client's requests may carry an index's credentials.

    Run by the engine's ``capture``, not python-on-whales: a repeated build that asks its
    proxy from the engine's side runs one exec before its build (0.07 s to the remote
    engine here) and no other Docker call that needs python-on-whales, whose import took
    0.17-0.2 s of each such build."""
    names = [part for name in passed for part in ("-e", name)]
    argv = ["docker", "exec", *names, container, *command]
    return current().capture(action, argv, dict(passed))


def build_cache_usage(builder: str | None = None) -> str:
    """`docker buildx du --verbose`, cache mounts only: one block per record, its size and
    what it is. The filter is BuildKit's own (0.8 has it): on a stock engine with a used
    build cache it took the call from 0.59 s (59,745 lines) to 0.16 s (1,947 lines).

    Run by the engine's ``capture`` (``process.capture``), not python-on-whales: it has no
    method for this (``buildx.disk_usage`` is a stub), and the fallback's cache report runs
    it on every build, most often one whose plan was remembered and so had not imported
    python-on-whales (0.3 s): that import, on the thread that weighs beside the build,
    made the first weighing end after the build and the second wait for it (0.55-0.7 s of
    a warm fallback build on Docker 28, in the benchmark)."""
    argv = ["docker", "buildx", "du", "--verbose", "--filter", "type=exec.cachemount"]
    argv += ["--builder", builder] if builder else []
    return current().capture("read the build cache's usage", argv)
