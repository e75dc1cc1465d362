"""Shared fixtures: the repository's paths and a profiles directory to write into."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
