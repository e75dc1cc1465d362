"""The one place orchestrator runs a command that talks to the user's terminal.

Builds, bakes and containers stream their output straight to the terminal and can run
for minutes; python-on-whales' value (typed objects parsed from Docker's JSON) does not
apply to them, and importing it costs more than orchestrator's whole overhead budget
(docs/design.md). So they run here: logged, with the environment given for the command
alone (never logged), their exit code returned for the caller to judge, and Ctrl-C
passed on and waited for, so nothing is left running behind us.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence

from orchestrator.errors import EngineUnavailable
from orchestrator.log import get_logger

log = get_logger(__name__)
STOP_GRACE = 10.0  # seconds a command gets to stop after Ctrl-C before it is killed


def stream(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> int:
    """Run ``argv`` attached to our terminal and return its exit code."""
    log.info("running", command=shlex.join(argv))
    try:
        child = subprocess.Popen(
            list(argv), env={**os.environ, **(env or {})}, stdout=stdout, stderr=stderr
        )
    except FileNotFoundError:
        raise EngineUnavailable(f"{argv[0]} is not installed (run scripts/setup)") from None
    return wait(child)


def wait(child: subprocess.Popen[bytes]) -> int:
    """The child's exit code; on Ctrl-C it gets the signal too and time to stop."""
    try:
        return child.wait()
    except KeyboardInterrupt:
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
