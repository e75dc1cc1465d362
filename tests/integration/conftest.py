"""Integration fixtures: the real engine, a hermetic upstream index, a real proxpi.

Everything created here is named ``orchestrator-test-...`` and removed at the end, even
when a test fails. Nothing reaches PyPI: the upstream serves wheels generated here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import docker
from python_on_whales.exceptions import NoSuchContainer, NoSuchVolume

from devsupport.index import write_simple_index
from devsupport.upstream_container import Upstream, json_lines, temporary_network
from devsupport.wheels import make_wheel
from orchestrator.proxy.state import address_on
from tests.support import corpus
from tests.support.installers import tools_image

PACKAGES = [("orch-demo-lib", "1.0", ()), ("orch-demo-app", "2.0", ("orch-demo-lib>=1.0",))]
# For the installer tests (test_installers.py): no other test asks for these, so the proxy
# has none of them cached when those tests start; orch-inst-big widens parallel races.
PACKAGES += [("orch-inst-lib", "1.0", ()), ("orch-inst-app", "1.0", ("orch-inst-lib>=1.0",))]
PACKAGES += [("orch-inst-big", "1.0", ())]
# For the many jobs on a cold proxy (test_proxy.py): asked for by no other test.
PACKAGES += [("orch-jobs-a", "1.0", ()), ("orch-jobs-b", "1.0", ("orch-jobs-a",))]
PAYLOAD_BYTES = {"orch-inst-big": 8_000_000}
TOP_PACKAGE = "orch-demo-app"
TEST_LABEL = "io.orchestrator.test-run"


def pytest_report_header() -> list[str]:
    """Name the engine in every run's header: scripts/test runs this suite on two engines."""
    server = _docker_answer("version", "--format", "{{.Server.Version}}")
    buildx = _docker_answer("buildx", "version")
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    return [f"docker engine: {server} at {where}", f"buildx: {buildx}"]


def _docker_answer(*args: str) -> str:
    try:
        result = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    lines = (result.stdout.strip() or result.stderr.strip() or "no output").splitlines()
    return lines[0] if result.returncode == 0 else f"unknown ({lines[-1]})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def engine() -> None:
    """The real engine must answer; an integration test never skips for want of it."""
    assert docker.system.info().server_version, "start dockerd (scripts/setup)"


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def network(engine: None) -> Iterator[str]:
    with temporary_network("net") as name:
        yield name


@pytest.fixture(scope="session")
def upstream(network: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    wheels = tmp_path_factory.mktemp("wheels")
    for name, version, requires in PACKAGES:
        size = PAYLOAD_BYTES.get(name, 200_000)
        make_wheel(wheels, name, version, requires=requires, payload_bytes=size, seed=name)
    for name, version in corpus.all_packages(corpus.projects()):  # real projects' pins
        make_wheel(wheels, name, version, payload_bytes=2_000, seed=f"{name}-{version}")
    tree = tmp_path_factory.mktemp("index")
    write_simple_index(wheels, tree)
    with Upstream(tree, network) as server:
        yield server


def address_of(container: str, network: str) -> str:
    """A container's IP on ``network``: whose requests the upstream's log shows."""
    address = address_on(docker.container.inspect(container), network)
    assert address, f"{container} has no address on {network}"
    return address


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def proxy_config(upstream: Upstream, network: str, run_id: str) -> dict[str, Any]:
    """Proxy settings for tests: our own name, port, volume and the hermetic upstream."""
    return {
        "name": f"orchestrator-test-proxpi-{run_id}",
        "network": network,
        "port": free_port(),
        "cache_volume": f"orchestrator-test-cache-{run_id}",
        "index": upstream.host_url,
        "health_project": TOP_PACKAGE,
        "ca_bundle": "off",
        "startup_timeout": 60,
    }


@dataclass
class Workspace:
    """A profiles directory and build contexts for one test, and a way to run the CLI."""

    root: Path
    proxy: dict[str, Any]
    env: dict[str, str]
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    def context(self, name: str, dockerfile: str, files: dict[str, str] | None = None) -> Path:
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        (directory / "Dockerfile").write_text(textwrap.dedent(dockerfile))
        for file_name, text in (files or {}).items():
            (directory / file_name).write_text(text)
        return directory

    def profile(self, name: str, context: Path, **settings: Any) -> str:
        extra = settings.pop("proxy", {})
        proxy = {**self.proxy, **({"mode": extra} if isinstance(extra, str) else extra)}
        labels = {TEST_LABEL: self.marker, **settings.pop("labels", {})}
        data = {
            "context": str(context),
            "tags": [f"orchestrator-test/{name}:{self.root.name}"],
            "build_args": {"BASE_IMAGE": base_image()},
            "ca_bundle": "off",
            "proxy": proxy,
            "labels": labels,
            **settings,
        }
        self.profiles.mkdir(exist_ok=True)
        (self.profiles / f"{name}.yaml").write_text(json.dumps(data))
        return str(data["tags"][0])

    def command(self, *args: str) -> list[str]:
        """The orchestrate command line for this workspace's profiles, logging JSON lines."""
        return [
            sys.executable,
            "-m",
            "orchestrator",
            "--log-format",
            "json",
            "--profiles-dir",
            str(self.profiles),
            *args,
        ]

    def orchestrate(
        self, *args: str, check: bool = True, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env={**os.environ, **self.env, **env},
            cwd=cwd,
            timeout=600,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result


def built_mode(result: subprocess.CompletedProcess[str]) -> str:
    """The mode a build says it used, read from its JSON event, not by substring."""
    (built,) = [r for r in json_lines(result.stderr) if r.get("event") == "built"]
    return str(built["mode"])


def base_image() -> str:
    return os.environ.get("ORCHESTRATE_BASE_IMAGE", "orchestrator/base:bookworm")


@pytest.fixture
def workspace(tmp_path: Path, proxy_config: dict[str, Any]) -> Iterator[Workspace]:
    space = Workspace(tmp_path, dict(proxy_config), {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    yield space
    _remove_images(space.marker)


def _remove_images(marker: str) -> None:
    """Every image this test built, the ones a rebuild left untagged included."""
    for image in docker.image.list(filters=[("label", f"{TEST_LABEL}={marker}")]):
        docker.image.remove(image, force=True)


@pytest.fixture(scope="session")
def proxy_cleanup(proxy_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Removes the test proxy (front and proxpi) and both volumes after the session."""
    yield proxy_config
    remove_proxy(proxy_config["name"], proxy_config["cache_volume"])


def remove_proxy(name: str, cache_volume: str) -> None:
    """The proxy's two containers and two volumes, whatever state they are in."""
    for container in (name, f"{name}-backend"):
        with suppress(NoSuchContainer):
            docker.container.remove(container, force=True)
    for volume in (cache_volume, f"{cache_volume}-front"):
        with suppress(NoSuchVolume):
            docker.volume.remove(volume)


@pytest.fixture
def proxy(proxy_cleanup: dict[str, Any]) -> dict[str, Any]:
    return proxy_cleanup


# A non-root build user made from the USER_* build args, as in the seed story.
USER_HEADER = textwrap.dedent("""\
    ARG BASE_IMAGE=python:3.12-slim
    FROM ${BASE_IMAGE}
    ARG USER_NAME=app
    ARG USER_ID=1000
    ARG GROUP_ID=1000
    RUN groupadd -g "${GROUP_ID}" "${USER_NAME}" \\
     && useradd -m -l -u "${USER_ID}" -g "${GROUP_ID}" "${USER_NAME}"
    USER ${USER_NAME}
    WORKDIR /home/${USER_NAME}
    """)

PIP_DOCKERFILE = USER_HEADER + textwrap.dedent(f"""\
    RUN python3 -m venv venv
    RUN venv/bin/pip install --disable-pip-version-check {TOP_PACKAGE}
    """)


@pytest.fixture(scope="session")
def tools(engine: None) -> str:
    """The tools image (uv, pip-tools, poetry, pipenv), built once per engine from the
    wheels scripts/setup fetched."""
    started = time.monotonic()
    tag = tools_image(base_image())
    print(f"\nMEASURED tools image ready: {time.monotonic() - started:.1f} s, {tag}")
    return tag
