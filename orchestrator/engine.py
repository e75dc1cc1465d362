"""The one place orchestrator talks to Docker, always through python-on-whales.

Every call is logged with what it does, and a failure becomes a typed, handled error that
carries the docker command line, so the entry point can print one useful line.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from orchestrator.errors import BuildFailed, EngineUnavailable
from orchestrator.log import get_logger

T = TypeVar("T")
log = get_logger(__name__)

_client: DockerClient | None = None


def client() -> DockerClient:
    global _client  # noqa: PLW0603 - one client per process, created on first use
    if _client is None:
        _client = DockerClient()
    return _client


def call(action: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run one python-on-whales call, logged, with Docker's failure made a handled error."""
    log.debug("docker", action=action)
    try:
        return fn(*args, **kwargs)
    except DockerException as exc:
        detail = _last_line(exc.stderr) or f"exit status {exc.return_code}"
        raise EngineUnavailable(
            f"docker failed to {action}: {detail} (command: {shlex.join(exc.docker_command)})"
        ) from None


def ensure_engine() -> None:
    """Fail fast, in one line, when no engine answers or buildx is missing."""
    docker = client()
    try:
        docker.version()  # three times faster than `docker info`, and fails the same way
    except DockerException as exc:
        detail = _last_line(exc.stderr) or "no answer"
        raise EngineUnavailable(
            f"cannot reach the Docker engine: {detail} (start dockerd, or run scripts/setup)"
        ) from None
    except FileNotFoundError:
        raise EngineUnavailable("the docker command is not installed (run scripts/setup)") from None
    if not _buildx_plugin_found() and not docker.buildx.is_installed():
        raise EngineUnavailable("the docker buildx plugin is missing (run scripts/setup)")


_PLUGIN_DIRS = (
    Path.home() / ".docker" / "cli-plugins",
    Path("/usr/local/lib/docker/cli-plugins"),
    Path("/usr/local/libexec/docker/cli-plugins"),
    Path("/usr/lib/docker/cli-plugins"),
    Path("/usr/libexec/docker/cli-plugins"),
)


def _buildx_plugin_found() -> bool:
    """The docker CLI's own plugin directories; asking `docker buildx` costs a process."""
    return any((directory / "docker-buildx").is_file() for directory in _PLUGIN_DIRS)


def run_streaming(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Run a docker command with its output going straight to the user's terminal.

    ``argv`` starts with ``docker``; it is swapped for python-on-whales' configured
    client command so that the command printed by ``--dry-run`` is the command run.
    ``env`` adds variables for the command alone (values that feed BuildKit secrets);
    they are never logged.
    """
    full = [str(part) for part in (*client().client_config.docker_cmd, *argv[1:])]
    log.info("running", command=shlex.join(full))
    try:
        run(full, capture_stdout=False, capture_stderr=False, env=dict(env or {}))
    except DockerException as exc:
        raise BuildFailed(
            f"docker exited with status {exc.return_code}: {shlex.join(full)}"
        ) from None


def _last_line(text: str | None) -> str:
    """Docker's own reason: its error line, not the `--help` hint that follows it."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1]
