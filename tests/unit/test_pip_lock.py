"""The sitecustomize that makes an older pip lock a shared cache, run by real interpreters
against a stand-in pip package (the real one is proven on the engines: test_run.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.paths import pip_lock_dir
from orchestrator.plan.wiring import PIP_SAFE_VERSION

HOLDER = """\
import os, sys, time
import pip._internal
print("in", time.monotonic(), flush=True)
sys.stderr.write("nocache " + os.environ.get("PIP_NO_CACHE_DIR", "-") + "\\n")
time.sleep(float(os.environ.get("HOLD", "0")))
print("out", time.monotonic(), flush=True)
"""

Start = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start(tmp_path: Path) -> Callable[..., subprocess.Popen[str]]:
    """Start a 'pip' of a given version that holds the cache for HOLD seconds."""

    def make(version: str, *args: str, hold: float = 0.0, **env: str) -> subprocess.Popen[str]:
        fake = tmp_path / f"pip-{version}"
        (fake / "pip" / "_internal").mkdir(parents=True, exist_ok=True)
        (fake / "pip" / "__init__.py").write_text(f"__version__ = {version!r}\n")
        (fake / "pip" / "_internal" / "__init__.py").write_text("")
        (fake / "holder.py").write_text(HOLDER)
        environment = {
            **os.environ,
            "PYTHONPATH": f"{pip_lock_dir()}:{fake}",
            "ORCHESTRATE_PIP_LOCK": str(tmp_path / "pip.lock"),
            "HOLD": str(hold),
            **env,
        }
        environment.pop("ORCHESTRATE_PIP_LOCK_HELD", None)
        environment.update(env)
        return subprocess.Popen(
            [sys.executable, str(fake / "holder.py"), *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return make


def entered(process: subprocess.Popen[str]) -> float:
    """Wait until the process holds the cache (its pip._internal import returned); when.

    The line is read from the descriptor a byte at a time: a buffered ``readline`` reads
    ahead, and when this process was late (a loaded machine) it also took the "out" line,
    which ``communicate`` (reading the descriptor) then never saw (a CI flake)."""
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(process.stdout.fileno(), 1)
        if not byte:
            break
        line += byte
    assert line.startswith(b"in "), line
    return float(line.split()[1])


def finish(process: subprocess.Popen[str]) -> tuple[float, float, str]:
    """When it got the cache (0 if already read), when it let go of it, and its stderr."""
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    times = {"in": "0", **dict(line.split(None, 1) for line in out.splitlines() if line)}
    assert "out" in times, f"stdout {out!r}, stderr {err!r}"  # seen missing once, under load
    return float(times["in"]), float(times["out"]), err


@pytest.mark.serial
def test_a_late_reader_still_sees_when_the_holder_let_go(start: Start) -> None:
    """The helpers above, when this process is late to read (as on a loaded machine)."""
    holder = start("23.0.1", "install", "x", hold=0.1)
    time.sleep(0.6)
    got = entered(holder)
    got_again, let_go, _ = finish(holder)
    assert got_again == 0, "entered() read the holder's first line, and only that"
    assert let_go - got >= 0.1, "the holder's last line: it let go after holding for 0.1 s"


def test_an_old_pip_waits_for_another_to_finish_with_the_cache(start: Start) -> None:
    first = start("23.0.1", "install", "x", hold=1.0)
    entered(first)
    second = start("23.0.1", "install", "x")
    _, first_out, first_err = finish(first)
    second_in, _, second_err = finish(second)
    assert second_in >= first_out, "the second pip used the cache while the first did"
    assert "waiting for another pip to finish with the shared cache" in second_err
    assert "waiting" not in first_err


def test_through_the_proxy_a_busy_cache_is_skipped_not_waited_for(start: Start) -> None:
    """Builds through the proxy (ORCHESTRATE_PIP_BUSY=skip): the second old pip runs at
    once without the cache, which its pip then sees as PIP_NO_CACHE_DIR."""
    first = start("23.0.1", "install", "x", hold=1.0)
    entered(first)
    second = start("23.0.1", "install", "x", ORCHESTRATE_PIP_BUSY="skip")
    _, second_out, second_err = finish(second)
    _, first_out, _ = finish(first)
    assert second_out < first_out, "the second pip did not wait for the first"
    assert "runs without it" in second_err
    assert "nocache 1" in second_err, "its pip will read PIP_NO_CACHE_DIR"


FREE = [
    ("25.3", ("install", "x"), {}),  # fixed: pypa/pip#13540
    ("26.0.1", ("download", "x"), {}),
    ("23.0.1", ("list",), {}),  # does not touch the cache
    ("23.0.1", ("install", "--no-cache-dir", "x"), {}),
    ("23.0.1", ("install", "x"), {"PIP_NO_CACHE_DIR": "1"}),
    ("23.0.1", ("install", "x"), {"ORCHESTRATE_PIP_LOCK_HELD": "123"}),  # its parent holds it
]


@pytest.mark.serial
def test_pips_that_need_no_lock_do_not_wait(start: Start) -> None:
    holder = start("23.0.1", "install", "x", hold=3.0)
    entered(holder)
    started = time.monotonic()
    free = [start(version, *args, **env) for version, args, env in FREE]
    for (version, args, env), process in zip(FREE, free, strict=True):
        _, _, err = finish(process)
        assert "waiting" not in err, (version, args, env)
    assert time.monotonic() - started < 2.0, "one of them waited for the holder"
    finish(holder)


def test_the_images_own_sitecustomize_still_runs(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("print('the image sitecustomize ran')\n")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; print(len([m for m in sys.meta_path]))"],
        env={
            **os.environ,
            "PYTHONPATH": f"{pip_lock_dir()}:{theirs}",
            "ORCHESTRATE_PIP_LOCK": str(tmp_path / "pip.lock"),
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.startswith("the image sitecustomize ran\n")
    assert result.stderr == ""


def test_without_the_variable_nothing_is_installed(tmp_path: Path) -> None:
    code = "import sys; print(any(type(f).__name__ == '_PipWatcher' for f in sys.meta_path))"
    environment = {**os.environ, "PYTHONPATH": str(pip_lock_dir())}
    environment.pop("ORCHESTRATE_PIP_LOCK", None)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.strip() == "False"


def test_the_plan_and_the_lock_agree_on_the_first_safe_pip() -> None:
    text = (pip_lock_dir() / "sitecustomize.py").read_text()
    safe = tuple(int(part) for part in PIP_SAFE_VERSION.split("."))
    assert f"SAFE_VERSION = {safe!r}" in text
    assert [p.name for p in pip_lock_dir().iterdir() if p.suffix == ".py"] == ["sitecustomize.py"]
