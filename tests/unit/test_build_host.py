"""builds/ and facts/host.py in-process: inputs checked before side effects, files, facts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.builds import execute as execution
from orchestrator.builds.store import entry_path
from orchestrator.dockerfile import parse_text
from orchestrator.errors import BadInput
from orchestrator.facts import host
from orchestrator.facts.model import BuilderFacts
from orchestrator.plan.model import BuildOptions
from orchestrator.profiles import ProfileStore
from tests.conftest import write_profile


def test_an_unset_secret_variable_is_reported_before_anything_is_created(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nsecrets: {tok: {env: ORCH_UNSET_X}}\n")
    monkeypatch.delenv("ORCH_UNSET_X", raising=False)
    with pytest.raises(BadInput, match="environment variable ORCH_UNSET_X is not set"):
        host.check_inputs(ProfileStore(profiles_dir).resolve("app"))


def test_ssh_without_an_agent_is_reported_before_anything_is_created(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nssh: true\n")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(BadInput, match="field 'ssh'"):
        host.check_inputs(ProfileStore(profiles_dir).resolve("app"))


def test_write_file_is_atomic_readable_and_leaves_unchanged_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "Dockerfile"
    execution.write_file(path, "FROM x\n")
    assert path.read_text() == "FROM x\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    before = path.stat().st_mtime_ns
    execution.write_file(path, "FROM x\n")
    assert path.stat().st_mtime_ns == before
    assert list(path.parent.iterdir()) == [path], "no temporary file left behind"


def test_context_files_are_the_locks_uv_steps_read(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "other.lock").write_text("no\n")
    text = (
        "FROM python\nWORKDIR /app\n"
        "RUN --mount=type=bind,source=uv.lock,target=uv.lock uv sync --locked\n"
    )
    parsed = parse_text(tmp_path / "Dockerfile", text)
    assert host.read_context_files(parsed, tmp_path) == {"uv.lock": "version = 1\n"}


def test_a_missing_lock_is_no_fact(tmp_path: Path) -> None:
    parsed = parse_text(
        tmp_path / "Dockerfile", "FROM python\nCOPY uv.lock /\nRUN uv sync --frozen\n"
    )
    assert host.read_context_files(parsed, tmp_path) == {}


def test_gathered_facts_are_this_process_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "not-a-socket"))
    facts = host.gather_facts(builder=BuilderFacts(), render_dir=tmp_path)
    assert (facts.uid, facts.gid) == (os.getuid(), os.getgid())
    assert facts.ssh_auth_sock is None, "a path that is no socket is no agent"
    assert "PATH" in facts.env_names
    assert (
        facts.fresh_token
        != host.gather_facts(builder=BuilderFacts(), render_dir=tmp_path).fresh_token
    )


def test_context_files_include_the_requirement_files_installs_name(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("--index-url https://corp.example/simple\nx\n")
    (tmp_path / "constraints.txt").write_text("x<2\n")
    (tmp_path / "dev.txt").write_text("y\n")
    text = (
        "FROM python\nWORKDIR /app\nCOPY requirements.txt constraints.txt ./\n"
        "RUN pip install -r requirements.txt -c constraints.txt && echo dev.txt\n"
    )
    parsed = parse_text(tmp_path / "Dockerfile", text)
    assert set(host.read_context_files(parsed, tmp_path)) == {
        "requirements.txt",
        "constraints.txt",
    }


def test_the_engine_endpoint_is_the_one_the_docker_cli_chooses(tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text('{"currentContext": "ci-host"}')
    by_host = {"DOCKER_HOST": "tcp://10.0.0.2:2375", "DOCKER_CONFIG": str(config)}
    assert host.engine_endpoint(by_host).startswith("tcp://10.0.0.2:2375 ")
    by_context = {"DOCKER_CONTEXT": "other", "DOCKER_CONFIG": str(config)}
    assert host.engine_endpoint(by_context).startswith("other ")
    assert host.engine_endpoint({"DOCKER_CONFIG": str(config)}).startswith("context ci-host ")
    plain = {"DOCKER_CONFIG": str(tmp_path / "none")}
    assert host.engine_endpoint(plain) == f"default (config {tmp_path / 'none'})"


def test_a_plan_is_remembered_per_engine(tmp_path: Path) -> None:
    """Plans remembered for one engine are never used for another (issue 20)."""
    one = entry_path(tmp_path, "app", BuildOptions(), "unix:///var/run/docker.sock")
    other = entry_path(tmp_path, "app", BuildOptions(), "tcp://10.251.0.2:2375")
    assert one != other
    assert one == entry_path(tmp_path, "app", BuildOptions(), "unix:///var/run/docker.sock")


def test_the_remembered_path_imports_nothing_heavy() -> None:
    """A repeated build's modules import neither pydantic, PyYAML, the Dockerfile parser,
    python-on-whales nor structlog: each costs more than the whole overhead budget."""
    script = (
        "import sys\n"
        "from orchestrator.cli import commands\n"
        "from orchestrator.builds import execute, remembered\n"
        "import orchestrator.report\n"
        "heavy = ('pydantic', 'yaml', 'dockerfile', 'python_on_whales', 'structlog')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
