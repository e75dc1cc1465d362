"""A proxy a fleet shares (issue 20): `orchestrate proxy up` on a cache host that
publishes it on a routable address, and CI jobs on other engines whose profiles point at
it (`proxy.url`). The jobs are the repository's own examples, run as their CI systems
would run them: examples/ci/gitlab/.gitlab-ci.yml (its engine a `docker:dind` service,
here the remote engine) and examples/ci/jenkins/Jenkinsfile (an agent with the host's
socket, here the stock engine). The cache host is the remote engine, its proxy published
on its own address, which both engines' RUN steps reach.

Run by scripts/test on the remote engine (the stock one runs beside it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from python_on_whales import DockerClient, docker
from python_on_whales.exceptions import NoSuchImage

from devsupport.upstream_container import Upstream
from tests.conftest import REPO
from tests.integration.conftest import TEST_LABEL, base_image, free_port, remove_proxy

pytestmark = pytest.mark.remote
CACHE_HOST = "10.251.0.2"  # the remote engine's own address (scripts/engines)
STOCK = "unix:///var/run/docker.sock"
FILES = 2  # orch-demo-app and orch-demo-lib


@pytest.fixture
def ci(tmp_path: Path, upstream: Upstream, network: str) -> Iterator[dict[str, Any]]:
    """The examples' tree, its profiles pointed at this run's cache host and upstream."""
    work = tmp_path / "work"
    shutil.copytree(REPO / "examples" / "ci", work / "examples" / "ci")
    profiles = work / "examples" / "ci" / "profiles"
    port, marker = free_port(), uuid.uuid4().hex[:12]
    name = f"orchestrator-test-fleet-{marker}"
    cache_host = yaml.safe_load((profiles / "cache-host.yaml").read_text())
    cache_host["proxy"].update(
        bind=CACHE_HOST,
        port=port,
        name=name,
        network=network,
        cache_volume=f"{name}-cache",
        index=upstream.host_url,
        health_project="orch-demo-app",
        ca_bundle="off",
    )
    (profiles / "cache-host.yaml").write_text(yaml.safe_dump(cache_host))
    app = yaml.safe_load((profiles / "app.yaml").read_text())
    app["proxy"].update(url=f"http://{CACHE_HOST}:{port}/index/", health_project="orch-demo-app")
    app.update(
        tags=[f"orchestrator-test/fleet:{marker}"],
        build_args={"BASE_IMAGE": base_image()},
        labels={TEST_LABEL: marker},
        ca_bundle="off",
        # Cache mounts of this run's own: each engine keeps its own from run to run.
        cache_namespace=f"orchestrator-test-{marker}",
    )
    (profiles / "app.yaml").write_text(yaml.safe_dump(app))
    found = {"work": work, "profiles": profiles, "tag": app["tags"][0]}
    yield found
    remove_proxy(name, f"{name}-cache")
    for client in (docker, DockerClient(host=STOCK)):
        with suppress(NoSuchImage):
            client.image.remove(found["tag"], force=True)


def job_env(variables: dict[str, str]) -> dict[str, str]:
    """A job's environment: this machine's, orchestrate on PATH, the CI's variables."""
    env = {**os.environ, **variables}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return env


def run_lines(lines: list[str], env: dict[str, str], cwd: Path) -> None:
    for line in lines:
        done = subprocess.run(
            ["bash", "-c", line],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"


def test_proxy_up_on_a_cache_host_serves_jobs_on_two_engines(
    ci: dict[str, Any], upstream: Upstream
) -> None:
    work: Path = ci["work"]
    cache_host = job_env({"ORCHESTRATE_PROFILES_DIR": str(ci["profiles"])})
    run_lines(["orchestrate proxy up --profile cache-host"], cache_host, work)
    upstream.mark()

    gitlab = yaml.safe_load((work / "examples/ci/gitlab/.gitlab-ci.yml").read_text())
    job = gitlab["build-app"]
    variables = {**gitlab["variables"], **job.get("variables", {})}
    assert variables["DOCKER_HOST"] == "tcp://docker:2375"  # the dind service: the engine
    variables["DOCKER_HOST"] = os.environ["DOCKER_HOST"]  # ... is the remote engine here
    run_lines(job["script"], job_env(variables), work)
    assert docker.image.exists(ci["tag"]), "built on the dind engine"
    first = [r["path"] for r in upstream.file_downloads()]
    assert len(first) == FILES, first

    jenkinsfile = (work / "examples/ci/jenkins/Jenkinsfile").read_text()
    steps = re.findall(r"^\s*sh '([^']*)'", jenkinsfile, flags=re.MULTILINE)
    environment = dict(re.findall(r"^\s*(\w+) = '([^']*)'", jenkinsfile, flags=re.MULTILINE))
    assert "/var/run/docker.sock:/var/run/docker.sock" in jenkinsfile  # the host's engine
    agent = job_env({**environment, "DOCKER_HOST": STOCK})
    agent.pop("DOCKER_CONFIG", None)  # the stock engine's own client configuration
    run_lines(steps, agent, work)
    assert DockerClient(host=STOCK).image.exists(ci["tag"]), "built on the host's engine"
    assert [r["path"] for r in upstream.file_downloads()] == first, (
        "the second engine's job was served from the shared proxy's cache"
    )
