"""The cache-mount fallback on the real engine: used when the proxy cannot serve."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from python_on_whales import docker

from tests.integration.conftest import PIP_DOCKERFILE, TOP_PACKAGE, Workspace, free_port
from tests.support.upstream_container import Upstream

CHECK = "venv/bin/python -c 'import orch_demo_app, orch_demo_lib; print(\"ok\")'"


def dead_proxy() -> dict[str, Any]:
    """An external proxy URL where nothing answers: the proxy is down."""
    return {"url": f"http://127.0.0.1:{free_port()}/index/"}


def test_proxy_down_falls_back_and_fresh_rebuild_downloads_nothing(
    workspace: Workspace, upstream: Upstream
) -> None:
    tag = workspace.profile(
        "app",
        workspace.context("ctx", PIP_DOCKERFILE),
        proxy=dead_proxy(),
        network="host",
        cache_namespace=f"orchestrator-test-{uuid.uuid4().hex[:12]}",
    )
    plan = json.loads(workspace.orchestrate("build", "app", "--dry-run", "--json").stdout)
    assert plan["mode"] == "cache-mount"
    assert any("unreachable" in d["reason"] for d in plan["decisions"] if d["topic"] == "mode")

    upstream.mark()
    workspace.orchestrate("build", "app", "--fresh")
    assert docker.run(tag, ["sh", "-c", CHECK], remove=True).strip() == "ok"
    assert len(upstream.file_downloads()) == 2, "a new cache namespace starts empty"
    upstream.mark()
    result = workspace.orchestrate("build", "app", "--fresh")
    assert '"mode": "cache-mount"' in result.stderr
    assert upstream.file_downloads() == [], "a --fresh rebuild must reuse the cache mount"


def test_fresh_rebuilds_the_install_step(workspace: Workspace, upstream: Upstream) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE + "RUN date +%s%N > stamp\n")
    tag = workspace.profile("app", context, proxy=dead_proxy(), network="host")
    workspace.orchestrate("build", "app")
    first = docker.run(tag, ["cat", "stamp"], remove=True)
    workspace.orchestrate("build", "app")
    assert docker.run(tag, ["cat", "stamp"], remove=True) == first, "a plain rebuild is cached"
    workspace.orchestrate("build", "app", "--fresh")
    assert docker.run(tag, ["cat", "stamp"], remove=True) != first


def test_parallel_fallback_builds_share_one_cache(workspace: Workspace, upstream: Upstream) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE)
    tags = [
        workspace.profile(f"app{i}", context, proxy=dead_proxy(), network="host") for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda i: workspace.orchestrate("build", f"app{i}", "--fresh", check=False),
                range(4),
            )
        )
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-2000:] for r in results]
    for tag in tags:
        assert docker.run(tag, ["sh", "-c", CHECK], remove=True).strip() == "ok"


def test_switching_between_proxy_and_fallback(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    tag = workspace.profile("app", workspace.context("ctx", PIP_DOCKERFILE), network="host")
    for flags, mode in (((), "proxy"), (("--no-proxy",), "cache-mount"), ((), "proxy")):
        result = workspace.orchestrate("build", "app", "--fresh", *flags)
        assert f'"mode": "{mode}"' in result.stderr
        assert docker.run(tag, ["sh", "-c", CHECK], remove=True).strip() == "ok"


def test_require_fails_clearly_when_the_proxy_is_down(workspace: Workspace) -> None:
    workspace.profile(
        "app", workspace.context("ctx", PIP_DOCKERFILE), proxy={**dead_proxy(), "mode": "require"}
    )
    result = workspace.orchestrate("build", "app", check=False)
    assert result.returncode == 5, result.stderr
    assert "requires the proxy" in result.stderr
    assert TOP_PACKAGE  # the upstream was never needed
