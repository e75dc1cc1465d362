"""`orchestrate build` on the real engine: plain builds, wiring, and nothing leaked."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import docker

from orchestrator.plan.model import PROFILE_LABEL
from tests.integration.conftest import TOP_PACKAGE, USER_HEADER, Workspace, built_mode

REPORTING_DOCKERFILE = USER_HEADER + textwrap.dedent(f"""\
    RUN mkdir report && id -u > report/uid && id -un > report/user
    RUN echo "$PIP_INDEX_URL" > report/index
    RUN --mount=type=ssh ssh-add -l > report/ssh 2>&1 || echo "no agent" > report/ssh
    RUN wc -c < "$SSL_CERT_FILE" > report/ca_bytes
    RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -d' ' -f1 > report/token
    RUN python3 -m venv venv && venv/bin/pip install --disable-pip-version-check {TOP_PACKAGE} \\
     && venv/bin/pip download --no-deps -d /tmp/x {TOP_PACKAGE} 2>&1 | grep -o 'http://[^ ]*' \\
        | head -n1 > report/download_url
    """)


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ssh-agent holding a key generated for this test; yields (socket, fingerprint)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if Path(sock).exists():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        subprocess.run(
            ["ssh-add", "-q", str(key)],
            env={"SSH_AUTH_SOCK": sock},
            check=True,
            capture_output=True,
        )
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        yield sock, fingerprint
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def read_report(image: str) -> dict[str, str]:
    output = docker.run(
        image, ["sh", "-c", 'cd report && for f in *; do echo "$f=$(cat $f)"; done'], remove=True
    )
    return dict(line.split("=", 1) for line in str(output).splitlines())


def image_layers_text(image: str) -> tuple[bytes, list[str]]:
    """Every file of every layer of the image, concatenated, and the layers' file names."""
    saved = subprocess.run(["docker", "save", image], capture_output=True, check=True).stdout
    blobs = []
    names: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer.getmembers():
            if member.name.endswith("layer.tar"):
                layer = outer.extractfile(member)
                assert layer is not None
                with tarfile.open(fileobj=io.BytesIO(layer.read())) as inner:
                    for entry in inner.getmembers():
                        names.append(entry.name)
                        if entry.isfile():
                            handle = inner.extractfile(entry)
                            blobs.append(
                                entry.name.encode() + b"\n" + (handle.read() if handle else b"")
                            )
            elif member.isfile():
                handle = outer.extractfile(member)
                blobs.append(handle.read() if handle else b"")
    return b"\n".join(blobs), names


def test_plain_build_leaves_a_labelled_image(workspace: Workspace) -> None:
    context = workspace.context(
        "plain",
        """\
        ARG BASE_IMAGE=python:3.12-slim
        FROM ${BASE_IMAGE} AS runtime
        RUN echo built > /built
        """,
    )
    tag = workspace.profile(
        "plain", context, proxy="off", target="runtime", labels={"org.example.team": "infra"}
    )
    result = workspace.orchestrate("build", "plain")
    assert built_mode(result) == "off"
    image = docker.image.inspect(tag)
    labels = image.config.labels or {}
    assert labels["org.example.team"] == "infra"
    assert labels[PROFILE_LABEL] == "plain"


def test_build_through_proxy_sees_everything_and_leaks_nothing(
    workspace: Workspace, proxy: dict[str, Any], ssh_agent: tuple[str, str], tmp_path: Path
) -> None:
    sock, fingerprint = ssh_agent
    marker = f"ORCHESTRATOR-TEST-CA-{uuid.uuid4().hex}"
    ca = tmp_path / "ca.pem"
    ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text() + f"# {marker}\n")
    token = f"s3cret-{uuid.uuid4().hex}"
    context = workspace.context("report", REPORTING_DOCKERFILE)
    tag = workspace.profile(
        "report",
        context,
        ssh=True,
        ca_bundle=str(ca),
        user={"name": "builder", "uid": 1234, "gid": 2345},
        secrets={"token": {"env": "ORCH_TEST_TOKEN"}},
    )
    dry = json.loads(
        workspace.orchestrate(
            "build", "report", "--dry-run", "--json", SSH_AUTH_SOCK=sock, ORCH_TEST_TOKEN=token
        ).stdout
    )
    workspace.orchestrate("build", "report", "--fresh", SSH_AUTH_SOCK=sock, ORCH_TEST_TOKEN=token)

    proxy_url = f"http://127.0.0.1:{proxy['port']}/index/"
    assert dry["mode"] == "proxy"
    assert dry["argv"][dry["argv"].index("--network") + 1] == "host"
    report = read_report(tag)
    assert report["uid"] == "1234"
    assert report["user"] == "builder"
    assert report["index"] == proxy_url
    assert report["download_url"].startswith(proxy_url)
    assert fingerprint in report["ssh"]
    assert int(report["ca_bytes"]) == len(ca.read_bytes())
    assert report["token"] == hashlib.sha256(token.encode()).hexdigest()

    history = subprocess.run(
        ["docker", "history", "--no-trunc", tag], capture_output=True, text=True, check=True
    ).stdout
    layers, names = image_layers_text(tag)
    for needle in (token, marker, "PIP_INDEX_URL=", proxy_url, sock, "BEGIN CERTIFICATE"):
        assert needle not in history, needle
    for needle in (token, marker, "PIP_INDEX_URL="):
        assert needle.encode() not in layers, needle
    assert not [n for n in names if n.endswith(("pip.conf", "uv.toml", "orchestrator-env"))]


def test_ssh_without_an_agent_is_one_clear_line(workspace: Workspace) -> None:
    context = workspace.context("report", REPORTING_DOCKERFILE)
    workspace.profile("report", context, ssh=True)
    result = workspace.orchestrate("build", "report", check=False, SSH_AUTH_SOCK="")
    assert result.returncode == 2
    assert "field 'ssh'" in result.stderr
    assert "Traceback" not in result.stderr


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` by content, and every directory, as they are now."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "dir"
        for path in sorted(root.rglob("*"))
    }


def test_no_mode_writes_a_file_of_the_project(workspace: Workspace, proxy: dict[str, Any]) -> None:
    """First, do no harm: the project's files are read, never written, by a build through
    the proxy, a fresh one, the fallback and a dry run (their copies go to the cache)."""
    dockerfile = USER_HEADER + textwrap.dedent("""\
        COPY requirements.txt uv.lock ./
        RUN python3 -m venv venv && venv/bin/pip install --disable-pip-version-check \\
            -r requirements.txt
        """)
    context = workspace.context(
        "project",
        dockerfile,
        {
            "requirements.txt": f"{TOP_PACKAGE}\n",
            "uv.lock": 'version = 1\n[[package]]\nname = "x"\n',
        },
    )
    workspace.profile("app", context)
    before = tree_digest(context)
    for args in ((), ("--fresh",), ("--no-proxy",), ("--dry-run",), ("--no-proxy", "--fresh")):
        workspace.orchestrate("build", "app", *args)
    assert tree_digest(context) == before
