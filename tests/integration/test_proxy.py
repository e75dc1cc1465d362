"""Proxy lifecycle on the real engine, with proxpi in front of the hermetic upstream."""

from __future__ import annotations

import json
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from python_on_whales import docker

from orchestrator.proxy.lifecycle import bridge_gateway
from orchestrator.proxy.probe import probe
from orchestrator.proxy.spec import OWNER, OWNER_LABEL
from tests.integration.conftest import PIP_DOCKERFILE, TOP_PACKAGE, Workspace
from tests.support.upstream_container import Upstream


def status(workspace: Workspace) -> dict[str, Any]:
    result = workspace.orchestrate("proxy", "status", "--profile", "app", "--json", check=False)
    return dict(json.loads(result.stdout))


def test_up_creates_a_labelled_loopback_proxy_that_serves(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    workspace.orchestrate("proxy", "up", "--profile", "app")
    report = status(workspace)
    assert report["healthy"] is True
    assert report["state"] == "running"
    assert report["host_url"] == f"http://127.0.0.1:{proxy['port']}/index/"
    assert report["cache_volume"] == proxy["cache_volume"]
    assert report["upstream"] == proxy["index"]
    container = docker.container.inspect(proxy["name"])
    assert container.config.labels[OWNER_LABEL] == OWNER
    assert container.host_config.restart_policy.name == "always"
    bindings = container.host_config.port_bindings["5000/tcp"]
    published = sorted((b.host_ip, b.host_port) for b in bindings)
    # Loopback, plus the default bridge's gateway because the test profiles set bridge: true.
    assert published == [("127.0.0.1", str(proxy["port"])), (bridge_gateway(), str(proxy["port"]))]
    env = dict(item.split("=", 1) for item in container.config.env)
    assert env["PROXPI_CACHE_DIR"] == "/var/cache/proxpi"
    assert float(env["PROXPI_DOWNLOAD_TIMEOUT"]) >= 60


def test_cache_survives_second_install_restart_and_recreation(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE))
    workspace.orchestrate("proxy", "down", "--profile", "app")
    subprocess.run(
        ["docker", "volume", "rm", "-f", proxy["cache_volume"]], check=True, capture_output=True
    )
    upstream.mark()
    workspace.orchestrate("build", "app", "--fresh")
    first = upstream.file_downloads()
    assert sorted(r["path"].rsplit("/", 1)[1].split("-")[0] for r in first) == [
        "orch_demo_app",
        "orch_demo_lib",
    ]
    proxy_ip = (
        docker.container.inspect(proxy["name"])
        .network_settings.networks[proxy["network"]]
        .ip_address
    )
    assert {r["client"] for r in upstream.requests()} == {proxy_ip}, (
        "only the proxy may talk upstream"
    )

    for action in ("again", "restart", "recreate"):
        if action == "restart":
            docker.container.restart(proxy["name"])
        elif action == "recreate":
            workspace.orchestrate("proxy", "down", "--profile", "app")
            assert not docker.container.exists(proxy["name"])
        upstream.mark()
        result = workspace.orchestrate("build", "app", "--fresh")
        assert '"mode": "proxy"' in result.stderr
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


def test_parallel_ups_leave_exactly_one_container(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
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
    found = docker.container.list(all=True, filters=[("name", proxy["name"])])
    assert len(found) == 1


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
    assert "proxy.port" in result.stderr
    assert not docker.container.exists(names["name"])
    assert not docker.network.exists(names["network"])
    assert not docker.volume.exists(names["cache_volume"])


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


def test_health_probe_uses_a_pep691_accept_header(proxy: dict[str, Any]) -> None:
    found = probe(f"http://127.0.0.1:{proxy['port']}/index/", TOP_PACKAGE)
    assert found.ok, found.reason


def test_a_stopped_proxy_is_started_and_a_changed_one_recreated(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE)
    workspace.profile("app", context)
    workspace.orchestrate("proxy", "up", "--profile", "app")
    before = docker.container.inspect(proxy["name"]).id
    docker.container.stop(proxy["name"])
    workspace.orchestrate("proxy", "up", "--profile", "app")
    started = docker.container.inspect(proxy["name"])
    assert (started.id, started.state.running) == (before, True)

    workspace.profile("app", context, proxy={"index_ttl": 60})
    workspace.orchestrate("proxy", "up", "--profile", "app")
    recreated = docker.container.inspect(proxy["name"])
    assert recreated.id != before
    assert "PROXPI_INDEX_TTL=60" in recreated.config.env
    assert docker.volume.exists(proxy["cache_volume"])
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
    result = workspace.orchestrate("build", "other")
    assert '"mode": "cache-mount"' in result.stderr
    assert "runs with the settings of profile 'app'" in result.stderr
    assert docker.container.inspect(proxy["name"]).id == before
