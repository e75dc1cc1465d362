"""Real projects' Dockerfiles, built hermetically: the corpus of tests/corpus.

Each project directory holds the project's own Dockerfile and dependency files as read at
the commit its ``SOURCE.json`` names, changed only where a hermetic build must be (each
change is listed under ``changes``): the base image is the local one (``CORPUS_BASE``),
and a lock file, whose hashes are PyPI's, is made again by the real tool against the test
upstream, as the project's developers made it against PyPI.

The upstream serves a generated wheel under every name and version the project pins. The
corpus base image is the tools image (uv, pip-tools, poetry with its mirror plugin, pipenv)
with what a ``python:3.x`` image has that Debian's Python lacks (``python`` and ``pip`` on
PATH, no PEP 668 marker), and with the upstream set as every installer's index in its ENV,
as an organisation's base image names its own index: so plain ``docker buildx build`` works
without orchestrate, and orchestrate must do at least as well.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from python_on_whales import docker

from devsupport.upstream_container import LABEL, unique_name

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
ROLE = "corpus-base"
BASE_DOCKERFILE = """\
ARG TOOLS
FROM ${TOOLS}
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
 && ln -sf /usr/bin/python3 /usr/local/bin/python \\
 && printf '#!/bin/sh\\nexec python3 -m pip "$@"\\n' > /usr/local/bin/pip \\
 && chmod 755 /usr/local/bin/pip && cp /usr/local/bin/pip /usr/local/bin/pip3 \
 && mkdir -p /root/.local
ARG INDEX
ARG INDEX_HOST
ENV PIP_INDEX_URL=${INDEX} \\
    PIP_TRUSTED_HOST=${INDEX_HOST} \\
    UV_DEFAULT_INDEX=${INDEX} \\
    POETRY_PYPI_MIRROR_URL=${INDEX} \\
    PIPENV_PYPI_MIRROR=${INDEX} \
    PIP_RETRIES=0
"""
# The name the corpus Dockerfiles use for it, whatever this session's upstream is.
BASE_NAME = "orchestrator-test/corpus-python:3.11"
# Where the tools live in the base image: their distributions are not the project's.
TOOL_PREFIXES = ("/opt/uv/", "/opt/pip-tools/", "/opt/poetry/", "/opt/pipenv/", "/usr/lib/")
LIST_DISTRIBUTIONS = "find / -xdev -name '*.dist-info' -type d 2>/dev/null; true"


@dataclass(frozen=True)
class Project:
    """One corpus project: where it came from, what it pins, what a build must report."""

    name: str
    directory: Path
    source: dict[str, Any] = field(repr=False)

    @property
    def packages(self) -> dict[str, str]:
        return dict(self.source["packages"])

    @property
    def lock(self) -> str:
        """The shell command that makes the project's lock again, or ''."""
        return str(self.source.get("lock", ""))

    @property
    def bypasses(self) -> list[int]:
        """The RUN lines a build through the proxy must name as not going through it."""
        return [int(line) for line in self.source.get("bypasses", [])]

    def plain_fails(self, engine_version: str) -> bool:
        """Whether plain docker is known to fail on this engine (a heredoc on 20.10)."""
        return any(engine_version.startswith(v) for v in self.source.get("plain_fails_on", []))


def projects() -> list[Project]:
    found = []
    for source in sorted(CORPUS.glob("*/SOURCE.json")):
        data = json.loads(source.read_text())
        found.append(Project(source.parent.name, source.parent / "context", data))
    return found


def all_packages(found: list[Project]) -> dict[tuple[str, str], None]:
    """Every (name, version) some project pins, once (pip never: the projects that upgrade
    pip would get an empty one, and their next pip would fail)."""
    return {(name, version): None for p in found for name, version in p.packages.items()}


def from_elsewhere(names: list[str]) -> set[str]:
    """What a venv is seeded with (pip, setuptools), not fetched from any index."""
    return {entry for entry in names if entry.split("==")[0] in ("pip", "setuptools", "wheel")}


def served(found: list[Project]) -> set[str]:
    """``name==version`` of everything the upstream serves for the corpus."""
    return {f"{name}=={version}" for name, version in all_packages(found)}


def base_image(tools: str, index: str) -> str:
    """The corpus base image for this upstream: tagged by what it is made of, built once."""
    host = urlsplit(index).hostname or ""
    digest = hashlib.sha256(f"{BASE_DOCKERFILE}{docker.image.inspect(tools).id}{index}".encode())
    tag = f"orchestrator-test/corpus-base:{digest.hexdigest()[:16]}"
    if not docker.image.exists(tag):
        build = ["docker", "build", "-q", "-t", tag, "--label", f"{LABEL}={ROLE}"]
        build += ["--build-arg", f"TOOLS={tools}", "--build-arg", f"INDEX={index}"]
        build += ["--build-arg", f"INDEX_HOST={host}", "-"]
        subprocess.run(
            build, input=BASE_DOCKERFILE, text=True, capture_output=True, check=True, timeout=300
        )
    docker.image.tag(tag, BASE_NAME)
    return tag


def remove_base_images(keep: str) -> None:
    for image in docker.image.list(filters=[("label", f"{LABEL}={ROLE}")]):
        if keep not in image.repo_tags:
            docker.image.remove(image, force=True)


def prepare(project: Project, directory: Path, base: str, network: str) -> Path:
    """A copy of the project's files, its lock made again against the upstream."""
    context = directory / project.name
    shutil.copytree(project.directory, context)
    if project.lock:
        argv = ["docker", "run", "--rm", "--name", unique_name("corpus-lock"), "--network"]
        argv += [network, "--label", f"{LABEL}=corpus-lock", "--volume", f"{context}:/work"]
        argv += ["--workdir", "/work", "--env", "HOME=/tmp/home", base, "sh", "-c"]
        script = f"set -e; {project.lock}; chmod -R a+rX /work"
        result = subprocess.run(
            [*argv, script], capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"{project.name}: {project.lock}\n{result.stderr}"
    return context


def installed(image: str) -> list[str]:
    """``name==version`` of every distribution in the image but the tools' own."""
    found = docker.run(
        image, ["sh", "-c", LIST_DISTRIBUTIONS], entrypoint="", user="0", remove=True
    )
    names = []
    for path in str(found).split():
        if path.startswith(TOOL_PREFIXES) or "/_vendor/" in path:
            continue
        stem = path.rsplit("/", 1)[-1].removesuffix(".dist-info")
        name, _, version = stem.partition("-")
        names.append(f"{name.lower().replace('_', '-')}=={version}")
    return sorted(set(names))
