"""The cache-mount fallback on the real engine, and switching modes without losing layers."""

from __future__ import annotations

import json
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from python_on_whales import docker

from devsupport.upstream_container import Upstream
from tests.integration.conftest import PIP_DOCKERFILE, USER_HEADER, Workspace, built_mode, free_port

CHECK = "venv/bin/python -c 'import orch_demo_app, orch_demo_lib; print(\"ok\")'"
# Every RUN step writes when it ran: a step whose stamp did not change did not run again.
STAMPED_DOCKERFILE = USER_HEADER + textwrap.dedent("""\
    RUN date +%s%N > stamp-venv && python3 -m venv venv
    RUN venv/bin/pip install --disable-pip-version-check orch-demo-app \\
     && date +%s%N > stamp-install
    RUN date +%s%N > stamp-after
    """)
STAMPS = "cat stamp-venv stamp-install stamp-after"


def dead_proxy() -> dict[str, Any]:
    """An external proxy URL where nothing answers: the proxy is down."""
    return {"url": f"http://127.0.0.1:{free_port()}/index/"}


def namespace() -> str:
    """A cache namespace no other test used: its cache mounts start empty."""
    return f"orchestrator-test-{uuid.uuid4().hex[:12]}"


def test_proxy_down_falls_back_and_fresh_rebuild_downloads_nothing(
    workspace: Workspace, upstream: Upstream
) -> None:
    tag = workspace.profile(
        "app",
        workspace.context("ctx", PIP_DOCKERFILE),
        proxy=dead_proxy(),
        cache_namespace=namespace(),
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
    assert built_mode(result) == "cache-mount"
    assert upstream.file_downloads() == [], "a --fresh rebuild must reuse the cache mount"


def test_fresh_rebuilds_every_run_step(workspace: Workspace, upstream: Upstream) -> None:
    tag = workspace.profile("app", workspace.context("ctx", STAMPED_DOCKERFILE), proxy=dead_proxy())
    workspace.orchestrate("build", "app")
    first = docker.run(tag, ["sh", "-c", STAMPS], remove=True).split()
    workspace.orchestrate("build", "app")
    assert docker.run(tag, ["sh", "-c", STAMPS], remove=True).split() == first, "cached"
    workspace.orchestrate("build", "app", "--fresh")
    again = docker.run(tag, ["sh", "-c", STAMPS], remove=True).split()
    assert all(a != b for a, b in zip(first, again, strict=True)), "every RUN step ran again"


def test_parallel_fallback_builds_share_one_cache_and_download_once(
    workspace: Workspace, upstream: Upstream
) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE)
    shared = namespace()
    tags = [
        workspace.profile(f"app{i}", context, proxy=dead_proxy(), cache_namespace=shared)
        for i in range(4)
    ]
    upstream.mark()
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
    paths = sorted(r["path"] for r in upstream.file_downloads())
    assert len(paths) == 2, f"pip's locked cache mount lets each file be fetched once: {paths}"


def test_switching_modes_reruns_no_run_step(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    """proxy, then --no-proxy, then proxy again: the same rendering, mounts and network in
    every mode, so the second and third builds come from the layer cache (issue 10)."""
    tag = workspace.profile("app", workspace.context("ctx", STAMPED_DOCKERFILE))
    modes = []
    stamps = []
    for flags in ((), ("--no-proxy",), ()):
        result = workspace.orchestrate("build", "app", *flags)
        modes.append(built_mode(result))
        stamps.append(docker.run(tag, ["sh", "-c", STAMPS], remove=True).split())
        assert docker.run(tag, ["sh", "-c", CHECK], remove=True).strip() == "ok"
    assert modes == ["proxy", "cache-mount", "proxy"]
    assert stamps[0] == stamps[1] == stamps[2], "a RUN step ran again when the mode changed"


def test_require_fails_clearly_when_the_proxy_is_down(workspace: Workspace) -> None:
    workspace.profile(
        "app", workspace.context("ctx", PIP_DOCKERFILE), proxy={**dead_proxy(), "mode": "require"}
    )
    result = workspace.orchestrate("build", "app", check=False)
    assert result.returncode == 5, result.stderr
    assert "requires the proxy" in result.stderr
