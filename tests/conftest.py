"""Shared fixtures: the repository's paths and a profiles directory to write into."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal gives it, for the tests that interrupt orchestrate.

    A shell without job control starts a background command with SIGINT ignored, and an
    ignored signal stays ignored in every process started below it: `( scripts/test & )`
    made the children of the Ctrl-C tests deaf to it (seen here). A handler, unlike an
    ignored disposition, is reset to the default in a child at exec."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    """An empty profiles directory next to a minimal build context."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    directory = tmp_path / "profiles"
    directory.mkdir()
    return directory


def write_profile(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path
