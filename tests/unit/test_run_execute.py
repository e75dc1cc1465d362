"""Carrying out `orchestrate run` against the fake engine: the fallback's cache volume
(created, given to the run's user, removed again when that fails), the secrets' private
files (their modes, and gone however the run ends), and the container stopped by name
on Ctrl-C and SIGTERM."""

from __future__ import annotations

import signal
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.errors import BadInput, Conflict, DockerRefused, ExitCode, HandledError
from orchestrator.plan.containers import (
    CACHE_LABEL,
    CACHE_TARGET,
    CacheVolume,
    RunPlan,
    Secret,
    SecretCopy,
    Wiring,
)
from orchestrator.proxy.spec import OWNER, OWNER_LABEL
from orchestrator.run import execute
from tests.support.engine import FakeEngine, absent, refused
from tests.support.world import World

NAME = "orchestrator-run-app-t0k"
ARGV = ("docker", "run", "--rm", "--name", NAME, "demo/app:1", "true")
VOLUME = "orchestrator-run-1234"
Interrupt = Callable[[], None] | None


@pytest.fixture(autouse=True)
def private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_LOCK_DIR", str(tmp_path / "locks"))


def wiring(cache: CacheVolume | None = None) -> Wiring:
    return Wiring(profile="app", mode="cache-volume" if cache else "off", decisions=(), cache=cache)


def plan(
    cache: CacheVolume | None = None,
    copies: tuple[SecretCopy, ...] = (),
    secret_dir: Path | None = None,
    remove: bool = True,
) -> RunPlan:
    return RunPlan(
        wiring=wiring(cache),
        image="demo/app:1",
        name=NAME,
        command=("true",),
        argv=ARGV,
        copies=copies,
        secret_dir=secret_dir,
        remove=remove,
        process_env={"ORCHESTRATE_INDEX_AUTH": "user:pw"},
    )


CACHE = CacheVolume(VOLUME, 1234, 2345, "demo/app:1")


# --- the command and its exit code -----------------------------------------------------------


def test_a_run_is_the_planned_command_and_its_exit_code_is_the_result() -> None:
    fake = FakeEngine(exit_codes=[3])
    with using(fake):
        assert execute.run(plan()) == 3
    assert fake.streamed == [ARGV]
    assert fake.calls[0].kwargs == {"env": {"ORCHESTRATE_INDEX_AUTH": "user:pw"}}


# --- the fallback's cache volume ------------------------------------------------------------


def test_a_missing_cache_volume_is_created_and_given_to_the_run_s_user_before_the_run() -> None:
    world = World()
    fake = world.engine({"container.run": None})
    with using(fake):
        execute.run(plan(CACHE))
    assert fake.verbs() == ["volume.exists", "volume.create", "container.run", "stream"]
    [created] = fake.made("volume.create")
    assert created.kwargs["labels"] == {OWNER_LABEL: OWNER, CACHE_LABEL: "1234:2345"}
    [chown] = fake.made("container.run")
    assert chown.args == ("demo/app:1", ["1234:2345", CACHE_TARGET])
    assert chown.kwargs["entrypoint"] == "chown"
    assert chown.kwargs["user"] == "0:0"
    assert chown.kwargs["networks"] == ["none"]
    assert chown.kwargs["remove"] is True
    assert chown.kwargs["volumes"] == [(VOLUME, CACHE_TARGET, "rw")]
    assert chown.kwargs["labels"] == {OWNER_LABEL: OWNER}


def test_our_cache_volume_is_used_as_it_is() -> None:
    fake = World(volumes={VOLUME: {OWNER_LABEL: OWNER}}).engine()
    with using(fake):
        execute.run(plan(CACHE))
    assert fake.verbs() == ["volume.exists", "volume.inspect", "stream"]


def test_a_cache_volume_that_is_not_ours_is_refused_before_the_run() -> None:
    fake = World(volumes={VOLUME: {}}).engine()
    with using(fake), pytest.raises(Conflict) as info:
        execute.run(plan(CACHE))
    assert info.value.message == (
        f"a volume named '{VOLUME}' exists but was not created by orchestrator; it is left "
        "alone: set cache_namespace in the profile"
    )
    assert fake.streamed == []


def test_a_missing_cache_volume_without_an_image_to_chown_it_is_bad_input() -> None:
    fake = World().engine()
    with using(fake), pytest.raises(BadInput, match="give --image"):
        execute.prepare(wiring(CacheVolume(VOLUME, 1234, 2345, None)))
    assert fake.verbs() == ["volume.exists"]


def test_a_failed_chown_removes_the_volume_again() -> None:
    world = World()
    fake = world.engine({"container.run": refused("Error: no such image demo/app:1", "run")})
    with using(fake), pytest.raises(DockerRefused):
        execute.run(plan(CACHE))
    assert fake.verbs()[-3:] == ["container.run", "version", "volume.remove"]
    assert world.volumes == {}
    assert fake.streamed == []


def test_a_chown_interrupted_by_ctrl_c_removes_the_volume_too() -> None:
    world = World()
    fake = world.engine({"container.run": KeyboardInterrupt()})
    with using(fake), pytest.raises(KeyboardInterrupt):
        execute.prepare(wiring(CACHE))
    assert world.volumes == {}


# --- secrets --------------------------------------------------------------------------------------


def test_secrets_are_private_files_during_the_run_and_gone_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_PASSWORD", "s3cret")
    source = tmp_path / "token.txt"
    source.write_bytes(b"t0ken\n")
    directory = tmp_path / "orchestrate-run-abc"
    copies = (
        SecretCopy(
            Secret("token", "/run/secrets/token", file=source), directory / "token", 0o400, None
        ),
        SecretCopy(
            Secret("password", "/run/secrets/password", variable="ORCH_TEST_PASSWORD"),
            directory / "password",
            0o444,
            None,
        ),
    )
    seen: dict[str, Any] = {}

    def look(argv: tuple[str, ...], on_interrupt: Interrupt) -> None:
        seen["dir"] = stat.S_IMODE(directory.stat().st_mode)
        seen["files"] = {
            p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode)) for p in directory.iterdir()
        }

    fake = FakeEngine(while_streaming=look)
    with using(fake):
        execute.run(plan(copies=copies, secret_dir=directory))
    assert seen == {
        "dir": 0o700,
        "files": {"token": (b"t0ken\n", 0o400), "password": (b"s3cret", 0o444)},
    }
    assert not directory.exists()


def test_secrets_are_removed_when_the_run_fails(tmp_path: Path) -> None:
    source = tmp_path / "token.txt"
    source.write_text("t0ken")
    directory = tmp_path / "secrets"
    own = (source.stat().st_uid, source.stat().st_gid)
    copy = SecretCopy(
        Secret("token", "/run/secrets/token", file=source), directory / "token", 0o400, own
    )

    def fail(argv: tuple[str, ...], on_interrupt: Interrupt) -> None:
        assert (directory / "token").stat().st_uid == own[0]
        raise DockerRefused("docker refused to run")

    with using(FakeEngine(while_streaming=fail)), pytest.raises(DockerRefused):
        execute.run(plan(copies=(copy,), secret_dir=directory))
    assert not directory.exists()


def test_a_secret_variable_that_is_unset_is_bad_input_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCH_TEST_UNSET", raising=False)
    directory = tmp_path / "secrets"
    copy = SecretCopy(
        Secret("pw", "/run/secrets/pw", variable="ORCH_TEST_UNSET"), directory / "pw", 0o444, None
    )
    fake = FakeEngine()
    with using(fake), pytest.raises(BadInput) as info:
        execute.run(plan(copies=(copy,), secret_dir=directory))
    assert info.value.message == "environment variable ORCH_TEST_UNSET is not set"
    assert fake.streamed == []
    assert not directory.exists()


def test_an_unreadable_secret_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    copy = SecretCopy(
        Secret("token", "/run/secrets/token", file=missing), tmp_path / "s" / "t", 0o400, None
    )
    with using(FakeEngine()), pytest.raises(BadInput) as info:
        execute.run(plan(copies=(copy,), secret_dir=tmp_path / "s"))
    assert info.value.message == f"{missing}: cannot read secret 'token': No such file or directory"


# --- stopping: Ctrl-C and SIGTERM ----------------------------------------------------------------


def ctrl_c(argv: tuple[str, ...], on_interrupt: Interrupt) -> None:
    """What ``process.wait`` does on Ctrl-C: the caller's stop first, then the interrupt."""
    assert on_interrupt is not None
    on_interrupt()
    raise KeyboardInterrupt


def test_ctrl_c_stops_the_container_by_name_and_waits_until_it_is_gone() -> None:
    sigint_during_stop: list[Any] = []

    def stop(name: str, time: int) -> None:
        sigint_during_stop.append(signal.getsignal(signal.SIGINT))

    fake = FakeEngine({"container.stop": stop, "container.exists": False}, while_streaming=ctrl_c)
    with using(fake), pytest.raises(KeyboardInterrupt):
        execute.run(plan())
    assert [(c.verb, c.args) for c in fake.calls[1:]] == [
        ("container.stop", (NAME,)),
        ("container.exists", (NAME,)),
    ]
    assert fake.made("container.stop")[0].kwargs == {"time": execute.STOP_SECONDS}
    if threading.current_thread() is threading.main_thread():
        assert sigint_during_stop == [signal.SIG_IGN], "a second Ctrl-C cannot cut it short"


def test_a_kept_container_is_stopped_and_not_waited_for() -> None:
    fake = FakeEngine({"container.stop": None}, while_streaming=ctrl_c)
    with using(fake), pytest.raises(KeyboardInterrupt):
        execute.run(plan(remove=False))
    assert fake.verbs() == ["stream", "container.stop"]


def test_a_container_already_gone_needs_no_stopping() -> None:
    fake = FakeEngine({"container.stop": absent("container", NAME)})
    with using(fake):
        execute.stop(NAME, removed=True)
    assert fake.verbs() == ["container.stop"]


def test_a_refused_stop_is_a_warning_not_a_second_error() -> None:
    fake = FakeEngine({"container.stop": refused("cannot stop container", "stop"), "version": "28"})
    with using(fake):
        execute.stop(NAME, removed=True)
    assert fake.verbs() == ["container.stop", "version"]


def test_a_removed_container_is_waited_for_until_the_engine_says_it_is_gone() -> None:
    still = iter([True, False])
    fake = FakeEngine({"container.stop": None, "container.exists": lambda name: next(still)})
    with using(fake):
        execute.stop(NAME, removed=True)
    assert fake.verbs() == ["container.stop", "container.exists", "container.exists"]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers are the main thread's",
)
def test_sigterm_stops_the_container_and_exits_143(tmp_path: Path) -> None:
    source = tmp_path / "token.txt"
    source.write_text("t0ken")
    directory = tmp_path / "secrets"
    copy = SecretCopy(
        Secret("token", "/run/secrets/token", file=source), directory / "token", 0o400, None
    )
    before = signal.getsignal(signal.SIGTERM)

    def sigterm(argv: tuple[str, ...], on_interrupt: Interrupt) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler), "the run handles SIGTERM"
        try:
            handler(signal.SIGTERM, None)
        except KeyboardInterrupt:
            assert on_interrupt is not None
            on_interrupt()  # as process.wait does
            raise

    fake = FakeEngine({"container.stop": None, "container.exists": False}, while_streaming=sigterm)
    with using(fake), pytest.raises(HandledError) as info:
        execute.run(plan(copies=(copy,), secret_dir=directory))
    assert info.value.exit_code == ExitCode.TERMINATED
    assert info.value.message == f"terminated (SIGTERM); container {NAME} was stopped"
    assert fake.made("container.stop")[0].args == (NAME,)
    assert not directory.exists()
    assert signal.getsignal(signal.SIGTERM) == before, "the handler is put back"
