"""ruff (check and format) and mypy in strict mode are part of the suite, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff_is_clean() -> None:
    result = run_tool("ruff", "check", "orchestrator", "tests", "bench", "devsupport")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run_tool("ruff", "format", "--check", "orchestrator", "tests", "bench", "devsupport")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
