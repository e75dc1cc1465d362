"""The one Docker call site: every call logged, failures typed and carrying the command."""

from __future__ import annotations

import pytest
import structlog
from python_on_whales.exceptions import DockerException

from orchestrator import engine
from orchestrator.errors import EngineUnavailable, ExitCode


def failing() -> None:
    raise DockerException(
        ["docker", "network", "create", "x"],
        1,
        b"",
        b"Error response from daemon: network with name x already exists\n",
    )


def test_call_logs_the_action() -> None:
    with structlog.testing.capture_logs() as logs:
        assert engine.call("add numbers", lambda a, b: a + b, 2, 3) == 5
    assert logs == [{"event": "docker", "action": "add numbers", "log_level": "debug"}]


def test_call_turns_a_docker_failure_into_one_handled_line() -> None:
    with pytest.raises(EngineUnavailable) as info:
        engine.call("create network", failing)
    message = info.value.message
    assert info.value.exit_code == ExitCode.ENGINE_UNAVAILABLE
    assert "\n" not in message
    assert "network with name x already exists" in message
    assert "docker network create x" in message


def test_reason_prefers_docker_error_over_help_hint() -> None:
    error = "docker: Error response from daemon: port is already allocated."
    assert engine._last_line(f"{error}\nSee 'docker run --help'.\n") == error
