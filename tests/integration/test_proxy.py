"""Proxy lifecycle on the real engine: the nginx front and proxpi before the hermetic upstream."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from python_on_whales import docker

from devsupport.upstream_container import Upstream, json_lines
from orchestrator.proxy.probe import SIMPLE_ACCEPT, probe
from orchestrator.proxy.spec import OWNER, OWNER_LABEL, ROLE_LABEL
from tests.integration.conftest import (
    PIP_DOCKERFILE,
    TOP_PACKAGE,
    Workspace,
    address_of,
    built_mode,
    remove_proxy,
)


def status(workspace: Workspace) -> dict[str, Any]:
    result = workspace.orchestrate("proxy", "status", "--profile", "app", "--json", check=False)
    return dict(json.loads(result.stdout))


def test_up_creates_a_labelled_loopback_front_before_proxpi(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    workspace.orchestrate("proxy", "up", "--profile", "app")
    report = status(workspace)
    assert (report["healthy"], report["state"], report["backend"]) == (True, "running", "running")
    assert report["host_url"] == f"http://127.0.0.1:{proxy['port']}/index/"
    assert report["cache_volume"] == proxy["cache_volume"]
    assert report["upstream"] == proxy["index"]
    front = docker.container.inspect(proxy["name"])
    backend = docker.container.inspect(f"{proxy['name']}-backend")
    for container, role in ((front, "front"), (backend, "backend")):
        labels = container.config.labels or {}
        assert labels[OWNER_LABEL] == OWNER
        assert labels[ROLE_LABEL] == role
        policy = container.host_config.restart_policy
        assert policy is not None
        assert policy.name == "always"
    bindings = (front.host_config.port_bindings or {})["5000/tcp"] or []
    published = sorted((b.host_ip, b.host_port) for b in bindings)
    assert published == [("127.0.0.1", str(proxy["port"]))]
    assert not backend.host_config.port_bindings, "only the front is published"
    env = dict(item.split("=", 1) for item in backend.config.env or [])
    assert env["PROXPI_CACHE_DIR"] == "/var/cache/proxpi"
    assert float(env["PROXPI_DOWNLOAD_TIMEOUT"]) >= 60


def test_cache_survives_second_install_restart_and_recreation(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    remove_proxy(proxy["name"], proxy["cache_volume"])
    upstream.mark()
    workspace.orchestrate("build", "app", "--fresh")
    first = upstream.file_downloads()
    assert sorted(r["path"].rsplit("/", 1)[1].split("-")[0] for r in first) == [
        "orch_demo_app",
        "orch_demo_lib",
    ]
    backend_ip = address_of(f"{proxy['name']}-backend", proxy["network"])
    front_ip = address_of(proxy["name"], proxy["network"])
    # proxpi reads the pages, the front fetches the files (streaming them, issue 22), and
    # besides them orchestrate asks only whether the upstream is up: a HEAD of its root.
    assert {r["client"] for r in first} == {front_ip}, "the front fetches the files"
    pages = {r["client"] for r in upstream.requests() if r["path"].startswith("/simple/")}
    assert backend_ip in pages
    others = {
        (r["method"], r["path"])
        for r in upstream.requests()
        if r["client"] not in (backend_ip, front_ip)
    }
    assert others <= {("HEAD", "/simple/")}, "only the proxy fetches packages"

    for action in ("again", "restart", "recreate"):
        if action == "restart":
            docker.container.restart([proxy["name"], f"{proxy['name']}-backend"])
        elif action == "recreate":
            workspace.orchestrate("proxy", "down", "--profile", "app")
            assert not docker.container.exists(proxy["name"])
        upstream.mark()
        result = workspace.orchestrate("build", "app", "--fresh")
        assert built_mode(result) == "proxy", result.stderr
        assert upstream.file_downloads() == [], f"files fetched again after {action}"


def test_foreign_container_with_our_name_is_left_alone(workspace: Workspace, run_id: str) -> None:
    name = f"orchestrator-test-foreign-{run_id}"
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE), proxy={"name": name})
    foreign = docker.container.create("orchestrator/base:bookworm", ["sleep", "1"], name=name)
    try:
        for args in (["proxy", "up"], ["proxy", "down"], ["proxy", "status"]):
            result = workspace.orchestrate(*args, "--profile", "app", check=False)
            assert result.returncode == 6, result.stderr
            assert "not created by orchestrator" in result.stderr
        assert docker.container.inspect(name).id == foreign.id
        assert docker.container.inspect(name).state.status == "created"
    finally:
        docker.container.remove(foreign, force=True)


def test_parallel_ups_leave_exactly_one_proxy(workspace: Workspace, proxy: dict[str, Any]) -> None:
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    workspace.orchestrate("proxy", "down", "--profile", "app")
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: workspace.orchestrate("proxy", "up", "--profile", "app", check=False),
                range(4),
            )
        )
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    for name in (proxy["name"], f"{proxy['name']}-backend"):
        found = docker.container.list(all=True, filters=[("name", f"^{name}$")])
        assert len(found) == 1, name


JOB_DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
RUN python3 -m pip download --disable-pip-version-check --no-deps -d /tmp/d \\
    orch-jobs-a orch-jobs-b
"""


def test_eight_jobs_started_together_on_a_cold_proxy_all_go_through_it(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    """A CI runner's first minute (issue 20): one job makes the proxy, the seven others
    wait for it instead of falling back, and each file is fetched from the upstream once."""
    context = workspace.context("jobs-ctx", JOB_DOCKERFILE)
    # Cache mounts of this test's own: the engine keeps them from run to run.
    workspace.profile("jobs", context, cache_namespace=f"orchestrator-test-{workspace.marker[:12]}")
    remove_proxy(proxy["name"], proxy["cache_volume"])
    upstream.mark()

    def job(number: int) -> subprocess.CompletedProcess[str]:
        own = str(workspace.root / f"job{number}")
        return workspace.orchestrate("build", "jobs", "--fresh", check=False, XDG_CACHE_HOME=own)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(job, range(8)))
    assert [r.returncode for r in results] == [0] * 8, [r.stderr[-400:] for r in results]
    assert [built_mode(r) for r in results] == ["proxy"] * 8
    fetched = sorted(r["path"].rsplit("/", 1)[1] for r in upstream.file_downloads())
    assert fetched == ["orch_jobs_a-1.0-py3-none-any.whl", "orch_jobs_b-1.0-py3-none-any.whl"]


def test_failed_start_leaves_nothing_behind(workspace: Workspace, run_id: str) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    names = {
        "name": f"orchestrator-test-busy-{run_id}",
        "port": port,
        "network": f"orchestrator-test-busynet-{run_id}",
        "cache_volume": f"orchestrator-test-busyvol-{run_id}",
    }
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE), proxy=names)
    try:
        result = workspace.orchestrate("proxy", "up", "--profile", "app", check=False)
    finally:
        blocker.close()
    assert result.returncode == 5, result.stderr
    assert f"port 127.0.0.1:{port} is taken: set proxy.port" in result.stderr
    assert "docker run" not in result.stderr
    assert "docker container" not in result.stderr
    for container in (names["name"], f"{names['name']}-backend"):
        assert not docker.container.exists(container)
    assert not docker.network.exists(names["network"])
    for volume in (names["cache_volume"], f"{names['cache_volume']}-front"):
        assert not docker.volume.exists(volume)


def test_status_of_an_absent_proxy_says_so(workspace: Workspace, run_id: str) -> None:
    workspace.profile(
        "app",
        workspace.context("ctx", PIP_DOCKERFILE),
        proxy={"name": f"orchestrator-test-absent-{run_id}"},
    )
    result = workspace.orchestrate("proxy", "status", "--profile", "app", "--json", check=False)
    assert result.returncode == 5
    report = json.loads(result.stdout)
    assert (report["state"], report["healthy"]) == ("absent", False)


def test_the_probe_counts_only_a_served_page_and_asks_for_pep691(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    workspace.orchestrate("proxy", "up", "--profile", "app")
    index = f"http://127.0.0.1:{proxy['port']}/index/"
    assert probe(index, TOP_PACKAGE).ok
    missing = probe(index, "orch-no-such-project")
    assert (missing.ok, missing.status) == (False, 404), "a 404 is no proof the proxy serves"
    request = urllib.request.Request(f"{index}{TOP_PACKAGE}/", headers={"Accept": SIMPLE_ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        assert response.headers["X-Orchestrator-Cache"] in ("HIT", "MISS", "STALE", "UPDATING")


def test_a_stopped_proxy_is_started_and_a_changed_one_recreated(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE)
    workspace.profile("app", context)
    workspace.orchestrate("proxy", "up", "--profile", "app")
    names = [proxy["name"], f"{proxy['name']}-backend"]
    before = [docker.container.inspect(name).id for name in names]
    docker.container.stop(names)
    workspace.orchestrate("proxy", "up", "--profile", "app")
    started = [docker.container.inspect(name) for name in names]
    assert [c.id for c in started] == before
    assert all(c.state.running for c in started)

    workspace.profile("app", context, proxy={"index_ttl": 60})
    workspace.orchestrate("proxy", "up", "--profile", "app")
    recreated = docker.container.inspect(names[1])
    assert recreated.id != before[1]
    assert "PROXPI_INDEX_TTL=60" in recreated.config.env
    assert docker.volume.exists(proxy["cache_volume"])
    assert docker.volume.exists(f"{proxy['cache_volume']}-front")
    workspace.profile("app", context)
    workspace.orchestrate("proxy", "up", "--profile", "app")


def test_a_build_never_replaces_a_proxy_another_profile_set_up(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE)
    workspace.profile("app", context)
    workspace.orchestrate("proxy", "up", "--profile", "app")
    before = docker.container.inspect(proxy["name"]).id
    workspace.profile("other", context, proxy={"index_ttl": 61}, network="host")
    dry = workspace.orchestrate("build", "other", "--dry-run", "--json")
    assert json.loads(dry.stdout)["mode"] == "cache-mount", "a dry run predicts the fallback"
    result = workspace.orchestrate("build", "other")
    assert built_mode(result) == "cache-mount"
    assert "runs with the settings of profile 'app'" in result.stderr
    assert docker.container.inspect(proxy["name"]).id == before


def test_a_running_proxy_is_used_without_asking_docker(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    """The fast path: the front answers its settings' digest, so Docker is not asked."""
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    workspace.orchestrate("proxy", "up", "--profile", "app")
    result = workspace.orchestrate("-v", "build", "app", "--dry-run", "--json")
    assert json.loads(result.stdout)["mode"] == "proxy", result.stderr
    actions = [r.get("action", "") for r in json_lines(result.stderr) if r.get("event") == "docker"]
    assert not [a for a in actions if "container" in a or "volume" in a], actions
