"""Output people read (issue 19): lines for people unless JSON is asked for, even where
stderr is not a terminal (a CI log), and Docker's output passed through untouched."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from orchestrator import log
from orchestrator.engine import process
from tests.conftest import write_profile
from tests.support.cli import run_cli

OFF = "context: ../ctx\ntags: [demo/app:1]\nca_bundle: off\nproxy: off\n"
ESC = "\x1b"


@pytest.fixture(autouse=True)
def default_logs() -> Iterator[None]:
    yield
    log.configure()


def json_objects(text: str) -> list[str]:
    """The lines of ``text`` that are JSON objects."""
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(line)
    return found


@pytest.mark.parametrize("chosen", [[], ["--log-format", "auto"], ["--log-format", "console"]])
def test_off_a_terminal_logs_are_plain_lines(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str], chosen: list[str]
) -> None:
    write_profile(profiles_dir, "app", OFF)
    ran = run_cli(*chosen, "--profiles-dir", str(profiles_dir), "env", "app")
    assert ran.code == 0, ran.stderr
    assert "orchestrate: info: env profile=app mode=off reason=" in ran.stderr
    assert json_objects(ran.stderr) == []
    assert ESC not in ran.stderr


def test_off_a_terminal_an_error_is_one_plain_line(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = run_cli("--profiles-dir", str(profiles_dir), "build", "nothing", "--dry-run")
    assert ran.code == 2
    assert ran.stderr == (
        f"orchestrate: error: {profiles_dir}: no profile named 'nothing' (available: none)\n"
    )


def test_json_is_asked_for_and_every_stderr_line_is_an_object(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_profile(profiles_dir, "app", OFF)
    args = ("--log-format", "json", "--profiles-dir", str(profiles_dir), "-v", "env", "app")
    ran = run_cli(*args)
    assert ran.code == 0, ran.stderr
    lines = ran.stderr.splitlines()
    assert lines
    assert json_objects(ran.stderr) == lines
    assert {"event": "env", "profile": "app", "mode": "off"}.items() <= json.loads(
        next(line for line in lines if '"env"' in line)
    ).items()


@pytest.mark.parametrize("chosen", ["auto", "console"])
def test_docker_output_passes_untouched_unless_json_is_asked_for(
    capfd: pytest.CaptureFixture[str], chosen: log.LogFormat
) -> None:
    """BuildKit's progress, colour codes and all, as the program wrote it."""
    log.configure(chosen)
    written = "#1 [internal] load build definition\n\x1b[34mnot json\x1b[0m\n"
    code = process.stream(["sh", "-c", f"printf '{written}' >&2"])
    assert code == 0
    assert capfd.readouterr().err == written


def test_with_json_docker_output_is_carried_as_events(capfd: pytest.CaptureFixture[str]) -> None:
    log.configure("json")
    assert process.stream(["sh", "-c", "echo '#1 [internal] load' >&2"]) == 0
    err = capfd.readouterr().err
    assert [json.loads(line)["line"] for line in err.splitlines()] == ["#1 [internal] load"]


def test_a_plain_line_names_the_level_and_quotes_what_is_not_one_word(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log.configure("auto", verbose=True)
    logger = log.get_logger("test")
    logger.warning("builder must be prepared", command="docker buildx create", tries=2)
    logger.debug("handled error", detail="docker said\nno", code=f"{ESC}[31m")
    assert capsys.readouterr().err.splitlines() == [
        'orchestrate: warning: builder must be prepared command="docker buildx create" tries=2',
        'orchestrate: debug: handled error code="\\u001b[31m"',
        "  detail:",
        "    docker said",
        "    no",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_console_has_colour_and_no_json() -> None:
    terminal = _Terminal()
    with redirect_stderr(terminal):  # stderr is a terminal, as capsys makes it a file
        log.configure("auto")
        log.get_logger("test").warning("builder must be prepared", command="docker")
    text = terminal.getvalue()
    assert "builder must be prepared" in text
    assert ESC in text
    assert json_objects(text) == []
