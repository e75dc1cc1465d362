"""`orchestrate run` and `orchestrate env` run in process against the fake engine: what
they ask Docker (the image and network only when the fallback may be chosen), the
container's exit code as orchestrate's, the fallback's cache volume made before the run,
and what each format of `env` prints."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from orchestrator.plan.containers import CACHE_TARGET
from tests.conftest import write_profile
from tests.support.cli import Ran, run_cli
from tests.support.engine import FakeEngine, inspected, not_inspected
from tests.support.world import World

OFF = "context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\nproxy: off\n"
AUTO = "context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\ncache_namespace: ns\nuser: host\n"
IMAGE = inspected("demo/app:1", env={"PATH": "/usr/bin", "PYTHONPATH": "/app"}, user="app")


pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py


def orchestrate(profiles_dir: Path, *args: str, engine: FakeEngine) -> Ran:
    return run_cli(
        "--profiles-dir", str(profiles_dir), "--log-format", "console", *args, engine=engine
    )


def fallback(world: World | None = None) -> FakeEngine:
    """An engine where the run's image is present and the proxy's network is not."""
    fake = (world or World()).engine({"container.run": None})
    fake.captured.update(IMAGE)
    return fake


# --- run --------------------------------------------------------------------------------------


def test_a_run_without_the_proxy_asks_docker_nothing_but_the_run(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    fake = FakeEngine(exit_codes=[7])
    ran = orchestrate(profiles_dir, "run", "app", "--", "sh", "-c", "exit 7", engine=fake)
    assert ran.code == 7, ran.stderr
    [argv] = fake.streamed
    assert argv[:3] == ("docker", "run", "--rm")
    assert argv[-4:] == ("demo/app:1", "sh", "-c", "exit 7")
    assert fake.verbs() == ["stream"]
    assert ran.lines[-1] == "orchestrate: cache: none used (proxy: off)"


def test_a_fallback_run_makes_the_cache_volume_before_the_run(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", AUTO)
    world = World()
    fake = fallback(world)
    ran = orchestrate(profiles_dir, "run", "app", "--no-proxy", "--", "pip", "list", engine=fake)
    assert ran.code == 0, ran.stderr
    assert fake.verbs() == [
        "capture",  # the image: its PYTHONPATH follows the pip lock's
        "network.exists",  # the proxy's: whether a run could join it
        "volume.exists",
        "volume.create",
        "container.run",  # the chown, as root
        "stream",
    ]
    [volume] = world.volumes
    [argv] = fake.streamed
    assert f"type=volume,source={volume},target={CACHE_TARGET}" in " ".join(argv)
    assert ran.lines[-1] == "orchestrate: cache: the run's cache volume is not measured"


def test_a_fallback_run_with_secrets_removes_their_files_after(
    profiles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_TOKEN", "t0ken")
    write_profile(profiles_dir, "app", OFF + "secrets:\n  token: {env: ORCH_TEST_TOKEN}\n")
    seen: list[str] = []

    def look(argv: tuple[str, ...], on_interrupt: object) -> None:
        seen.extend(p.read_text() for p in (tmp_path / "runtime").rglob("token"))

    fake = FakeEngine(while_streaming=look)
    ran = orchestrate(profiles_dir, "run", "app", "--", "true", engine=fake)
    assert ran.code == 0, ran.stderr
    assert seen == ["t0ken"]
    assert list((tmp_path / "runtime").iterdir()) == []


def test_a_run_s_dry_run_prints_the_command_and_runs_nothing(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    fake = FakeEngine()
    ran = orchestrate(profiles_dir, "run", "app", "--dry-run", "--", "true", engine=fake)
    assert ran.code == 0, ran.stderr
    assert "docker run --rm --name orchestrator-run-app-" in ran.stdout
    assert fake.calls == []


def test_a_fallback_dry_run_only_looks(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", AUTO)
    fake = World().engine({"container.run": None})
    fake.captured.update(not_inspected("demo/app:1"))
    ran = orchestrate(profiles_dir, "run", "app", "--no-proxy", "--dry-run", "--json", engine=fake)
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["mode"] == "cache-volume"
    assert fake.verbs() == ["capture", "network.exists"]


# --- env --------------------------------------------------------------------------------------


def test_env_for_the_shell_exports_the_wiring_and_makes_the_volume_it_mounts(
    profiles_dir: Path,
) -> None:
    write_profile(profiles_dir, "app", AUTO)
    world = World()
    ran = orchestrate(profiles_dir, "env", "app", "--no-proxy", engine=fallback(world))
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "# orchestrate env app: mode cache-volume (--no-proxy forces the fallback)"
    assert f"export PIP_CACHE_DIR={CACHE_TARGET}/pip" in lines
    assert "export PYTHONPATH=/opt/orchestrator/python:/app" in lines, "the image's follows"
    [volume] = world.volumes
    assert f"# mount: type=volume,source={volume},target={CACHE_TARGET}" in lines


def test_env_for_docker_is_one_line_of_options(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", AUTO)
    ran = orchestrate(
        profiles_dir, "env", "app", "--format", "docker", "--no-proxy", engine=fallback()
    )
    assert ran.code == 0, ran.stderr
    words = shlex.split(ran.stdout)
    assert "--mount" in words
    assert any(w.startswith("type=volume,source=ns-run-") for w in words)


def test_env_leaves_out_a_variable_secret_where_only_files_mount_and_says_so(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_TOKEN", "t0ken")
    write_profile(profiles_dir, "app", OFF + "secrets:\n  token: {env: ORCH_TEST_TOKEN}\n")
    ran = orchestrate(profiles_dir, "env", "app", "--format", "docker", engine=FakeEngine())
    assert ran.code == 0, ran.stderr
    assert "t0ken" not in ran.stdout
    assert "secret left out" in ran.stderr
    assert "ORCH_TEST_TOKEN" in ran.stderr


def test_env_as_json_names_the_cache_volume(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", AUTO)
    ran = orchestrate(
        profiles_dir, "env", "app", "--format", "json", "--no-proxy", engine=fallback()
    )
    assert ran.code == 0, ran.stderr
    wiring = json.loads(ran.stdout)
    assert (wiring["profile"], wiring["mode"]) == ("app", "cache-volume")


def test_env_for_compose_wires_the_services_named(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    ran = orchestrate(
        profiles_dir, "env", "app", "--format", "compose", "--service", "web", engine=FakeEngine()
    )
    assert ran.code == 0, ran.stderr
    assert list(yaml.safe_load(ran.stdout)["services"]) == ["web"]


def test_env_for_compose_with_a_broken_compose_file_is_one_line(
    profiles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(profiles_dir, "app", OFF)
    (tmp_path / "compose.yaml").write_text("services: [unclosed\n")
    monkeypatch.chdir(tmp_path)
    ran = orchestrate(profiles_dir, "env", "app", "--format", "compose", engine=FakeEngine())
    assert ran.code == 2
    assert ran.lines[-1].startswith(
        f"orchestrate: error: {tmp_path / 'compose.yaml'}: invalid YAML ("
    )


def test_env_for_compose_leaves_a_service_s_own_user(
    profiles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv's example service says user: root; the override used to replace it."""
    write_profile(profiles_dir, "app", OFF + "user: {name: app, uid: 4000, gid: 4000}\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web: {image: demo/app:1, user: root}\n  worker: {image: demo/app:1}\n"
    )
    monkeypatch.chdir(tmp_path)
    ran = orchestrate(profiles_dir, "env", "app", "--format", "compose", engine=FakeEngine())
    assert ran.code == 0, ran.stderr
    services = yaml.safe_load(ran.stdout)["services"]
    assert "user" not in services["web"]
    assert services["worker"]["user"] == "4000:4000"
    assert "# web: keeps its own user 'root'" in ran.stdout
