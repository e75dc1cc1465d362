"""The terminal call site: exit codes returned, stderr carried as JSON where logs are JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import log
from orchestrator.engine import process
from orchestrator.errors import DockerRefused, EngineUnavailable


@pytest.fixture
def json_logs() -> Iterator[None]:
    log.configure("json")
    yield
    log.configure("auto")


def test_exit_code_is_returned_and_stderr_carried_as_json_lines(
    json_logs: None, capfd: pytest.CaptureFixture[str]
) -> None:
    code = process.stream(
        ["sh", "-c", "echo '#1 [internal] load' >&2; echo 'not json' >&2; exit 3"]
    )
    assert code == 3
    lines = [line for line in capfd.readouterr().err.splitlines() if line]
    records = [json.loads(line) for line in lines]  # every line parses
    carried = [r["line"] for r in records if r["event"] == "output"]
    assert carried == ["#1 [internal] load", "not json"]


def test_interactive_commands_keep_their_stderr(
    json_logs: None, capfd: pytest.CaptureFixture[str]
) -> None:
    assert process.stream(["sh", "-c", "echo raw >&2"], interactive=True) == 0
    assert "raw\n" in capfd.readouterr().err


def test_a_missing_program_is_one_handled_line() -> None:
    with pytest.raises(EngineUnavailable, match="is not installed"):
        process.stream(["orchestrator-no-such-program"])


@pytest.mark.serial
def test_ctrl_c_stops_the_child_before_orchestrate_ends(tmp_path: Path) -> None:
    """Run the real entry point's call site in a child Python and interrupt it: the
    command gets the interrupt (its trap leaves a mark) before orchestrate ends, also when
    the Ctrl-C lands while the command is still being started. The sleep outlives its
    shell; it writes to none of the pipes read here, or reading stderr would wait for it."""
    mark = tmp_path / "stopped"
    script = (
        "from orchestrator.engine import process\n"
        "process.stream(['sh', '-c', "
        f'\'trap "echo stopped > {mark}; exit 7" INT; echo ready; '
        "sleep 30 >/dev/null 2>&1 & wait'])\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    parent.send_signal(signal.SIGINT)
    parent.wait(timeout=20)
    assert time.monotonic() - started < 15
    assert b"KeyboardInterrupt" in (parent.stderr.read() if parent.stderr else b"")
    assert mark.read_text() == "stopped\n", "the command never got the interrupt"


def test_a_ctrl_c_while_a_command_starts_is_held_until_it_is_ours() -> None:
    """Raised inside Popen, it would leave a started child nobody stops."""
    with process._interrupt_deferred() as interrupted:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes, soon after the signal
    assert interrupted == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_short_command_gives_its_output_and_fails_as_a_typed_error() -> None:
    assert process.capture("say hello", ["sh", "-c", "echo hello; echo noise >&2"]) == "hello\n"
    with pytest.raises(DockerRefused) as refused:
        process.capture("read the build cache's usage", ["sh", "-c", "echo no >&2; exit 1"])
    assert str(refused.value) == "docker refused to read the build cache's usage: exit status 1"
    assert refused.value.detail.endswith("\nno")
    with pytest.raises(EngineUnavailable):
        process.capture("say hello", ["/nonexistent/docker", "version"])


def test_weighing_the_build_cache_needs_no_python_on_whales() -> None:
    """The fallback's report weighs on every build; importing python-on-whales for it cost
    0.3 s beside the build (docs/benchmarks.md)."""
    code = (
        "import sys\n"
        "from orchestrator.engine import client\n"
        "try:\n"
        "    client.build_cache_usage('no-such-builder-here')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "print('python_on_whales' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "False", done.stdout


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGKILL, 137), (signal.SIGPIPE, 141)]
)
def test_a_command_killed_by_a_signal_gives_128_plus_its_number(sent: int, code: int) -> None:
    """As a shell reports it (and `docker run` its container's), not Popen's -N, which
    `sys.exit` turned into 256-N."""
    assert process.stream(["sh", "-c", f"kill -{int(sent)} $$"]) == code
