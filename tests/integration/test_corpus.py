"""Real projects' own Dockerfiles (tests/corpus, each named by repository and commit in its
SOURCE.json), built as a new user would: plain `docker buildx build` first, then
orchestrate `--fresh` through the proxy (to warm it), plain orchestrate, `--fresh` again,
and `--no-proxy`.

Asserted for each project, on each engine: every build leaves the same distributions as
plain docker; the `--fresh` build through the warm proxy fetches nothing from the upstream;
the build through the proxy names exactly the RUN lines that go elsewhere (issue 21: they
were told in `--dry-run` only, or not at all); and no file of the project changes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import docker

from devsupport.upstream_container import Upstream
from tests.integration.conftest import TEST_LABEL, Workspace, built_mode
from tests.integration.test_installers import measure, project_files
from tests.support import corpus

PROJECTS = corpus.projects()


@pytest.fixture(scope="module")
def corpus_base(tools: str, upstream: Upstream) -> str:
    """The tools image as a python:3.x image whose ENV names the test upstream."""
    tag = corpus.base_image(tools, upstream.host_url)
    corpus.remove_base_images(keep=tag)
    return tag


def plain_build(space: Workspace, context: Path, project: corpus.Project) -> str:
    """`docker buildx build` as the project's README says, with nothing of orchestrate:
    the image's tag, or '' when it failed."""
    tag = f"orchestrator-test/corpus-{project.name}:plain-{space.marker[:12]}"
    argv = ["docker", "buildx", "build", "--network", "host", "--load", "--tag", tag]
    argv += ["--label", f"{TEST_LABEL}={space.marker}", str(context)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        print(f"\nplain docker failed for {project.name}:\n{result.stderr[-3000:]}")
    return tag if result.returncode == 0 else ""


def orchestrated(space: Workspace, project: corpus.Project, *flags: str) -> dict[str, Any]:
    result = space.orchestrate("build", project.name, "--json", *flags)
    outcome: dict[str, Any] = json.loads(result.stdout)
    outcome["mode"] = built_mode(result)
    return outcome


@pytest.fixture
def space(workspace: Workspace, proxy: dict[str, Any]) -> Workspace:
    """A workspace whose proxy is removed after the session."""
    return workspace


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_a_real_project_builds_alike_in_every_mode(
    project: corpus.Project, space: Workspace, upstream: Upstream, network: str, corpus_base: str
) -> None:
    workspace = space
    context = corpus.prepare(project, workspace.root / "projects", corpus_base, network)
    before = project_files(context)
    tag = workspace.profile(project.name, context, cache_namespace=f"c-{workspace.marker[:12]}")
    plain_tag = plain_build(workspace, context, project)
    if project.plain_fails(str(docker.system.info().server_version)):
        assert not plain_tag, "plain docker was expected to fail on this engine"
        failed = workspace.orchestrate("build", project.name, check=False)
        assert failed.returncode == 4, "orchestrate fails where plain docker does, no worse"
        assert project_files(context) == before
        return
    assert plain_tag, f"plain docker failed for {project.name}"
    plain = corpus.installed(plain_tag)
    assert plain, f"{project.name}: plain docker installed nothing the upstream serves"
    fetched_ones = set(plain) - corpus.from_elsewhere(plain)
    assert fetched_ones <= corpus.served(PROJECTS), "every distribution came from the upstream"
    # `--fresh` first: an engine can hold the wired step's layer from an earlier run
    # (BuildKit 0.2x keys a step without its cache mounts' ids; seen on the current engine),
    # and a build served from layers asks the proxy nothing, leaving it cold.
    warming = orchestrated(workspace, project, "--fresh")
    assert warming["mode"] == "proxy"
    assert [b["line"] for b in warming["bypasses"]] == project.bypasses
    assert corpus.installed(tag) == plain
    through = orchestrated(workspace, project)
    assert through["mode"] == "proxy"
    assert [b["line"] for b in through["bypasses"]] == project.bypasses
    assert corpus.installed(tag) == plain
    upstream.mark()
    fresh = orchestrated(workspace, project, "--fresh")
    fetched = upstream.file_downloads()
    assert fresh["mode"] == "proxy"
    if not project.bypasses:
        assert fetched == [], "the warm proxy served every file of the --fresh build"
    assert corpus.installed(tag) == plain
    fallback = orchestrated(workspace, project, "--no-proxy")
    assert fallback["mode"] == "cache-mount"
    assert corpus.installed(tag) == plain
    assert project_files(context) == before, "no file of the project changed"
    measure(f"corpus {project.name}", distributions=len(plain), fetched_on_fresh=len(fetched))
