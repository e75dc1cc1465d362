"""The one place the benchmark reaches orchestrator: its command line, as a user does.

Nothing of ``orchestrator`` is imported: what is timed is the program a user runs, start-up
included, and the benchmark cannot lean on internals that a refactoring moves.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BUILD_TIMEOUT = 900.0
ORCHESTRATE = str(Path(sys.executable).with_name("orchestrate"))


@dataclass
class Orchestrate:
    """``orchestrate`` with the benchmark's profiles directory and environment; every
    process it starts is listed until it ends, so that a clean-up can end it."""

    profiles: Path
    logs: Path
    env: Mapping[str, str]
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)
    count: int = 0

    def argv(self, *args: str, log_format: str = "console") -> list[str]:
        return [
            ORCHESTRATE,
            "--log-format",
            log_format,
            "--profiles-dir",
            str(self.profiles),
            *args,
        ]

    def log_path(self, name: str) -> Path:
        self.count += 1
        return self.logs / f"{self.count:03d}-{name}.log"

    def start(
        self,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        stdout: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start one command, its output into ``log`` (stdout into ``stdout`` if given), in
        its own process group: ending the group ends its docker buildx too, which cancels
        the build."""
        with log.open("wb") as out, contextlib.ExitStack() as stack:
            out.write((shlex.join(argv) + "\n").encode())
            out.flush()
            separate = stack.enter_context(stdout.open("wb")) if stdout else None
            process = subprocess.Popen(
                list(argv),
                stdout=separate or out,
                stderr=out,
                env=dict(env or self.env),
                start_new_session=True,
            )
        self.running.append(process)
        return process

    def finish(self, process: subprocess.Popen[bytes], timeout: float = BUILD_TIMEOUT) -> int:
        """Wait for the process without polling: ``Popen.wait(timeout=...)`` sleeps up to
        50 ms between looks, which would add as much to every timing. A timer ends the
        process group instead, when it outlives ``timeout``."""
        timer = threading.Timer(timeout, _end_group, (process,))
        timer.start()
        try:
            code = process.wait()
        finally:
            timer.cancel()
        self.running.remove(process)
        return code

    def timed(
        self,
        name: str,
        *args: str,
        log_format: str = "console",
        env: Mapping[str, str] | None = None,
    ) -> tuple[float, int, Path]:
        """Run ``orchestrate ARGS``; (seconds, exit code, log)."""
        log = self.log_path(name)
        started = time.perf_counter()
        process = self.start(self.argv(*args, log_format=log_format), log, env)
        code = self.finish(process)
        return time.perf_counter() - started, code, log

    def check(self, name: str, *args: str) -> str:
        """Run ``orchestrate ARGS`` and return what it printed on stdout; a failure stops
        the benchmark."""
        log = self.log_path(name)
        stdout = log.with_suffix(".out")
        stdout.unlink(missing_ok=True)
        code = self.finish(self.start(self.argv(*args), log, stdout=stdout))
        if code != 0:
            raise RuntimeError(f"orchestrate {' '.join(args)} failed ({code}), see {log}")
        return stdout.read_text(errors="replace")


def _end_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
