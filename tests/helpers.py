"""The command line run in this process, as pipx's tests run theirs (``run_pipx_cli``).

The real entry point (``orchestrator.cli.main``) with its exit code and what it printed,
without a Python start-up for each test: a subprocess is for what needs a real process
(signals, pipes).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator import log
from orchestrator.cli import main


@dataclass(frozen=True)
class Ran:
    """How `orchestrate` ended: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str


def run_cli(capture: pytest.CaptureFixture[str], *args: str) -> Ran:
    """``orchestrate ARGS``, ended as ``main`` ends it (``SystemExit``); the logging it set
    up is put back to the default, so no later test inherits this one's format."""
    capture.readouterr()  # only what this command printed
    try:
        with pytest.raises(SystemExit) as ended:
            main(list(args))
    finally:
        log.configure()
    out, err = capture.readouterr()
    code = ended.value.code
    return Ran(code if isinstance(code, int) else int(code is not None), out, err)
