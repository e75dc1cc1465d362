"""State of the test's own: what orchestrator keeps on the machine (its cache, its locks,
its runtime files) and the engine it names, under the test's temporary directory, so no
test reads what another (or a real build) left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.facts.container import files_memo


def files_shared_here(shared: bool = True) -> None:
    """As an earlier run on this engine found it: the engine sees this machine's files (a
    local engine), so a run asks no container to find out (``facts/container.py``)."""
    memo = files_memo()
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"shared": shared}), encoding="utf-8")


@pytest.fixture
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user cache, lock directory, runtime directory, docker configuration and engine
    socket of the test's own (the fake engine answers; the socket only names it)."""
    socket = tmp_path / "docker.sock"
    socket.touch()
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("ORCHESTRATE_LOCK_DIR", str(tmp_path / "locks"))
    files_shared_here()
