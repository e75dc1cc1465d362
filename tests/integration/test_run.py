"""`orchestrate run` and `orchestrate env` on the real engine, before the hermetic upstream.

The image is the local base (Debian 12: python3 with pip 23.0.1, the old pip whose shared
cache needs a lock). pip installs with ``--target`` into /tmp: the run's user (1000 when
the tests run as root) owns nothing else, and Debian marks its system Python as
externally managed (PEP 668).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import docker

from devsupport.upstream_container import Upstream, json_lines
from orchestrator.plan.containers import RUN_LABEL
from tests.integration.conftest import TOP_PACKAGE, Workspace, base_image, remove_proxy

INSTALL = f"python3 -m pip install --disable-pip-version-check --target /tmp/t {TOP_PACKAGE}"
IMPORT = "python3 -c 'import sys; sys.path.insert(0, \"/tmp/t\"); import orch_demo_app'"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A cache namespace of this test alone; its run cache volume is removed afterwards."""
    name = f"orchestrator-test-{uuid.uuid4().hex[:10]}"
    yield name
    for volume in docker.volume.list(filters=[("name", name)]):
        docker.volume.remove(volume)


def profile(workspace: Workspace, namespace: str, **settings: Any) -> str:
    """Profile 'app': runs the local base image (its first tag) with the test proxy, as the
    invoking user (1000 for root), which these tests need to be another than the image's."""
    context = workspace.context("ctx", "FROM scratch\n")
    settings = {"user": "host", **settings}
    workspace.profile("app", context, tags=[base_image()], cache_namespace=namespace, **settings)
    return "app"


def orchestrate(
    workspace: Workspace, *args: str, stdin: Any = subprocess.DEVNULL, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        workspace.command(*args),
        capture_output=True,
        text=True,
        stdin=stdin,
        env={**os.environ, **workspace.env, **env},
        timeout=600,
        check=False,
    )


def run(
    workspace: Workspace, script: str, *options: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`orchestrate run app [OPTIONS] -- sh -c SCRIPT`, which must succeed."""
    result = orchestrate(workspace, "run", "app", *options, "--", "sh", "-c", script, **env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result


def event(result: subprocess.CompletedProcess[str], name: str) -> dict[str, Any]:
    (found,) = [r for r in json_lines(result.stderr) if r.get("event") == name]
    return found


# --- through the proxy -----------------------------------------------------------------------


def test_two_runs_fetch_a_package_from_the_upstream_once(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream, namespace: str
) -> None:
    profile(workspace, namespace)
    remove_proxy(proxy["name"], proxy["cache_volume"])  # a cold proxy cache
    workspace.orchestrate("proxy", "up", "--profile", "app")
    upstream.mark()
    first = run(workspace, f"{INSTALL} && {IMPORT}")
    started = event(first, "run")
    assert (started["mode"], started["image"]) == ("proxy", base_image())
    assert len(upstream.file_downloads()) == 2, "orch-demo-app and orch-demo-lib, once each"
    cold = event(first, "cache report")["cache"]
    assert (cold["fetched_files"], cold["cached_files"]) == (2, 0), cold
    upstream.mark()
    second = run(workspace, f"{INSTALL} && {IMPORT}")
    assert event(second, "run")["mode"] == "proxy"
    assert upstream.file_downloads() == [], "the second run's files came from the proxy"
    warm = event(second, "cache report")["cache"]
    # each run's container is new: its pip has no cache of its own, the front sends both
    assert (warm["cached_files"], warm["fetched_files"]) == (2, 0), warm


def test_the_seeds_commands_are_one_run_each(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream, namespace: str
) -> None:
    """`docker run --net=jenkins_ci_shared python bash`, then the same pip install twice
    with the proxy's name as the index: the second is served from the proxy's cache."""
    profile(workspace, namespace)
    remove_proxy(proxy["name"], proxy["cache_volume"])
    name = proxy["name"]
    seed = (
        "python3 -m pip install -v --no-cache --force-reinstall --target /tmp/t "
        f"--index-url=http://{name}:5000/index/ --trusted-host={name} {TOP_PACKAGE}"
    )
    outputs = []
    for _ in range(2):
        upstream.mark()
        result = run(workspace, seed)
        outputs.append(result.stdout + result.stderr)
        downloads = len(upstream.file_downloads())
        assert downloads == (2 if len(outputs) == 1 else 0), outputs[-1]
    assert all(f"http://{name}:5000/index/" in output for output in outputs)


# --- the fallback: the cache volume ----------------------------------------------------------


def test_with_the_proxy_down_a_run_uses_the_volume_and_a_second_downloads_nothing(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream, namespace: str
) -> None:
    profile(workspace, namespace)
    workspace.orchestrate("proxy", "up", "--profile", "app")
    containers = [proxy["name"], f"{proxy['name']}-backend"]
    docker.container.pause(containers)
    try:
        upstream.mark()
        first = run(workspace, f"{INSTALL} && {IMPORT}")
        second = run(workspace, f"rm -rf /tmp/t && {INSTALL} && {IMPORT}")
        downloads = len(upstream.file_downloads())
    finally:
        docker.container.unpause(containers)
    started = event(first, "run")
    assert started["mode"] == "cache-volume"
    assert "paused" in started["reason"]
    assert event(second, "run")["mode"] == "cache-volume"
    assert downloads == 2, "the second run's pip found both files in the cache volume"
    volume = f"{namespace}-run-1000" if os.getuid() == 0 else f"{namespace}-run-{os.getuid()}"
    owner = docker.run(
        base_image(), ["stat", "-c", "%u:%g", "/c"], volumes=[(volume, "/c")], remove=True
    )
    assert owner.strip() == ("1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}")
    labels = docker.volume.inspect(volume).labels
    assert labels["io.orchestrator.owner"] == "orchestrator"


def test_parallel_runs_share_the_volume_and_an_old_pip_takes_turns(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream, namespace: str
) -> None:
    """Debian 12's pip 23.0.1 does not lock its cache: four cold runs at once would each
    download both files. The lock makes them take turns, so each file is fetched once."""
    profile(workspace, namespace)
    version = run(workspace, "python3 -m pip --version", "--no-proxy").stdout
    assert version.startswith("pip 23."), version
    upstream.mark()
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: orchestrate(
                    workspace,
                    "run",
                    "app",
                    "--no-proxy",
                    "--",
                    "sh",
                    "-c",
                    f"{INSTALL} && {IMPORT}",
                ),
                range(4),
            )
        )
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-2000:] for r in results]
    paths = sorted(r["path"] for r in upstream.file_downloads())
    assert len(paths) == 2, f"each file once, through the shared volume: {paths}"
    waited = [r for r in results if "waiting for another pip to finish" in r.stderr]
    assert waited, "no run waited: the pips did not take turns"


# --- what a run passes through and what it leaves ---------------------------------------------


@pytest.mark.parametrize("code", [0, 3, 42])
def test_the_commands_exit_code_is_orchestrates(
    workspace: Workspace, proxy: dict[str, Any], namespace: str, code: int
) -> None:
    profile(workspace, namespace)
    result = orchestrate(workspace, "run", "app", "--", "sh", "-c", f"exit {code}")
    assert result.returncode == code, result.stderr
    assert event(result, "run ended")["exit_code"] == code


def test_a_secret_is_neither_in_docker_inspect_nor_in_the_logs(
    workspace: Workspace, proxy: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    token, key = f"token-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"
    key_file = tmp_path / "key.txt"
    key_file.write_text(key)
    key_file.chmod(0o600)
    secrets = {"token": {"env": "ORCH_TEST_TOKEN"}, "key": {"file": str(key_file)}}
    profile(workspace, namespace, secrets=secrets)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    script = (
        "sha256sum /run/secrets/token /run/secrets/key; stat -c '%u %a' /run/secrets/token; "
        'test -z "$(env | grep -e token- -e key-)"'
    )
    result = run(workspace, script, "--keep", ORCH_TEST_TOKEN=token, XDG_RUNTIME_DIR=str(runtime))
    name = event(result, "run")["container"]
    try:
        inspected = subprocess.run(
            ["docker", "container", "inspect", name], capture_output=True, text=True, check=True
        ).stdout
        logs = subprocess.run(
            ["docker", "container", "logs", name], capture_output=True, text=True, check=True
        )
    finally:
        docker.container.remove(name, force=True)
    import hashlib  # noqa: PLC0415

    for value in (token, key):
        assert value not in inspected
        assert value not in logs.stdout + logs.stderr
        assert value not in result.stdout + result.stderr
        assert hashlib.sha256(value.encode()).hexdigest() in result.stdout
    owner = "1000 400" if os.getuid() == 0 else f"{os.getuid()} 400"
    assert owner in result.stdout
    assert list(runtime.iterdir()) == [], "the private copies are removed after the run"


def test_nothing_is_left_behind_but_the_named_cache(
    workspace: Workspace, proxy: dict[str, Any], namespace: str
) -> None:
    profile(workspace, namespace, secrets={"token": {"env": "ORCH_TEST_TOKEN"}})
    workspace.orchestrate("proxy", "up", "--profile", "app")
    containers, volumes = run_containers(), ours(namespace)
    run(workspace, "cat /run/secrets/token >/dev/null", ORCH_TEST_TOKEN="x")
    run(workspace, "exit 0", "--no-proxy", ORCH_TEST_TOKEN="x")
    failed = orchestrate(workspace, "run", "app", "--no-proxy", "--", "false", ORCH_TEST_TOKEN="x")
    assert failed.returncode == 1
    assert run_containers() == containers
    assert ours(namespace) - volumes == {
        f"{namespace}-run-{1000 if os.getuid() == 0 else os.getuid()}"
    }


def run_containers() -> set[str]:
    """Every run container on the engine. The other pytest worker runs other files' tests
    beside this one, and only this file's tests start run containers."""
    return {c.id for c in docker.container.list(all=True, filters=[("label", RUN_LABEL)])}


def ours(namespace: str) -> set[str]:
    """The volumes this test may have made: its namespace's, and any unnamed one (the other
    worker's tests only make volumes named orchestrator-test-...)."""
    names = {v.name for v in docker.volume.list()}
    return {n for n in names if n.startswith(namespace) or not n.startswith("orchestrator-test-")}


@pytest.mark.serial
@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_the_container(
    workspace: Workspace, proxy: dict[str, Any], namespace: str, sent: int, code: int
) -> None:
    profile(workspace, namespace)
    child = subprocess.Popen(
        workspace.command("run", "app", "--", "sleep", "300"),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **workspace.env},
    )
    assert child.stderr is not None
    name = ""
    for line in child.stderr:
        record = next(json_lines(line), {})
        if record.get("event") == "run":
            name = record["container"]
            break
    deadline = time.monotonic() + 60
    while not (docker.container.exists(name) and docker.container.inspect(name).state.running):
        assert time.monotonic() < deadline, "the container never ran"
        time.sleep(0.1)
    started = time.monotonic()
    child.send_signal(sent)  # to orchestrate alone: the docker client does not see it
    assert child.wait(timeout=60) == code
    assert time.monotonic() - started < 20
    assert not docker.container.exists(name), "the container outlived orchestrate"


# --- env: the same wiring for compose and plain docker run ------------------------------------


def test_the_compose_fragment_starts_a_service_that_installs_through_the_proxy(
    workspace: Workspace, proxy: dict[str, Any], namespace: str, tmp_path: Path, run_id: str
) -> None:
    profile(workspace, namespace)
    project = tmp_path / "project"
    project.mkdir()
    script = f"{INSTALL} && {IMPORT} && echo INSTALLED"
    (project / "compose.yaml").write_text(
        json.dumps({"services": {"app": {"image": base_image(), "command": ["sh", "-c", script]}}})
    )
    fragment = subprocess.run(
        workspace.command("env", "app", "--format", "compose"),
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **workspace.env},
        check=True,
        timeout=300,
    ).stdout
    name = f"orchestrator-test-compose-{run_id}"
    compose = ["docker", "compose", "--project-name", name, "-f", "compose.yaml", "-f", "-"]
    try:
        up = subprocess.run(
            [*compose, "up", "--abort-on-container-exit", "--exit-code-from", "app"],
            cwd=project,
            input=fragment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert "INSTALLED" in up.stdout
        assert f"Looking in indexes: http://{proxy['name']}:5000/index/" in up.stdout
        (container,) = docker.container.list(
            all=True, filters=[("label", f"com.docker.compose.project={name}")]
        )
        networks = set(container.network_settings.networks or {})
        assert networks == {f"{name}_default", proxy["network"]}
    finally:
        subprocess.run(
            [*compose, "down", "--remove-orphans"],
            cwd=project,
            input=fragment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_the_docker_format_gives_docker_run_the_wiring(
    workspace: Workspace, proxy: dict[str, Any], namespace: str
) -> None:
    profile(workspace, namespace)
    result = orchestrate(workspace, "env", "app", "--format", "docker")
    assert result.returncode == 0, result.stderr
    script = f"{INSTALL} && {IMPORT} && echo INSTALLED"
    ran = subprocess.run(
        ["docker", "run", "--rm", *shlex.split(result.stdout), base_image(), "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "INSTALLED" in ran.stdout
    assert f"Looking in indexes: http://{proxy['name']}:5000/index/" in ran.stdout
