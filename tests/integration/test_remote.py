"""An engine that is not on this machine's loopback (issue 20): the `remote` engine of
scripts/engines, a dockerd in a network namespace of its own reached over tcp, as GitLab's
`docker:dind` or a Jenkins agent's mounted socket are. This process plays the CI job: its
127.0.0.1 is not the engine's.

Run by scripts/test on the remote engine only (``-m remote``); the engine's other tests
assume a loopback they share with it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devsupport.upstream_container import Upstream, json_lines
from tests.integration.conftest import (
    PIP_DOCKERFILE,
    TOP_PACKAGE,
    Workspace,
    built_mode,
    remove_proxy,
)
from tests.integration.test_bake import bake_file, cache_report, check_images, run_bake
from tests.support.front import Front

pytestmark = pytest.mark.remote
FILES = 2  # orch-demo-app and orch-demo-lib


def cache_event(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    (found,) = [r for r in json_lines(result.stderr) if r.get("event") == "cache report"]
    return dict(found["cache"])


def decision(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    (found,) = [r for r in json_lines(result.stderr) if r.get("event") == "proxy decided"]
    return found


def build(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return workspace.orchestrate("-v", "build", "app", *args)


def namespace(workspace: Workspace) -> str:
    """Cache mounts of this test's own: the engine keeps them from run to run."""
    return f"orchestrator-test-{workspace.marker[:12]}"


@pytest.fixture
def app(workspace: Workspace, proxy: dict[str, Any]) -> Workspace:
    """Profile 'app' through the session's proxy (``proxy``: removed when the session
    ends, whichever test made it)."""
    context = workspace.context("ctx", PIP_DOCKERFILE)
    workspace.profile("app", context, cache_namespace=namespace(workspace))
    return workspace


def test_the_engine_is_elsewhere_here(app: Workspace, proxy: dict[str, Any]) -> None:
    """The premise: what the engine publishes on its loopback is not on this one's."""
    app.orchestrate("proxy", "up", "--profile", "app")
    with pytest.raises(OSError):  # noqa: PT011 - refused or reset, whichever the kernel says
        socket.create_connection(("127.0.0.1", proxy["port"]), timeout=1).close()
    status = json.loads(app.orchestrate("proxy", "status", "--profile", "app", "--json").stdout)
    assert status["healthy"], status
    assert status["reached"].startswith("the engine is elsewhere"), status["reached"]


@pytest.mark.serial  # it asserts that the decision took no timeout to make
def test_a_build_goes_through_the_engine_s_proxy(
    app: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    remove_proxy(proxy["name"], proxy["cache_volume"])  # a cold proxy, made by this build
    upstream.mark()
    started = time.monotonic()
    first = build(app, "--fresh")
    took = time.monotonic() - started
    assert built_mode(first) == "proxy", first.stderr
    assert decision(first)["bounded"] < 1.0, "no timeout was waited out"
    report = cache_event(first)
    assert report["source"] == "access-log", report
    assert report["cached_files"] + report["fetched_files"] == FILES, report
    fetched = [r["path"] for r in upstream.file_downloads()]
    assert len(fetched) == len(set(fetched)) == FILES, "each file fetched from the upstream once"
    assert took < 60, f"a cold build through the engine's proxy took {took:.0f} s"
    again = build(app, "--fresh")
    assert built_mode(again) == "proxy"
    assert cache_event(again)["pages"]["cached_files"] >= 1, "its pages counted by its proxy"


@pytest.fixture
def look_alike(app: Workspace, proxy: dict[str, Any]) -> Iterator[Front]:
    """Another proxy on this machine's loopback, at the engine's proxy's port, with the
    same settings (it answers their digest) from another container: if a build took it
    for the engine's, readiness and the cache report would ask it."""
    status = json.loads(app.orchestrate("proxy", "up", "--profile", "app", "--json").stdout)
    served = Front({}, port=proxy["port"])
    served.identifies(status["digest"], host="10ca1c0ffee0")
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_a_look_alike_proxy_here_changes_nothing(app: Workspace, look_alike: Front) -> None:
    result = build(app, "--fresh")
    assert built_mode(result) == "proxy", result.stderr
    report = cache_event(result)
    assert report["source"] == "access-log", report
    assert report["pages"]["cached_files"] >= 1, "the engine's proxy's records, not its"
    assert "/_orchestrator/access.log" not in look_alike.asked, "its log was never read"
    assert all(path == "/_orchestrator/id" for path in look_alike.asked), look_alike.asked
    status = json.loads(app.orchestrate("proxy", "status", "--profile", "app", "--json").stdout)
    assert status["healthy"]
    assert "another container (10ca1c0ffee0)" in status["reached"] or status["reached"].startswith(
        "the engine is elsewhere"
    ), status["reached"]


def test_status_and_stats_tell_the_truth_there(app: Workspace) -> None:
    build(app)
    stats = json.loads(app.orchestrate("proxy", "stats", "--profile", "app", "--json").stdout)
    assert stats["front"]["files"] >= FILES, stats
    assert stats["backend"]["files"] == 0, "proxpi keeps no files: the front fetches them"


def test_bake_goes_through_the_engine_s_proxy(workspace: Workspace) -> None:
    workspace.profile("app", workspace.context("app-ctx", PIP_DOCKERFILE))
    path, tags = bake_file(workspace)
    result = run_bake(workspace, path, "--fresh")
    assert cache_report(result)["source"] == "access-log", result.stderr
    check_images(tags)


def test_two_jobs_share_one_proxy(
    app: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    """Two CI jobs (caches of their own) at once on a cold proxy, asking for packages no
    other test here asks for: both through it, and each file fetched from the upstream
    once."""
    pip = PIP_DOCKERFILE.replace(TOP_PACKAGE, "orch-inst-app")
    app.profile("app", app.context("jobs", pip), cache_namespace=namespace(app))
    remove_proxy(proxy["name"], proxy["cache_volume"])
    upstream.mark()
    jobs = [{"XDG_CACHE_HOME": str(app.root / f"job{n}")} for n in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda env: app.orchestrate("build", "app", "--fresh", **env), jobs)
        )
    assert [built_mode(r) for r in results] == ["proxy", "proxy"], [r.stderr for r in results]
    fetched = [r["path"] for r in upstream.file_downloads()]
    assert len(fetched) == len(set(fetched)) == FILES, fetched
    assert "orch_inst_app" in " ".join(fetched)


def test_a_job_with_files_of_its_own_hands_the_engine_none_of_them(app: Workspace) -> None:
    """A job whose files the engine does not see (a mount namespace of its own, as a job
    in a container has): found by reading a token back through the engine, and then no
    path of the job's is handed to it; what needs one is refused in one line."""
    private = app.root / "job-files"
    private.mkdir()
    context = app.root / "ctx"
    app.profile("secretive", context, secrets={"token": {"env": "JOB_TOKEN"}})
    command = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs none {private} && exec "$@"',
        "job",
        *app.command("env", "secretive", "--format", "json"),
    ]
    # The job's own files: its temporary directory and its cache (what it found out of the
    # engine) are in the tmpfs, gone for anybody else.
    own = {"TMPDIR": str(private), "XDG_CACHE_HOME": str(private / "cache")}
    env = {**os.environ, **app.env, **own, "JOB_TOKEN": "t0k"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 2, result.stderr
    (error,) = [r for r in json_lines(result.stderr) if r.get("event") == "error"]
    assert "field 'secrets': the engine is elsewhere and cannot see these files" in str(
        error["message"]
    )
    plain = app.orchestrate("env", "secretive", "--format", "json", JOB_TOKEN="t0k")
    assert json.loads(plain.stdout)["secrets"], "where the engine sees them, they are given"


def test_a_run_goes_through_the_engine_s_proxy(app: Workspace, upstream: Upstream) -> None:
    """A container joins the proxy's network on the engine and reaches it by name there:
    as much at home on an engine elsewhere as on this machine's."""
    build(app)
    script = (
        "python3 -m pip download --disable-pip-version-check --no-deps -d /tmp/d "
        f"{TOP_PACKAGE} && ls /tmp/d"
    )
    result = app.orchestrate("run", "app", "--", "sh", "-c", script)
    assert TOP_PACKAGE.replace("-", "_") in result.stdout, result.stderr
    (ran,) = [r for r in json_lines(result.stderr) if r.get("event") == "run"]
    assert ran["mode"] == "proxy", result.stderr
