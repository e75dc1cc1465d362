"""Many users, many processes, one proxy; and Docker's answers kept as their types.

Two users (root, and a non-root member of the docker group made here with useradd and
removed after) run `orchestrate proxy up` at the same moment, 4 processes each, 20 rounds,
the proxy removed between rounds: every run succeeds and exactly one healthy proxy is left.
They share the creation lock (/run/lock/orchestrator, not a home directory). Processes that
do not share it (each its own lock directory) rely on the engine alone: a container name
taken while creating means somebody else made it, and theirs is used.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import docker
from python_on_whales.exceptions import NoSuchContainer, NoSuchImage, NoSuchNetwork, NoSuchVolume

from devsupport.upstream_container import Upstream
from orchestrator.engine import client as engine
from orchestrator.errors import DockerRefused
from orchestrator.proxy.probe import served
from tests.integration.conftest import PIP_DOCKERFILE, free_port, remove_proxy
from tests.integration.outage_support import measure

ROUNDS = 20
PER_USER = 4
NO_LOCK_ROUNDS = 2
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class User:
    """Who runs orchestrate: their uid, groups and environment."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    env: dict[str, str]
    python: tuple[str, ...] = (sys.executable,)

    def run(self, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        as_root = self.uid == os.getuid()
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=300,
            check=False,
            cwd="/",
            user=None if as_root else self.uid,
            group=None if as_root else self.gid,
            extra_groups=None if as_root else self.groups,
        )


def _plugin_dir() -> Path:
    """Where the engine in use keeps the buildx and compose plugins for its clients."""
    config = os.environ.get("DOCKER_CONFIG")
    if config and (Path(config) / "cli-plugins").is_dir():
        return Path(config) / "cli-plugins"
    return Path("/usr/libexec/docker/cli-plugins")


def _base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "DOCKER_HOST", "LANG", "ORCHESTRATE_BASE_IMAGE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    config = home / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    for plugin in _plugin_dir().glob("docker-*"):
        (config / "cli-plugins" / plugin.name).symlink_to(plugin.resolve())
    cache = home / "cache"
    cache.mkdir()
    return {
        **env,
        "HOME": str(home),
        "DOCKER_CONFIG": str(config),
        "XDG_CACHE_HOME": str(cache),
        # The repository and this environment's packages, for a Python outside it.
        "PYTHONPATH": os.pathsep.join(
            [str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    """World-readable: profiles and contexts both users read (pytest's tmp is root's 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="orchestrator-test-users-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def users(shared_dir: Path) -> Iterator[list[User]]:
    """root, and a new non-root member of the docker group (removed after)."""
    assert os.getuid() == 0, "the two-user test creates a user: run it as root"
    name = f"orch-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
        check=True,
    )
    try:
        entry = pwd.getpwnam(name)
        docker_gid = grp.getgrnam("docker").gr_gid
        homes = []
        for who in ("root", name):
            home = shared_dir / f"home-{who}"
            home.mkdir()
            homes.append(home)
        env_root = _base_env(homes[0])
        env_user = _base_env(homes[1])
        subprocess.run(["chown", "-R", f"{name}:{name}", str(homes[1])], check=True)
        user = User(name, entry.pw_uid, entry.pw_gid, (docker_gid,), env_user)
        user = replace(user, python=tuple(interpreter(user)))
        yield [User("root", 0, 0, (), env_root), user]
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture(scope="module")
def shared_proxy(shared_dir: Path, upstream: Upstream, network: str) -> Iterator[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    config = {
        "name": f"orchestrator-test-users-{run}",
        "network": network,
        "port": free_port(),
        "cache_volume": f"orchestrator-test-userscache-{run}",
        "index": upstream.host_url,
        "health_project": "orch-demo-app",
        "ca_bundle": "off",
        "startup_timeout": 60,
    }
    context = shared_dir / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(PIP_DOCKERFILE)
    profiles = shared_dir / "profiles"
    profiles.mkdir()
    (profiles / "app.yaml").write_text(
        json.dumps({"context": str(context), "ca_bundle": "off", "proxy": config})
    )
    for path in (context, profiles):
        path.chmod(0o755)
        for item in path.iterdir():
            item.chmod(0o644)
    yield config
    remove_proxy(str(config["name"]), str(config["cache_volume"]))


def interpreter(user: User) -> list[str]:
    """The Python the user runs orchestrator with: this one, or, when it lives where they
    cannot read it (pyenv under /root), the system's Python of the same version, given
    this environment's packages (pure Python, or built for the same CPython ABI)."""
    try:
        if user.run([sys.executable, "-c", "pass"]).returncode == 0:
            return [sys.executable]
    except PermissionError:
        pass
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    assert system.is_file(), f"{user.name} cannot run {sys.executable}, and there is no {system}"
    return [str(system)]


def _up(user: User, profiles: Path, **env: str) -> subprocess.CompletedProcess[str]:
    argv = [*user.python, "-m", "orchestrator", "--log-format", "json"]
    return user.run(
        [*argv, "--profiles-dir", str(profiles), "proxy", "up", "--profile", "app"], **env
    )


def _one_healthy_proxy(config: dict[str, Any]) -> None:
    for name in (config["name"], f"{config['name']}-backend"):
        found = docker.container.list(all=True, filters=[("name", f"^{name}$")])
        assert len(found) == 1, name
        assert found[0].state.running, name
    checked = served(f"http://127.0.0.1:{config['port']}/index/", config["health_project"], 5)
    assert checked.ok, checked.reason


def _remove_containers(config: dict[str, Any]) -> None:
    for name in (config["name"], f"{config['name']}-backend"):
        with suppress(NoSuchContainer):
            docker.container.remove(name, force=True)


def test_two_users_four_processes_each_twenty_rounds_leave_one_healthy_proxy(
    users: list[User], shared_proxy: dict[str, Any], shared_dir: Path
) -> None:
    profiles = shared_dir / "profiles"
    runs = [user for user in users for _ in range(PER_USER)]
    failures: list[str] = []
    started = time.monotonic()
    for round_number in range(ROUNDS):
        _remove_containers(shared_proxy)
        with ThreadPoolExecutor(len(runs)) as pool:
            results = list(pool.map(lambda user: (user, _up(user, profiles)), runs))
        failures += [
            f"round {round_number}, {user.name}: exit {r.returncode}: {r.stderr[-800:]}"
            for user, r in results
            if r.returncode != 0
        ]
        _one_healthy_proxy(shared_proxy)
    measure(
        "two users",
        rounds=ROUNDS,
        processes=len(runs),
        failed_runs=len(failures),
        seconds=round(time.monotonic() - started, 1),
    )
    assert failures == []


def test_processes_that_share_no_lock_rely_on_the_engine(
    users: list[User], shared_proxy: dict[str, Any], shared_dir: Path
) -> None:
    """Each process its own lock directory: only the engine's unique names keep it one proxy."""
    root = users[0]
    profiles = shared_dir / "profiles"
    locks = [shared_dir / f"locks-{i}" for i in range(PER_USER)]
    failures: list[str] = []
    used_theirs = 0
    for round_number in range(NO_LOCK_ROUNDS):
        _remove_containers(shared_proxy)
        with ThreadPoolExecutor(len(locks)) as pool:
            results = list(
                pool.map(lambda lock: _up(root, profiles, ORCHESTRATE_LOCK_DIR=str(lock)), locks)
            )
        failures += [
            f"round {round_number}: exit {r.returncode}: {r.stderr[-800:]}"
            for r in results
            if r.returncode != 0
        ]
        used_theirs += sum("made by another process" in r.stderr for r in results)
        _one_healthy_proxy(shared_proxy)
    measure(
        "no shared lock",
        rounds=NO_LOCK_ROUNDS,
        processes=len(locks),
        failed_runs=len(failures),
        used_theirs=used_theirs,
    )
    assert failures == []
    assert used_theirs > 0, "no run found its container name taken: the race was not run"


# --- typed engine errors ----------------------------------------------------------------------


def test_absence_is_python_on_whales_own_type_on_this_engine() -> None:
    client = engine.client()
    missing = f"orchestrator-test-missing-{uuid.uuid4().hex[:8]}"
    cases: list[tuple[type[Exception], Callable[[str], object]]] = [
        (NoSuchContainer, client.container.inspect),
        (NoSuchImage, client.image.inspect),
        (NoSuchNetwork, client.network.inspect),
        (NoSuchVolume, client.volume.inspect),
    ]
    for error, inspect in cases:
        with pytest.raises(error):
            engine.call("inspect", inspect, missing)


def test_a_refusal_is_a_refusal_not_an_unreachable_engine(network: str) -> None:
    name = f"orchestrator-test-taken-{uuid.uuid4().hex[:8]}"
    client = engine.client()
    image = os.environ.get("ORCHESTRATE_BASE_IMAGE", "orchestrator/base:bookworm")
    first = client.container.create(
        image, ["true"], name=name, labels={"io.orchestrator.test": "x"}
    )
    try:
        with pytest.raises(DockerRefused) as refused:
            engine.call("create the proxy's front", client.container.create, image, name=name)
        assert refused.value.message.startswith("docker refused to create the proxy's front: ")
        assert "already in use" in refused.value.detail  # Docker's full words, shown with -v
    finally:
        client.container.remove(first.id, force=True)
