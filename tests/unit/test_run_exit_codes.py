"""`orchestrate run`'s exit code is its command's, as a shell reports it: 128+N for one
killed by signal N, 141 when the reader of its output went away (README, exit codes).

No engine: a stand-in `docker` on PATH plays the docker client (the profile's proxy is
off, so `docker run` is the only Docker command a run makes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.engine.api import DockerEngine
from tests.conftest import write_profile
from tests.support.cli import run_cli

OFF = "context: ../ctx\ntags: [demo/app:1]\nca_bundle: off\nproxy: off\n"


@pytest.fixture
def docker_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the stand-in `docker` lives; write its script with ``plays``."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def plays(directory: Path, script: str) -> None:
    docker = directory / "docker"
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)


@pytest.mark.parametrize(("script", "code"), [("exit 3", 3), ("kill -TERM $$", 143)])
def test_the_command_s_code_is_ours_as_a_shell_reports_it(
    profiles_dir: Path,
    docker_does: Path,
    capsys: pytest.CaptureFixture[str],
    script: str,
    code: int,
) -> None:
    write_profile(profiles_dir, "app", OFF)
    plays(docker_does, script)
    # the real engine: the stand-in docker on PATH plays the command
    ran = run_cli(
        "--profiles-dir", str(profiles_dir), "run", "app", "--", "true", engine=DockerEngine()
    )
    assert ran.code == code, ran.stderr


def test_a_reader_that_went_away_gives_141(profiles_dir: Path, docker_does: Path) -> None:
    """A real pipe: the docker client, writing the command's output to it, is killed by
    SIGPIPE once `head` has gone."""
    write_profile(profiles_dir, "app", OFF)
    plays(docker_does, "exec yes line")
    command = (
        f"{sys.executable} -m orchestrator --profiles-dir {profiles_dir} run app -- yes "
        "| head -1; echo status=${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.splitlines() == ["line", "status=141"], result.stderr
