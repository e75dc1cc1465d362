"""`orchestrate bake` on the real engine and buildx: proxy, exported override, fallback.

Bake runs from the project's directory, as users run it: current buildx asks to be allowed
to read anything outside it (the targets' contexts here are inside, orchestrator's own
rendered files are not, and orchestrator grants exactly those).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from python_on_whales import docker

from devsupport.upstream_container import Upstream, json_lines
from tests.integration.conftest import (
    PIP_DOCKERFILE,
    Workspace,
    address_of,
    base_image,
    free_port,
)

CHECK = "venv/bin/python -c 'import orch_demo_app, orch_demo_lib; print(\"ok\")'"


def bake_file(workspace: Workspace) -> tuple[Path, list[str]]:
    """Two targets from two contexts, tagged so the workspace cleans them up."""
    tags = []
    blocks = []
    for name in ("one", "two"):
        context = workspace.context(name, PIP_DOCKERFILE + f"RUN echo {name} > which\n")
        tag = f"orchestrator-test/bake-{name}:{workspace.root.name}"
        tags.append(tag)
        blocks.append(
            f'target "{name}" {{\n  context = "{context}"\n'
            f'  args = {{ BASE_IMAGE = "{base_image()}" }}\n  tags = ["{tag}"]\n'
            f'  labels = {{ "io.orchestrator.test-run" = "{workspace.marker}" }}\n}}\n'
        )
    path = workspace.root / "docker-bake.hcl"
    path.write_text('group "default" {\n  targets = ["one", "two"]\n}\n' + "".join(blocks))
    return path, tags


def run_bake(workspace: Workspace, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`orchestrate bake --profile app -f PATH ARGS`, run from the project's directory."""
    return workspace.orchestrate(
        "bake", "--profile", "app", "-f", str(path), *args, cwd=workspace.root
    )


def cache_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one cache report of a bake, for all its targets."""
    (found,) = [r for r in json_lines(result.stderr) if r.get("event") == "cache report"]
    assert str(found["message"]).startswith("orchestrate: cache: ")
    return dict(found["cache"])


def check_images(tags: list[str]) -> None:
    for tag, name in zip(tags, ("one", "two"), strict=True):
        output = docker.run(tag, ["sh", "-c", f"{CHECK} && cat which"], remove=True)
        assert output.split() == ["ok", name]


def test_bake_builds_two_targets_through_the_proxy(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    path, tags = bake_file(workspace)
    workspace.profile("app", workspace.context("unused", PIP_DOCKERFILE))
    dry = run_bake(workspace, path, "--dry-run").stdout
    assert dry.count("mode:       proxy") == 2, dry
    assert "network: host" in dry
    upstream.mark()
    result = run_bake(workspace, path, "--fresh")
    event = next(r for r in json_lines(result.stderr) if r.get("event") == "bake")
    assert event["modes"] == {"one": "proxy", "two": "proxy"}
    report = cache_report(result)
    assert (report["mode"], report["source"]) == ("proxy", "access-log"), report
    asked = report["pages"]["cached_files"] + report["pages"]["fetched_files"]
    assert asked >= 2, "each target's pip asked the front for its two projects' pages"
    check_images(tags)
    # Pages by proxpi, files by the front (issue 22): the proxy's two containers alone.
    addresses = {
        address_of(name, proxy["network"]) for name in (proxy["name"], f"{proxy['name']}-backend")
    }
    fetches = [r for r in upstream.requests() if r["method"] != "HEAD"]
    assert {r["client"] for r in fetches} <= addresses


def test_printed_command_reproduces_the_build_with_plain_bake(
    workspace: Workspace, proxy: dict[str, Any]
) -> None:
    path, tags = bake_file(workspace)
    workspace.profile("app", workspace.context("unused", PIP_DOCKERFILE))
    printed = run_bake(workspace, path, "--print").stdout
    exported = json.loads(run_bake(workspace, path, "--print", "--json").stdout)
    assert printed.strip() == exported["command"]
    assert set(exported["override"]["target"]) == {"one", "two"}
    for target in exported["override"]["target"].values():
        assert Path(target["dockerfile"]).is_file()
        assert any(s.startswith("id=orchestrator-env,src=") for s in target["secret"])
    for tag in tags:
        if docker.image.exists(tag):
            docker.image.remove(tag, force=True)
    result = subprocess.run(
        exported["argv"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=workspace.root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_images(tags)


def test_bake_falls_back_to_cache_mounts(workspace: Workspace, upstream: Upstream) -> None:
    path, tags = bake_file(workspace)
    workspace.profile(
        "app",
        workspace.context("unused", PIP_DOCKERFILE),
        proxy={"url": f"http://127.0.0.1:{free_port()}/index/"},
        cache_namespace=f"orchestrator-test-{uuid.uuid4().hex[:12]}",
    )
    upstream.mark()
    run_bake(workspace, path, "--fresh")
    check_images(tags)
    assert upstream.file_downloads(), "a new cache namespace starts empty"
    upstream.mark()
    result = run_bake(workspace, path, "--fresh")
    event = next(r for r in json_lines(result.stderr) if r.get("event") == "bake")
    assert event["modes"] == {"one": "cache-mount", "two": "cache-mount"}
    assert upstream.file_downloads() == []
    report = cache_report(result)
    assert report["mode"] == "cache-mount"
    if report["source"] != "not-told":  # BuildKit 0.8 (Docker 20.10) names no mount ids
        assert report["source"] == "buildx-du", report
        assert report["mount_bytes_before"] > 400_000, "both targets' mounts, filled before"
