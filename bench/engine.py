"""Every Docker call the benchmark makes, through python-on-whales.

Builds are timed here too: a build is one docker CLI process, started and waited for by
python-on-whales' streaming runner (``docker.buildx.build(..., stream_logs=True)``, which
adds no ``inspect`` before or after, unlike its non-streaming form), so its time is the
process's. The raw line orchestrate prints is run the same way, as printed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from python_on_whales import Volume, docker
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run, stream_stdout_and_stderr

from bench.progress import Kind

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")
_PROGRESS = re.compile(r"Set type of progress output\s*\(([^)]*)\)", re.DOTALL)


@dataclass(frozen=True)
class BuildRun:
    """One build command: its wall time, whether it succeeded, everything it printed."""

    seconds: float
    ok: bool
    output: str


def cli(*args: str) -> str:
    """A docker command python-on-whales has no typed call for, run by python-on-whales."""
    return str(run([*docker.docker_cmd, *args]))


def facts() -> dict[str, str]:
    """The engine and buildx, as the report names them."""
    info = docker.info()
    buildx = docker.buildx.version()
    found = _VERSION.search(buildx.replace("github.com/docker/buildx", ""))
    return {
        "engine": str(info.server_version),
        "kernel": str(info.kernel_version),
        "storage": str(info.driver),
        "cgroup": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
        "buildx": found.group(0).lstrip("v") if found else "?",
        "buildx_line": buildx.strip(),
    }


def progress_kinds() -> list[str]:
    """The progress types this buildx offers, from its own help: never guessed from a
    version number."""
    found = _PROGRESS.search(cli("buildx", "build", "--help"))
    return re.findall(r'"([a-z]+)"', found.group(1)) if found else []


def progress_kind() -> Kind:
    """``rawjson`` where buildx has it (0.29 does, 0.13 does not), else ``plain``."""
    return "rawjson" if "rawjson" in progress_kinds() else "plain"


def build(
    context: Path,
    *,
    tag: str,
    progress: Kind,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    metadata_file: Path | None = None,
) -> BuildRun:
    """``docker buildx build --load`` of one context, timed as one process."""
    started = time.perf_counter()
    lines = docker.buildx.build(
        context,
        tags=[tag],
        build_args=dict(build_args or {}),
        target=target,
        network="host",
        load=True,
        progress=cast(Any, progress),  # rawjson: python-on-whales passes it through
        metadata_file=metadata_file,
        stream_logs=True,
    )
    assert isinstance(lines, Iterator)  # stream_logs=True: the lines, as they come
    return _collect(started, lines)


def run_line(argv: Sequence[str], env: Mapping[str, str]) -> BuildRun:
    """A docker command line exactly as printed (``docker buildx build ...``), timed."""
    started = time.perf_counter()
    argv = [*docker.docker_cmd, *argv[1:]]
    chunks = (
        value.decode(errors="replace") for _, value in stream_stdout_and_stderr(argv, dict(env))
    )
    return _collect(started, chunks)


def _collect(started: float, chunks: Iterable[str]) -> BuildRun:
    output: list[str] = []
    try:
        output.extend(chunks)
    except DockerException as exc:
        output.append(str(exc.stderr or exc))
        return BuildRun(time.perf_counter() - started, False, "".join(output))
    return BuildRun(time.perf_counter() - started, True, "".join(output))


_FETCH = """
import json, sys, time, urllib.request
size, started = 0, time.perf_counter()
for url in sys.argv[1:]:
    with urllib.request.urlopen(url, timeout=300) as response:
        size += len(response.read())
print(json.dumps({"bytes": size, "seconds": time.perf_counter() - started}))
"""


def fetch(image: str, network: str, urls: Sequence[str]) -> tuple[int, float]:
    """(bytes, seconds) of GETs of ``urls`` one after the other, timed inside a container
    on ``network`` of this engine: the engine's side of a link, which for an engine in
    another network namespace (the remote one) the host cannot stand for."""
    output = docker.run(image, ["python3", "-c", _FETCH, *urls], networks=[network], remove=True)
    found = json.loads(str(output).strip().splitlines()[-1])
    return int(found["bytes"]), float(found["seconds"])


def image_present(image: str) -> bool:
    return bool(docker.image.exists(image))


def create_network(name: str, label: str) -> None:
    docker.network.create(name, labels={label: "1"})


def container_pid(name: str) -> int:
    return int(docker.container.inspect(name).state.pid or 0)


def container_id(name: str) -> str:
    return str(docker.container.inspect(name).id)


_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def last_layer_bytes(image: str) -> int | None:
    """Size of the image's last layer (the install step), as ``docker history`` tells."""
    try:
        out = cli("history", "--no-trunc", "--format", "{{json .}}", image)
    except DockerException:
        return None
    for line in out.splitlines():
        match = re.match(r"^([0-9.]+)\s*([kKMG]?B)$", str(json.loads(line).get("Size", "")))
        return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else None
    return None


# --- clean-up --------------------------------------------------------------------------------


def remove_named(prefix: str) -> None:
    """Containers, then volumes, then networks whose names start with ``prefix``."""
    containers = [c for c in docker.container.list(all=True) if c.name.startswith(prefix)]
    if containers:
        docker.container.remove(containers, force=True)
    volumes = [v for v in docker.volume.list() if v.name.startswith(prefix)]
    if volumes:
        docker.volume.remove(list[Volume | str](volumes))
    for network in docker.network.list():
        if network.name.startswith(prefix):
            docker.network.remove(network)


def remove_images(repository: str, marker: str) -> None:
    """Images tagged ``repository/...``, and untagged ones whose history names ``marker``
    (a tag built twice leaves the first image untagged)."""
    ours = [
        image
        for image in docker.image.list(filters={"dangling": "true"})
        if marker in cli("history", "--no-trunc", "--format", "{{.CreatedBy}}", str(image.id))
    ]
    ours += docker.image.list(filters={"reference": f"{repository}/*"})
    if ours:
        docker.image.remove(ours, force=True)


def build_cache() -> list[dict[str, str]]:
    """The engine's build cache records: ID, Parent, Description, InUse, ..."""
    out = cli("system", "df", "--verbose", "--format", "{{json .BuildCache}}")
    records = json.loads(out or "[]") or []
    return [{k: str(v) for k, v in record.items()} for record in records]


def prune_cache(ids: Iterable[str]) -> None:
    docker.buildx.prune(all=True, filters={"id": f"^({'|'.join(sorted(ids))})$"})
