"""An index behind a login (issue 20): the hermetic upstream behind nginx `auth_basic`, the
usual stand-in for Artifactory's or Nexus' basic auth. A build reaches it with
`proxy.credentials` through the managed proxy and in the fallback, and the password is
in no plan, no remembered plan, no log line and no layer of the image."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import docker
from python_on_whales.exceptions import NoSuchContainer

from devsupport.upstream_container import Upstream
from orchestrator.proxy.spec import LOCAL_FRONT_IMAGE
from tests.integration.conftest import (
    PIP_DOCKERFILE,
    Workspace,
    built_mode,
    free_port,
    remove_proxy,
)

PASSWORD = "s3cr3t-pa55w0rd"
LOGIN = """\
events {{}}
http {{
  server {{
    listen 8081;
    location / {{
      auth_basic "index";
      auth_basic_user_file /tmp/users;
      proxy_pass {upstream};
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def login(upstream: Upstream, network: str) -> Iterator[str]:
    """The upstream behind a login; yields the index URL (no credentials in it)."""
    name = f"orchestrator-test-login-{uuid.uuid4().hex[:8]}"
    conf = LOGIN.format(upstream=upstream.host_base_url)
    script = (
        f"printf '%s' \"$CONF\" > /tmp/nginx.conf && echo 'ci:{{PLAIN}}{PASSWORD}' > /tmp/users"
        " && exec nginx -c /tmp/nginx.conf -g 'daemon off;'"
    )
    image = LOCAL_FRONT_IMAGE if docker.image.exists(LOCAL_FRONT_IMAGE) else "nginx:1.27-alpine"
    docker.run(
        image,
        ["sh", "-c", script],
        name=name,
        detach=True,
        networks=[network],
        envs={"CONF": conf},
        labels={"io.orchestrator.test": "login"},
        pull="never",
    )
    try:
        address = docker.container.inspect(name).network_settings.networks or {}
        yield f"http://{address[network].ip_address}:8081/simple/"
    finally:
        with suppress(NoSuchContainer):
            docker.container.remove(name, force=True)


@pytest.fixture
def behind_login(
    workspace: Workspace, login: str, run_id: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    secret = tmp_path / "pypi-auth"
    secret.write_text(f"ci:{PASSWORD}\n")
    name = f"orchestrator-test-login-proxy-{run_id}"
    proxy = {
        **workspace.proxy,
        "name": name,
        "port": free_port(),
        "cache_volume": f"{name}-cache",
        "index": login,
        "credentials": {"file": str(secret)},
    }
    workspace.profile(
        "app",
        workspace.context("ctx", PIP_DOCKERFILE),
        proxy=proxy,
        cache_namespace=f"orchestrator-test-{uuid.uuid4().hex[:12]}",
    )
    yield proxy
    remove_proxy(name, f"{name}-cache")


def leaks(workspace: Workspace, *texts: str) -> list[str]:
    """Where the password shows: the outputs given, remembered plans, the image."""
    found = [f"output {n}" for n, text in enumerate(texts) if PASSWORD in text]
    for path in (workspace.root / "cache").rglob("*"):
        if path.is_file() and PASSWORD.encode() in path.read_bytes():
            found.append(str(path))
    tag = json.loads((workspace.profiles / "app.yaml").read_text())["tags"][0]
    for what in (["image", "inspect", tag], ["history", "--no-trunc", tag]):
        described = subprocess.run(
            ["docker", *what], capture_output=True, text=True, timeout=60, check=True
        )
        if PASSWORD in described.stdout:
            found.append(f"docker {what[0]} {what[1]}")
    search = "grep -rl --exclude-dir=proc --exclude-dir=sys s3cr3t / 2>/dev/null || true"
    saved = docker.run(tag, ["sh", "-c", search], remove=True)
    found += [f"image file {line}" for line in str(saved).split() if line.startswith("/")]
    return found


@pytest.mark.parametrize("how", ["through the proxy", "the fallback"])
def test_an_index_behind_a_login_is_reached_and_the_password_goes_nowhere(
    workspace: Workspace, behind_login: dict[str, Any], how: str
) -> None:
    args = ("--no-proxy",) if how == "the fallback" else ()
    result = workspace.orchestrate("-v", "build", "app", "--fresh", *args)
    assert built_mode(result) == ("cache-mount" if args else "proxy"), result.stderr
    dry = workspace.orchestrate("build", "app", "--dry-run", "--json", *args)
    assert not leaks(workspace, result.stdout, result.stderr, dry.stdout, dry.stderr)
