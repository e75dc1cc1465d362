"""`orchestrate bake` on the real engine and buildx: proxy, exported override, fallback."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from python_on_whales import docker

from tests.integration.conftest import PIP_DOCKERFILE, Workspace, base_image, free_port
from tests.support.upstream_container import Upstream

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
            f'  args = {{ BASE_IMAGE = "{base_image()}" }}\n  tags = ["{tag}"]\n}}\n'
        )
    path = workspace.root / "docker-bake.hcl"
    path.write_text('group "default" {\n  targets = ["one", "two"]\n}\n' + "".join(blocks))
    return path, tags


def check_images(tags: list[str]) -> None:
    for tag, name in zip(tags, ("one", "two"), strict=True):
        output = docker.run(tag, ["sh", "-c", f"{CHECK} && cat which"], remove=True)
        assert output.split() == ["ok", name]


def test_bake_builds_two_targets_through_the_proxy(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    path, tags = bake_file(workspace)
    workspace.profile("app", workspace.context("unused", PIP_DOCKERFILE))
    dry = workspace.orchestrate("bake", "--profile", "app", "-f", str(path), "--dry-run").stdout
    assert dry.count("mode:       proxy") == 2
    assert "network: default (bake has no network attribute" in dry
    workspace.orchestrate("bake", "--profile", "app", "-f", str(path), "--fresh")
    check_images(tags)


def test_exported_override_reproduces_the_build_with_plain_bake(
    workspace: Workspace, proxy: dict[str, Any], upstream: Upstream
) -> None:
    path, tags = bake_file(workspace)
    workspace.profile("app", workspace.context("unused", PIP_DOCKERFILE))
    override = json.loads(
        workspace.orchestrate("bake", "--profile", "app", "-f", str(path), "--print").stdout
    )
    assert set(override["target"]) == {"one", "two"}
    for target in override["target"].values():
        assert Path(target["dockerfile"]).is_file()
        assert any(s.startswith("id=orchestrator-env,src=") for s in target["secret"])
    override_file = workspace.root / "override.json"
    override_file.write_text(json.dumps(override))
    for tag in tags:
        if docker.image.exists(tag):
            docker.image.remove(tag, force=True)
    result = subprocess.run(
        ["docker", "buildx", "bake", "-f", str(path), "-f", str(override_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_images(tags)


def test_bake_falls_back_to_cache_mounts(workspace: Workspace, upstream: Upstream) -> None:
    networks = docker.container.inspect(upstream.name).network_settings.networks or {}
    if "bridge" not in networks:
        docker.network.connect("bridge", upstream.name)
    address = docker.container.inspect(upstream.name).network_settings.networks["bridge"].ip_address
    path, tags = bake_file(workspace)
    workspace.profile(
        "app",
        workspace.context("unused", PIP_DOCKERFILE),
        proxy={
            "url": f"http://127.0.0.1:{free_port()}/index/",
            "index": f"http://{address}:8080/simple/",
        },
        cache_namespace=f"orchestrator-test-{uuid.uuid4().hex[:12]}",
    )
    upstream.mark()
    workspace.orchestrate("bake", "--profile", "app", "-f", str(path), "--fresh")
    check_images(tags)
    assert upstream.file_downloads(), "a new cache namespace starts empty"
    upstream.mark()
    result = workspace.orchestrate("bake", "--profile", "app", "-f", str(path), "--fresh")
    assert '"modes": {"one": "cache-mount", "two": "cache-mount"}' in result.stderr
    assert upstream.file_downloads() == []
