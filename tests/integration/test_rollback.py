"""A failed or interrupted run removes what it created, by id, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from python_on_whales import docker

from tests.integration.conftest import PIP_DOCKERFILE, Workspace, free_port


def names(run_id: str, what: str) -> dict[str, Any]:
    return {
        "name": f"orchestrator-test-{what}-{run_id}",
        "network": f"orchestrator-test-{what}net-{run_id}",
        "cache_volume": f"orchestrator-test-{what}vol-{run_id}",
        "health_project": "orch-no-such-project",  # a 404: the proxy never counts as ready
        "port": free_port(),  # not the session proxy's, which may be running
    }


def left_behind(proxy: dict[str, Any]) -> list[str]:
    found = [c for c in (proxy["name"], f"{proxy['name']}-backend") if docker.container.exists(c)]
    found += [n for n in (proxy["network"],) if docker.network.exists(n)]
    volumes = (proxy["cache_volume"], f"{proxy['cache_volume']}-front")
    return found + [v for v in volumes if docker.volume.exists(v)]


def test_a_proxy_that_never_becomes_ready_leaves_nothing_it_created(
    workspace: Workspace, run_id: str
) -> None:
    proxy = {**names(run_id, "never"), "startup_timeout": 3}
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE), proxy=proxy)
    result = workspace.orchestrate("proxy", "up", "--profile", "app", check=False)
    assert result.returncode == 5, result.stderr
    assert "did not serve within 3 s" in result.stderr
    assert left_behind(proxy) == []


def test_ctrl_c_while_the_proxy_starts_exits_130_and_removes_it(
    workspace: Workspace, run_id: str
) -> None:
    proxy = {**names(run_id, "interrupted"), "startup_timeout": 120}
    workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE), proxy=proxy)
    child = subprocess.Popen(
        workspace.command("proxy", "up", "--profile", "app"),
        env={**os.environ, **workspace.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not docker.container.exists(proxy["name"]):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the proxy was never created"
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "interrupted" in stderr
    assert left_behind(proxy) == []
