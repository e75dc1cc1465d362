"""The cache report after real builds, `proxy stats` and `proxy prune`, on the real engine.

A proxy of its own (its own name, port and volumes), so that its cache starts empty and
pruning it takes nothing from the other tests' session proxy. The report's numbers are
checked against what the hermetic upstream itself saw.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devsupport.upstream_container import Upstream, json_lines, unique_name
from tests.integration.conftest import (
    PIP_DOCKERFILE,
    TOP_PACKAGE,
    USER_HEADER,
    Workspace,
    free_port,
    remove_proxy,
)
from tests.integration.test_fallback import dead_proxy, namespace

FILES = 2  # orch-demo-app and orch-demo-lib: two wheels, no metadata files published
# Without pip's own HTTP cache (on a cache mount otherwise), so that every file of a warm
# build is sent by the front's cache, not confirmed to pip with a 304.
NO_PIP_CACHE = USER_HEADER + (
    "RUN python3 -m venv venv\n"
    f"RUN venv/bin/pip install --disable-pip-version-check --no-cache-dir {TOP_PACKAGE}\n"
)


@pytest.fixture(scope="module")
def own_proxy(proxy_config: dict[str, Any], run_id: str) -> Iterator[dict[str, Any]]:
    """Proxy settings with a name, port and volumes no other test uses."""
    name = f"orchestrator-test-report-{run_id}"
    volume = f"orchestrator-test-report-cache-{run_id}"
    yield {"name": name, "port": free_port(), "cache_volume": volume}
    remove_proxy(name, volume)


def cache_event(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one cache report line, read as the JSON event it is."""
    (event,) = [r for r in json_lines(result.stderr) if r.get("event") == "cache report"]
    print(event["message"])  # the figures, for the run's log (pytest -s)
    assert str(event["message"]).startswith("orchestrate: cache: ")
    return dict(event["cache"])


def stats(workspace: Workspace) -> dict[str, Any]:
    result = workspace.orchestrate("proxy", "stats", "--profile", "app", "--json")
    return dict(json.loads(result.stdout))


def test_report_stats_and_prune_through_the_proxy(
    workspace: Workspace, upstream: Upstream, own_proxy: dict[str, Any]
) -> None:
    workspace.profile("app", workspace.context("ctx", NO_PIP_CACHE), proxy=own_proxy)
    upstream.mark()
    cold = workspace.orchestrate("build", "app", "--fresh", "--json")
    report = cache_event(cold)
    assert len(upstream.file_downloads()) == FILES
    assert (report["fetched_files"], report["cached_files"]) == (FILES, 0), report
    assert report["fetched_bytes"] > 400_000
    assert report["installers"]["pip"]["fetched_files"] == 2
    assert json.loads(cold.stdout)["cache"] == report, "--json carries the same fields"

    upstream.mark()
    warm = cache_event(workspace.orchestrate("build", "app", "--fresh"))
    assert upstream.file_downloads() == []
    assert (warm["cached_files"], warm["fetched_files"], warm["fetched_bytes"]) == (FILES, 0, 0)
    assert warm["cached_bytes"] == report["fetched_bytes"]

    found = stats(workspace)
    # proxpi keeps no files: the front fetches them itself (issue 22).
    assert (found["front"]["files"], found["backend"]["files"]) == (FILES, 0), found
    assert found["front"]["pages"] >= FILES
    assert found["traffic"]["hits"] >= FILES
    assert found["traffic"]["misses"] >= FILES
    projects = {p["project"]: p for p in found["largest_projects"]}
    assert {"orch-demo-app", "orch-demo-lib"} <= set(projects)

    dry = json.loads(workspace.orchestrate(*PRUNE, "--max-size", "0", "--dry-run").stdout)
    assert dry["removed_files"] == FILES
    assert stats(workspace)["front"]["files"] == FILES
    done = json.loads(workspace.orchestrate(*PRUNE, "--older-than", "0s").stdout)
    assert (done["removed_files"], done["dry_run"]) == (FILES, False)
    after = stats(workspace)
    assert after["front"]["files"] == 0
    assert after["front"]["pages"] == found["front"]["pages"]

    again = cache_event(workspace.orchestrate("build", "app", "--fresh"))
    assert (again["fetched_files"], again["cached_files"]) == (FILES, 0)
    assert stats(workspace)["front"]["files"] == FILES


PRUNE = ("proxy", "prune", "--profile", "app", "--json")


def test_fallback_report_weighs_the_cache_mounts(workspace: Workspace) -> None:
    context = workspace.context("ctx", PIP_DOCKERFILE)
    workspace.profile("app", context, proxy=dead_proxy(), cache_namespace=namespace())
    report = cache_event(workspace.orchestrate("build", "app", "--fresh"))
    assert report["mode"] == "cache-mount"
    if report["source"] == "not-told":  # BuildKit 0.8 (Docker 20.10) names no mount ids
        assert "not measured" in report["note"]
        # seen once: the next build does not pay for `buildx du` again (0.16 s here)
        again = workspace.orchestrate("-v", "build", "app", "--fresh")
        assert cache_event(again)["source"] == "not-told"
        assert "read the build cache's usage" not in again.stderr
        return
    assert report["source"] == "buildx-du", report
    assert report["mount_bytes_before"] == 0, "a new namespace's cache mount is empty"
    assert report["mount_bytes_after"] > 400_000, report


def test_pip_keeps_the_proxys_files_without_asking_again(
    workspace: Workspace, upstream: Upstream, own_proxy: dict[str, Any]
) -> None:
    """The front marks files immutable, as PyPI does: a warm build whose pip cache (on its
    cache mount) holds the wheels asks the proxy for the pages only. With proxpi's
    ``no-cache`` pip revalidated every file and rewrote its copy (0.14-0.2 s per large
    wheel in the benchmark)."""
    context = workspace.context("ctx", PIP_DOCKERFILE)
    workspace.profile("app", context, proxy=own_proxy, cache_namespace=namespace())
    workspace.orchestrate("build", "app", "--fresh")
    upstream.mark()
    warm = cache_event(workspace.orchestrate("build", "app", "--fresh"))
    files = (warm["cached_files"], warm["revalidated_files"], warm["fetched_files"])
    assert files == (0, 0, 0), warm  # before: (0, 2, 0), two 304s
    assert warm["pages"]["cached_files"] >= FILES, "pip still asks for the index pages"
    assert upstream.file_downloads() == []


@pytest.fixture(scope="module")
def slow_upstream(upstream: Upstream, network: str) -> Iterator[Upstream]:
    """The same packages at 150 kB/s per response: a cold file takes over a second, so
    pruning meets files being fetched and written as well as files being sent."""
    alias = unique_name("slow")
    with Upstream(upstream.tree, network, alias=alias, name=alias, rate_bps=150_000) as server:
        yield server


def test_pruning_while_builds_run_fails_no_build(
    workspace: Workspace, slow_upstream: Upstream, run_id: str
) -> None:
    """`proxy prune --older-than 0s` over and over while three builds fetch the same two
    files through a cold proxy: every build succeeds with both files, none is refused."""
    name = f"orchestrator-test-prune-{run_id}"
    settings = {"name": name, "port": free_port(), "cache_volume": f"{name}-cache"}
    proxy = {**settings, "index": slow_upstream.host_url, "health_project": TOP_PACKAGE}
    try:
        workspace.profile("app", workspace.context("ctx", NO_PIP_CACHE), proxy=proxy)
        workspace.orchestrate("proxy", "up", "--profile", "app")
        stop, pruned = threading.Event(), []
        with ThreadPoolExecutor(1) as pool:

            def prune_until_stopped() -> None:
                while not stop.is_set():
                    pruned.append(workspace.orchestrate(*PRUNE, "--older-than", "0s"))

            pruning = pool.submit(prune_until_stopped)
            try:
                builds = [workspace.orchestrate("build", "app", "--fresh") for _ in range(3)]
            finally:
                stop.set()
            pruning.result()
        removed = [json.loads(r.stdout)["removed_files"] for r in pruned]
        assert sum(removed) >= FILES, f"prune removed files while builds ran: {removed}"
        for build in builds:
            report = cache_event(build)
            assert report["failed_requests"] == 0, report
            assert report["cached_files"] + report["fetched_files"] == FILES, report
    finally:
        remove_proxy(name, str(settings["cache_volume"]))
