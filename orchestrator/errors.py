"""The one error type the entry point handles, and the exit codes it maps to.

Anything raised as a :class:`HandledError` is the user's to fix (or the machine's), so it
is printed as one line with no traceback. Every other exception is a bug in orchestrator
and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes documented in the README; scripts may rely on them."""

    OK = 0
    BAD_INPUT = 2
    ENGINE_UNAVAILABLE = 3
    BUILD_FAILED = 4
    PROXY_UNAVAILABLE = 5
    CONFLICT = 6
    INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
    TERMINATED = 143  # 128 + SIGTERM: `orchestrate run` was told to stop and stopped its container
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away, as `ls | head -1` ends


class HandledError(Exception):
    """An expected failure: one line for the user and the exit code that goes with it.

    ``detail`` is what only ``-v`` shows: the docker command line, Docker's own words.
    """

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(
        self, message: str, *, exit_code: ExitCode | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.detail = detail
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadInput(HandledError):
    """A profile, a path or an argument the user gave is wrong."""

    exit_code = ExitCode.BAD_INPUT


class EngineUnavailable(HandledError):
    """The Docker engine or one of its CLI plugins cannot be reached."""

    exit_code = ExitCode.ENGINE_UNAVAILABLE


class DockerRefused(HandledError):
    """The engine answered and refused an operation (a taken port, a name in use...)."""

    exit_code = ExitCode.ENGINE_UNAVAILABLE


class BuildFailed(HandledError):
    """Docker ran and reported failure; its own output already explained why."""

    exit_code = ExitCode.BUILD_FAILED


class ProxyUnavailable(HandledError):
    """The PyPI proxy was required but could not be started or did not become healthy."""

    exit_code = ExitCode.PROXY_UNAVAILABLE


class Conflict(HandledError):
    """A Docker object we would manage exists but is not ours, so we refuse to touch it."""

    exit_code = ExitCode.CONFLICT
