"""The one Docker call site: every call logged, failures typed, absence kept as a type."""

from __future__ import annotations

import pytest
import structlog
from python_on_whales.exceptions import DockerException, NoSuchContainer

from orchestrator import log
from orchestrator.engine import client as engine
from orchestrator.engine.api import current, using
from orchestrator.errors import DockerRefused, EngineUnavailable, ExitCode
from tests.support.engine import Call, FakeEngine, absent, refused

PORT_TAKEN = (
    "docker: Error response from daemon: driver failed programming external connectivity "
    "on endpoint orchestrator-proxpi (0123456789abcdef0123456789abcdef0123456789abcdef): "
    "Bind for 127.0.0.1:5000 failed: port is already allocated.\nSee 'docker run --help'.\n"
)


def failing(stderr: str = PORT_TAKEN) -> None:
    raise DockerException(["docker", "run", "--name", "x", "img"], 125, b"", stderr.encode())


def test_call_logs_the_action_at_debug_level() -> None:
    log.configure("json", verbose=True)
    log._structlog()  # configured before capture_logs takes over the processors
    try:
        with structlog.testing.capture_logs() as logs:
            assert engine.call("add numbers", lambda a, b: a + b, 2, 3) == 5
    finally:
        log.configure("json", verbose=False)
    assert logs == [{"event": "docker", "action": "add numbers", "log_level": "debug"}]


def test_a_refusal_is_a_refusal_in_one_short_line() -> None:
    answering = FakeEngine({"version": "28.5"})  # the engine answers: it refused
    with using(answering), pytest.raises(DockerRefused) as info:
        engine.call("start the proxy", failing)
    message = info.value.message
    assert info.value.exit_code == ExitCode.ENGINE_UNAVAILABLE
    assert message.startswith("docker refused to start the proxy: ")
    assert "\n" not in message
    assert len(message) < 200
    assert message.endswith("port is already allocated.")
    assert "docker run --name x img" in info.value.detail  # shown with -v only
    assert "docker run" not in message


def test_an_unreachable_engine_is_told_apart_by_asking_it() -> None:
    silent = FakeEngine({"version": refused("Cannot connect to the Docker daemon", "version")})
    with using(silent), pytest.raises(EngineUnavailable) as info:
        engine.call("start the proxy", failing)
    assert "cannot reach the Docker engine to start the proxy" in info.value.message
    assert silent.verbs() == ["version"]


def test_the_engine_the_entry_point_chose_is_the_one_called() -> None:
    """The seam: every python-on-whales call reaches the engine handed to the entry
    point, named by noun and verb, with its arguments."""
    fake = FakeEngine({"container.inspect": absent("container", "px")})
    with using(fake), pytest.raises(NoSuchContainer):
        engine.call("inspect container", engine.client().container.inspect, "px")
    assert fake.calls == [Call("container.inspect", ("px",))]
    assert current() is not fake  # held for the block only


def test_engine_check_says_which_part_is_missing() -> None:
    no_buildx = FakeEngine({"version": "28.5", "buildx.is_installed": False})
    with using(no_buildx), pytest.raises(EngineUnavailable, match="buildx plugin is missing"):
        engine.ensure_engine()
    no_daemon = FakeEngine({"version": refused("no daemon", "version")})
    with using(no_daemon), pytest.raises(EngineUnavailable, match="cannot reach the Docker"):
        engine.ensure_engine()


def test_absence_stays_a_python_on_whales_type() -> None:
    def absent() -> None:
        raise NoSuchContainer(["docker", "inspect", "x"], 1, b"", b"Error: No such container: x")

    with pytest.raises(NoSuchContainer):
        engine.call("inspect container", absent)


def test_reason_prefers_docker_error_over_help_hint() -> None:
    error = "docker: Error response from daemon: port is already allocated."
    assert engine.last_line(f"{error}\nSee 'docker run --help'.\n") == error
    assert engine.shorten(error) == "port is already allocated."
    assert len(engine.shorten("x" * 500)) == engine.REASON_LIMIT
