"""Set-up that is done once and cached under ``bench/.cache/``: the wheels, the index, contexts.

The wheel set is the pinned ``bench/requirements.txt`` (numpy, pandas and their
dependencies for CPython 3.11 on manylinux x86_64), downloaded once with pip. That is the
only step that reaches the network; everything after it is served from the local upstream.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from devsupport.index import write_simple_index
from devsupport.wheels import normalize_name

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE = BENCH_DIR / ".cache"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
MARKER = "orchestrator-bench"
APP_DIR = f"/opt/{MARKER}"

# Debian 12's python3 is 3.11 with glibc 2.36: these platform tags cover the wheels it runs.
PLATFORMS = (
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_28_x86_64",
)

# Every RUN names /opt/orchestrator-bench, so the build cache records the benchmark makes
# can be told apart from anybody else's and pruned at the end.
HEADER = textwrap.dedent(f"""\
    ARG BASE_IMAGE=python:3.12-slim
    FROM ${{BASE_IMAGE}} AS base
    ARG USER_NAME=app
    ARG USER_ID=1000
    ARG GROUP_ID=1000
    RUN groupadd -g "${{GROUP_ID}}" "${{USER_NAME}}" \\
     && useradd -m -l -u "${{USER_ID}}" -g "${{GROUP_ID}}" "${{USER_NAME}}" \\
     && install -d -o "${{USER_ID}}" -g "${{GROUP_ID}}" {APP_DIR}
    USER ${{USER_NAME}}
    WORKDIR {APP_DIR}
    RUN python3 -m venv {APP_DIR}/venv
    COPY requirements.txt .

    # Everything above is cached (and built once, --target base, before the clock runs);
    # a new bust.txt in the context re-runs only the install step. A file, not a build
    # arg: a profile whose build args change is a new plan, and the remembered plan's
    # fast path (orchestrator/builds/remembered.py) would never apply.
    FROM base AS install
    COPY bust.txt .
    """)

# --no-compile: byte-compiling numpy and pandas is ~6 s of CPU on this machine, the same in
# every mode; left on, it would bury the differences in delivery that the modes are about.
PIP = f"{APP_DIR}/venv/bin/pip install --disable-pip-version-check --no-compile"

# What users have today: pip pointed at an index by build args; the orchestrated modes use
# the same file (orchestrator then gives pip its settings through a secret instead).
APP_DOCKERFILE = HEADER + textwrap.dedent(f"""\
    ARG PIP_INDEX_URL
    ARG PIP_TRUSTED_HOST
    RUN {PIP} -r requirements.txt
    """)

# The physical floor of the step: the same wheels already in the context, no index at all.
FLOOR_DOCKERFILE = HEADER + textwrap.dedent(f"""\
    RUN --mount=type=bind,source=wheels,target=/tmp/wheels \\
        {PIP} --no-index --find-links /tmp/wheels -r requirements.txt
    """)


BUST = "bust.txt"


@dataclass(frozen=True)
class Fixtures:
    wheels: Path
    index: Path
    app_context: Path
    floor_context: Path
    files: dict[str, int]  # wheel file name -> size in bytes

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def context_copy(self, name: str, source: Path | None = None) -> Path:
        """A context of its own (for a build that runs beside others, each with its own
        bust.txt): the files of ``source`` (the app context unless said), hard-linked."""
        source = source or self.app_context
        copy = self.app_context.parent / name
        _link_tree(source, copy)
        (copy / BUST).unlink(missing_ok=True)
        for directory in (p for p in source.iterdir() if p.is_dir()):
            _link_tree(directory, copy / directory.name)
        return copy


def bust(context: Path) -> str:
    """A new bust.txt in ``context``: BuildKit re-runs the install step, and nothing else."""
    token = secrets.token_hex(6)
    temporary = context / f".{BUST}.tmp"
    temporary.write_text(token + "\n")
    temporary.replace(context / BUST)  # a new inode: the next build sees the new content
    return token


def pinned() -> dict[str, str]:
    """Normalised project name -> pinned version, from bench/requirements.txt."""
    pins: dict[str, str] = {}
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalize_name(name.strip())] = version.strip()
    return pins


def _have(wheels: Path, pins: dict[str, str]) -> bool:
    found = {
        normalize_name(p.name.split("-")[0]): p.name.split("-")[1] for p in wheels.glob("*.whl")
    }
    return found == pins


def download_wheels(wheels: Path) -> None:
    """pip download the pinned set once (idempotent: skipped when exactly those are there)."""
    pins = pinned()
    if wheels.is_dir() and _have(wheels, pins):
        return
    if wheels.exists():
        shutil.rmtree(wheels)
    partial = wheels.with_name(wheels.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps"]
    argv += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    argv += ["-r", str(REQUIREMENTS), "-d", str(partial)]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env.setdefault("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    print(f"bench: downloading the pinned wheel set into {wheels}", file=sys.stderr)
    subprocess.run(argv, check=True, env=env, stdout=sys.stderr)
    if not _have(partial, pins):
        raise SystemExit(f"bench: pip download did not give exactly {pins} in {partial}")
    partial.rename(wheels)


def _link_tree(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in source.iterdir()}
    for stale in target.iterdir():
        if stale.name not in wanted and stale.name != BUST:
            stale.unlink()
    for path in source.iterdir():
        if path.name == BUST or not path.is_file():
            continue
        linked = target / path.name
        if linked.exists() and linked.stat().st_ino == path.stat().st_ino:
            continue
        linked.unlink(missing_ok=True)
        try:
            os.link(path, linked)
        except OSError:
            shutil.copyfile(path, linked)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def prepare() -> Fixtures:
    """Everything the runs need on disk; cheap when it is already there."""
    wheels = CACHE / "wheels"
    download_wheels(wheels)
    index = CACHE / "index"
    files_dir = index / "files"
    names = sorted(p.name for p in wheels.glob("*.whl"))
    current = sorted(p.name for p in files_dir.glob("*.whl")) if files_dir.is_dir() else []
    if current != names or not (index / "simple" / "index.html").is_file():
        write_simple_index(wheels, index)
    requirements = REQUIREMENTS.read_text()
    app = CACHE / "context" / "app"
    floor = CACHE / "context" / "floor"
    for context, dockerfile in ((app, APP_DOCKERFILE), (floor, FLOOR_DOCKERFILE)):
        context.mkdir(parents=True, exist_ok=True)
        _write_if_changed(context / "Dockerfile", dockerfile)
        _write_if_changed(context / "requirements.txt", requirements)
        if not (context / BUST).is_file():
            bust(context)
    _link_tree(wheels, floor / "wheels")
    return Fixtures(
        wheels=wheels,
        index=index,
        app_context=app,
        floor_context=floor,
        files={p.name: p.stat().st_size for p in wheels.glob("*.whl")},
    )
