"""`orchestrate` run in this process, as pipx's tests run pipx (``run_pipx_cli``): the
entry point itself, with its output captured and its exit code returned, and the fake
engine handed in where Docker would answer. A handful of tests still start a real
process, where the behaviour is the process's own (signals, pipes, start-up imports)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from orchestrator import log
from orchestrator.cli import main
from orchestrator.engine.api import Engine
from tests.support.engine import FakeEngine


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


def run_cli(*args: str, engine: Engine | None = None) -> Ran:
    """``orchestrate ARGS`` in process; the engine is a fake that answers nothing unless
    one is given, so a command that was not meant to ask Docker fails the test."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args), engine=engine if engine is not None else FakeEngine())
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        finally:
            log.configure()  # no later test inherits this command's log format
    return Ran(code, out.getvalue(), err.getvalue())
