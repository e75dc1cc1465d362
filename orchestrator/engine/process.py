"""The one place orchestrator runs a Docker command without python-on-whales.

Builds, bakes and containers stream their output straight to the terminal and can run
for minutes; python-on-whales' value (typed objects parsed from Docker's JSON) does not
apply to them, and importing it costs more than orchestrator's whole overhead budget
(docs/design.md). So they run here: logged, with the environment given for the command
alone (never logged), their exit code returned for the caller to judge, and Ctrl-C
passed on and waited for, so nothing is left running behind us.

Short commands run here too (``capture``): `docker buildx du`, which python-on-whales
has no method for, on the fallback's every build (``client.build_cache_usage``), and
`docker image inspect` of a build's base images (``facts/image.py``), which a remembered
build asks again: importing python-on-whales would cost more than either call.

Where logs are JSON lines (``--log-format json``, asked for), a command's stderr
(BuildKit's progress) is carried line by line as JSON events, so a program that reads
stderr as JSON lines never meets a line that is not one. Otherwise it passes untouched:
people read it, in a terminal or a CI log.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO

from orchestrator import log as logs
from orchestrator.errors import DockerRefused, EngineUnavailable
from orchestrator.urls import redact

log = logs.get_logger(__name__)
STOP_GRACE = 10.0  # seconds a command gets to stop after Ctrl-C before it is killed
CAPTURE_TIMEOUT = 60.0  # seconds a short command (``capture``) may take


def stream(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    interactive: bool = False,
    on_interrupt: Callable[[], None] | None = None,
) -> int:
    """Run ``argv`` attached to our terminal and return its exit code, as a shell gives it.

    ``interactive`` commands (a container with a TTY) keep stderr as it is, always.
    ``on_interrupt`` runs first on Ctrl-C: what the command started may outlive it (a
    container outlives its `docker run` client), so the caller stops that by its name.
    """
    log.debug("running", command=redact(shlex.join(argv)))
    wrap = logs.uses_json() and not interactive
    try:
        with _interrupt_deferred() as interrupted:
            child = subprocess.Popen(  # argv is built as data, never through a shell
                list(argv),
                env={**os.environ, **(env or {})},
                stderr=subprocess.PIPE if wrap else None,
            )
    except FileNotFoundError:
        raise EngineUnavailable(f"{argv[0]} is not installed (run scripts/setup)") from None
    if interrupted:
        _interrupt(child, on_interrupt)
    carrier = None
    if wrap and child.stderr is not None:
        carrier = threading.Thread(target=_carry, args=(child.stderr, argv[0]), daemon=True)
        carrier.start()
    code = wait(child, on_interrupt)
    if carrier is not None:
        carrier.join(timeout=STOP_GRACE)
    return shell_code(code)


@contextmanager
def _interrupt_deferred() -> Iterator[list[int]]:
    """Ctrl-C while the child is being started is noted, not raised: raised inside
    ``Popen``, it would leave a started child that nobody waits for or stops. The note
    (a non-empty list) is acted on once the child is ours. Only the main thread gets
    signals; elsewhere this does nothing."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(child: subprocess.Popen[bytes], on_interrupt: Callable[[], None] | None) -> None:
    """A Ctrl-C that came while the child started: handled as one that came after."""
    if on_interrupt is not None:
        on_interrupt()
    stop(child)
    raise KeyboardInterrupt


def shell_code(returncode: int) -> int:
    """128+N for a command killed by signal N, as shells report it and as `docker run`
    reports its container's, rather than Popen's -N (which exits as 256-N): the docker
    client killed by SIGPIPE, its reader gone (`orchestrate run ... | head -1`), is 141."""
    return 128 - returncode if returncode < 0 else returncode


def capture(action: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A short command's output, logged as python-on-whales' calls are (``client.call``);
    a failure is ``DockerRefused`` with the command and Docker's text in its detail.
    ``env`` is added to this process's environment for the command, and never logged
    (values passed by name, `docker exec -e NAME`, stay out of every argv and log)."""
    log.debug("docker", action=action, command=shlex.join(argv))
    try:
        done = subprocess.run(  # argv is built as data, never through a shell
            list(argv),
            capture_output=True,
            text=True,
            check=False,
            timeout=CAPTURE_TIMEOUT,
            env={**os.environ, **env} if env else None,
        )
    except FileNotFoundError:
        raise EngineUnavailable(f"{argv[0]} is not installed (run scripts/setup)") from None
    if done.returncode != 0:
        detail = f"command: {shlex.join(argv)}\n{done.stderr.strip()}"
        raise DockerRefused(
            f"docker refused to {action}: exit status {done.returncode}", detail=detail
        )
    return done.stdout


def _carry(pipe: IO[bytes], program: str) -> None:
    """Each line the command writes to stderr, as one JSON event on our stderr."""
    for raw in iter(pipe.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        event = {"event": "output", "program": program, "line": line, "level": "info"}
        sys.stderr.write(json.dumps(event) + "\n")
        sys.stderr.flush()


def wait(child: subprocess.Popen[bytes], on_interrupt: Callable[[], None] | None = None) -> int:
    """The child's exit code; on Ctrl-C it gets the signal too and time to stop."""
    try:
        return child.wait()
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()
        stop(child)
        raise


def stop(child: subprocess.Popen[bytes]) -> None:
    """Interrupt, then terminate, then kill: whatever ends the child first."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if child.poll() is not None:
            return
        child.send_signal(sig)
        try:
            child.wait(timeout=STOP_GRACE if sig != signal.SIGKILL else None)
        except subprocess.TimeoutExpired:
            continue
