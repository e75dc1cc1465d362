"""ruff (check and format), mypy in strict mode, the import layers (import-linter) and
shellcheck are part of the suite, so CI enforces them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# A #! line that runs a POSIX shell or bash, directly or through env.
SHELL_LINE = re.compile(rb"#!\s*\S*/(?:env\s+)?(?:ba|da)?sh\b")


def run_checker(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """A checker run over the repository; its output is the assertion's message."""
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """A checker installed in this environment, run as a module."""
    return run_checker([sys.executable, "-m", *args])


def test_ruff_is_clean() -> None:
    result = run_tool("ruff", "check", "orchestrator", "tests", "bench", "devsupport")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run_tool("ruff", "format", "--check", "orchestrator", "tests", "bench", "devsupport")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    """The contracts in pyproject.toml: nothing imports a layer above its own, and
    planning imports nothing that reads files, runs processes or asks the engine."""
    result = run_checker([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"])
    assert result.returncode == 0, result.stdout + result.stderr


def shell_scripts() -> list[Path]:
    """Every shell script of the repository, tracked or new (what .gitignore leaves out,
    such as .venv's activate scripts, is not ours): by its name or its #! line."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr.decode()
    paths = [REPO / name for name in listed.stdout.decode().split("\0") if name]
    corpus = REPO / "tests" / "corpus"  # real projects' files (and stand-ins), not ours
    return sorted(
        path
        for path in paths
        if path.is_file() and _is_shell(path) and not path.is_relative_to(corpus)
    )


def _is_shell(path: Path) -> bool:
    if path.suffix in (".sh", ".bash"):
        return True
    with path.open("rb") as file:
        return SHELL_LINE.match(file.readline(200)) is not None


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: scripts/setup installs it (Debian's package)"
    scripts = shell_scripts()
    named = {str(path.relative_to(REPO)) for path in scripts}
    assert {"scripts/setup", "scripts/engines", "scripts/test", ".ci/run"} <= named, named
    result = run_checker([shellcheck, *map(str, scripts)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_is_tracked_and_shipped() -> None:
    """A directory of modules under orchestrator/ is a package with an ``__init__.py``
    that git tracks (an ignored one, as ``build/`` is by .gitignore, would be missing from
    a clean clone) and that setuptools ships: a namespace package is not found by
    ``packages.find`` and would be missing from `pipx install`."""
    directories = {p.parent for p in (REPO / "orchestrator").rglob("*.py")}
    resources = REPO / "orchestrator" / "resources"  # below it: files shipped as data
    directories = {d for d in directories if "__pycache__" not in d.parts}
    directories = {d for d in directories if resources not in d.parents}
    tracked = subprocess.run(
        ["git", "ls-files", "orchestrator"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for directory in directories:
        init = directory / "__init__.py"
        assert str(init.relative_to(REPO)) in tracked, f"{init} is not tracked by git"
