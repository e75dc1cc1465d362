"""Real installers for the integration tests: a tools image, and projects locked by them.

``scripts/setup`` downloads the wheels of uv, pip-tools, poetry and poetry's PyPI-mirror
plugin (``requirements.txt`` here, every dependency pinned) once, from PyPI. The tools image
is the base image with those wheels installed by ``pip install --no-index``, so building it
reaches no index; its tag carries the digest of what it is made of, so a session reuses the
image an earlier one built, and building a new one removes the stale ones.

``make_projects`` then runs the real tools against the hermetic upstream, as a developer
runs them against PyPI: ``uv lock`` (the lock records the upstream's index and file URLs,
as a real project's records PyPI's), ``poetry lock`` through the mirror plugin, and
``pip-compile`` for pip-sync and for ``pip install --require-hashes``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from python_on_whales import docker

from devsupport.upstream_container import HERMETIC_PIP_ENV, LABEL, unique_name

HERE = Path(__file__).resolve().parent
DOCKERFILE = HERE / "Dockerfile"
REQUIREMENTS = HERE / "requirements.txt"
REPORT_SCRIPT = HERE / "report.py"
WHEELS_ENV = "ORCHESTRATE_INSTALLER_WHEELS"
DEFAULT_WHEELS = Path("/var/lib/orchestrator-setup/installer-wheels")
STAMP = ".requirements.sha256"
ROLE = "installers"
IMAGE = "orchestrator-test/installers"


class InstallersMissing(RuntimeError):
    """The installers' wheels are not where scripts/setup puts them."""


def wheel_dir() -> Path:
    """The wheel directory scripts/setup filled for exactly today's requirements."""
    directory = Path(os.environ.get(WHEELS_ENV) or DEFAULT_WHEELS)
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    try:
        found = (directory / STAMP).read_text().strip()
    except OSError:
        found = ""
    if found != wanted:
        raise InstallersMissing(
            f"{directory} does not hold the wheels of {REQUIREMENTS.relative_to(HERE.parents[2])}"
            " (run scripts/setup, which downloads them once)"
        )
    return directory


def tools_image(base: str) -> str:
    """The tools image on this engine: reused when present, else built from the wheels."""
    wheels = wheel_dir()
    digest = hashlib.sha256()
    for part in (DOCKERFILE.read_bytes(), REQUIREMENTS.read_bytes()):
        digest.update(part)
    digest.update(docker.image.inspect(base).id.encode())
    tag = f"{IMAGE}:{digest.hexdigest()[:16]}"
    if not docker.image.exists(tag):
        docker.build(
            wheels,
            file=DOCKERFILE,
            tags=[tag],
            build_args={"BASE_IMAGE": base},
            labels={LABEL: ROLE},
            load=True,
            pull=False,
            progress=False,
        )
    for image in docker.image.list(filters=[("label", f"{LABEL}={ROLE}")]):
        stale = [name for name in image.repo_tags if name != tag]
        if tag in image.repo_tags:
            for name in stale:  # another name for this very image: untag it only
                docker.image.remove(name)
        else:
            docker.image.remove(image, force=True)
    return tag


# The test project: one application that needs one library, both served by the upstream.
REQUIREMENT = "orch-inst-app"
PYPROJECT = """\
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["{requirement}"]
"""
POETRY_TABLE = """
[tool.poetry]
package-mode = false
"""


@dataclass(frozen=True)
class Projects:
    """A build context with every installer's project files, made by the installers."""

    directory: Path
    index: str  # the index URL the locks were made against, exactly as given to them
    tools: str  # the tools image that made them, a base for builds that run them

    def read(self, name: str) -> str:
        return (self.directory / name).read_text()


def make_projects(tools: str, network: str, index: str, directory: Path) -> Projects:
    """Lock the test project with uv, poetry and pip-compile against ``index``.

    The tools run in a container of the tools image on ``network``; they write into
    ``directory``, which becomes a build context (with ``report.py``) for the tests.
    """
    (directory / "uv").mkdir(parents=True)
    (directory / "poetry").mkdir()
    (directory / "uv" / "pyproject.toml").write_text(
        PYPROJECT.format(name="orch-uv-project", requirement=REQUIREMENT)
    )
    (directory / "poetry" / "pyproject.toml").write_text(
        PYPROJECT.format(name="orch-poetry-project", requirement=REQUIREMENT) + POETRY_TABLE
    )
    (directory / "requirements.in").write_text(f"{REQUIREMENT}\n")
    shutil.copy(REPORT_SCRIPT, directory / "report.py")
    host = urlsplit(index).hostname or ""
    compile_args = (
        f"--quiet --no-emit-index-url --no-emit-trusted-host --index-url {index} "
        f"--trusted-host {host} --cache-dir /tmp/pip-tools"
    )
    script = textwrap.dedent(f"""\
        set -e
        cd /work/uv && uv lock --quiet --default-index {index}
        cd /work/poetry && POETRY_PYPI_MIRROR_URL={index} poetry lock --quiet
        cd /work
        pip-compile {compile_args} -o requirements.txt requirements.in
        pip-compile {compile_args} --generate-hashes -o requirements-hashes.txt requirements.in
        chmod -R a+rX /work
        """)
    env = {
        **HERMETIC_PIP_ENV,
        "UV_CACHE_DIR": "/tmp/uv",
        "POETRY_CACHE_DIR": "/tmp/poetry",
        "HOME": "/tmp/home",
    }
    argv = ["docker", "run", "--rm", "--name", unique_name("lock"), "--network", network]
    argv += ["--label", f"{LABEL}=lock", "--volume", f"{directory}:/work"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    result = subprocess.run(
        [*argv, tools, "sh", "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"locking the test projects failed:\n{result.stdout}{result.stderr}")
    return Projects(directory, index, tools)
