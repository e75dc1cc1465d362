"""What the buildx builder can do, asked of buildx itself and remembered per engine.

Versions come from buildx (``docker buildx version``, ``buildx inspect``: its builder,
driver and BuildKit version), so DOCKER_CONFIG, BUILDX_CONFIG and BUILDX_BUILDER pick the
builder exactly as they do for the build. What the Dockerfile frontend understands is
found by building three tiny probe files, each accepted or refused: a heredoc, a variable
in a --mount option, a secret as an environment variable. Whether bake knows `network`
is found by asking bake to print a target that sets it.

The answer cannot change until the engine restarts, buildx is replaced or another
builder is chosen, so it is kept in the user's cache under a key naming those, with a
stamp that changes when any of them does (the daemon's socket is recreated at start).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path

from orchestrator import paths
from orchestrator.engine import client as engine
from orchestrator.engine.api import current as current_engine
from orchestrator.errors import BadInput, EngineUnavailable, HandledError
from orchestrator.facts.model import BuilderFacts
from orchestrator.log import get_logger

log = get_logger(__name__)
FORMAT = 1  # bump when BuilderFacts changes shape
REMOTE_ENGINE_TTL = 300  # seconds facts about an engine we cannot stat are trusted

PROBES = {
    "heredocs": "FROM scratch\nCOPY <<EOF /probe\nheredoc\nEOF\n",
    "mount_variables": (
        "FROM scratch AS unused\nARG U=0\nRUN --mount=type=cache,target=/c,uid=${U} true\n"
        "FROM scratch\n"
    ),
    "secret_env": (
        "FROM scratch AS unused\nRUN --mount=type=secret,id=p,env=P true\nFROM scratch\n"
    ),
}
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def version_tuple(text: str) -> tuple[int, ...]:
    match = _VERSION.search(text)
    return tuple(int(part or 0) for part in match.groups()) if match else ()


def detect(builder: str | None) -> BuilderFacts:
    """The builder's facts, from the cache when nothing they depend on has changed."""
    key, stamp = _key(builder), _stamp()
    cached = _read(key, stamp)
    if cached is not None:
        return cached
    started = time.monotonic()
    facts = _probe(builder)
    log.debug("builder detected", seconds=round(time.monotonic() - started, 2), **asdict(facts))
    _write(key, stamp, facts)
    return facts


def _probe(builder: str | None) -> BuilderFacts:
    docker = engine.client()
    if not engine.reachable():  # else every probe would fail and read as a missing feature
        raise EngineUnavailable(f"cannot reach the Docker engine ({engine.SETUP_HINT})")
    try:
        found = engine.call("inspect the buildx builder", docker.buildx.inspect, builder)
    except HandledError as exc:
        if builder is None:
            raise
        raise BadInput(
            f"buildx builder '{builder}' cannot be used: create it with "
            f"`docker buildx create --name {builder}` or remove 'builder' from the profile",
            detail=exc.detail,
        ) from None
    buildx = version_tuple(str(engine.call("read the buildx version", docker.buildx.version)))
    nodes = list(found.nodes or [])
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - detection only

    with ThreadPoolExecutor(max_workers=len(PROBES) + 1) as pool:
        frontend = {name: pool.submit(_accepts, text, builder) for name, text in PROBES.items()}
        bake_network = pool.submit(_bake_knows_network)
        results = {name: future.result() for name, future in frontend.items()}
        knows_network = bake_network.result()
    return BuilderFacts(
        name=str(found.name),
        driver=str(found.driver),
        buildx_version=".".join(map(str, buildx)),
        buildkit_version=str(getattr(nodes[0], "version", "") or "") if nodes else "",
        bake_network=knows_network,
        bake_fs_entitlements=buildx >= (0, 19),
        heredocs=results["heredocs"],
        mount_variables=results["mount_variables"],
        secret_env=results["secret_env"],
        network=None if str(found.driver) == "docker" else _network_of(builder),
    )


def _network_of(builder: str | None) -> str | None:
    """A container builder's network, from its driver options as `docker buildx inspect`
    prints them (python-on-whales does not read them): ``Driver Options: network="host"``.
    None when it names none (the builder's own network) or cannot be read."""
    argv = ["docker", "buildx", "inspect", *([builder] if builder else [])]
    try:
        printed = current_engine().capture("read the builder's driver options", argv)
    except HandledError:
        return None
    return network_option(printed)


def network_option(printed: str) -> str | None:
    for line in printed.splitlines():
        if line.strip().startswith("Driver Options:"):
            found = re.search(r'\bnetwork="?([^"\s]+)"?', line)
            return found.group(1) if found else None
    return None


def _accepts(dockerfile: str, builder: str | None) -> bool:
    """Whether the builder's frontend builds this probe file."""
    import tempfile  # noqa: PLC0415

    from python_on_whales.exceptions import DockerException  # noqa: PLC0415

    docker = engine.client()
    with tempfile.TemporaryDirectory(prefix="orchestrator-probe-") as directory:
        path = Path(directory) / "Dockerfile"
        path.write_text(dockerfile, encoding="utf-8")
        output = Path(directory) / "out"
        try:
            docker.buildx.build(
                directory,
                file=path,
                builder=builder,
                output={"type": "local", "dest": str(output)},
                progress=False,
            )
        except DockerException:
            return False
    return True


def _bake_knows_network() -> bool:
    """Whether bake accepts a target's `network` attribute (it prints, builds nothing)."""
    import tempfile  # noqa: PLC0415

    from python_on_whales.exceptions import DockerException  # noqa: PLC0415

    docker = engine.client()
    definition = {"target": {"probe": {"context": ".", "network": "host"}}}
    with tempfile.TemporaryDirectory(prefix="orchestrator-probe-") as directory:
        path = Path(directory) / "probe.json"
        path.write_text(json.dumps(definition), encoding="utf-8")
        try:
            printed = docker.buildx.bake(["probe"], files=[path], print=True)
        except DockerException:
            return False
    target = printed.get("target", {}).get("probe", {}) if isinstance(printed, dict) else {}
    return bool(isinstance(target, dict) and target.get("network") == "host")


# --- the cache -----------------------------------------------------------------------------

_SELECTORS = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "BUILDX_CONFIG", "BUILDX_BUILDER")


def _key(builder: str | None) -> str:
    chosen = [os.environ.get(name, "") for name in _SELECTORS]
    blob = json.dumps([FORMAT, builder or "", *chosen])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _stamp() -> str:
    """Changes when the daemon restarts, buildx is replaced or the current builder changes."""
    parts: list[str] = []
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        parts.append(_stat(Path(host.removeprefix("unix://"))))
    else:
        parts.append(str(int(time.time() // REMOTE_ENGINE_TTL)))
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    buildx_config = Path(os.environ.get("BUILDX_CONFIG") or config / "buildx")
    # By content: buildx rewrites `current` (a new inode) on every command, even `inspect`.
    for name in ("current", "instances", "defaults"):
        parts.append(_content(buildx_config / name))
    for directory in _plugin_dirs(config):
        parts.append(_stat(directory / "docker-buildx"))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def _plugin_dirs(config: Path) -> list[Path]:
    """Where the docker CLI looks for the buildx plugin, in its order."""
    return [
        config / "cli-plugins",
        Path.home() / ".docker" / "cli-plugins",
        Path("/usr/local/lib/docker/cli-plugins"),
        Path("/usr/local/libexec/docker/cli-plugins"),
        Path("/usr/lib/docker/cli-plugins"),
        Path("/usr/libexec/docker/cli-plugins"),
    ]


def _content(path: Path) -> str:
    """A file's bytes, or a directory's files' names and bytes, as one digest."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for item in files:
        try:
            digest.update(item.name.encode() + b"\0" + item.read_bytes() + b"\0")
        except OSError:
            digest.update(item.name.encode() + b"\0-\0")
    return digest.hexdigest()


def _stat(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return f"{path}:-"
    return f"{path}:{info.st_ino}:{info.st_mtime_ns}"


def _cache_file(key: str) -> Path:
    return paths.facts_dir() / f"builder-{key}.json"


def _read(key: str, stamp: str) -> BuilderFacts | None:
    try:
        data = json.loads(_cache_file(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("stamp") != stamp:
        return None
    try:
        return BuilderFacts(**data["facts"])
    except (TypeError, KeyError):
        return None


def _write(key: str, stamp: str, facts: BuilderFacts) -> None:
    _store(_cache_file(key), {"stamp": stamp, "facts": asdict(facts)})


def _store(path: Path, data: dict[str, object]) -> None:
    """Written aside and renamed: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data), "utf-8")
        temporary.replace(path)
    except OSError as exc:
        log.debug("builder facts not cached", path=str(path), reason=str(exc))


# --- what commands saw the builder do ------------------------------------------------------


def observed(name: str, builder: str | None) -> bool | None:
    """What an earlier command saw this builder do (``observe``), while the builder's stamp
    holds; None when nothing was seen since it last changed."""
    seen = _observations(_key(builder), _stamp())
    value = seen.get(name)
    return value if isinstance(value, bool) else None


def observe(name: str, builder: str | None, value: bool) -> None:
    """Remember what a command saw the builder do, such as `buildx du` naming no cache
    mount on BuildKit 0.8: seen once per engine start, never guessed from a version."""
    key, stamp = _key(builder), _stamp()
    seen = {**_observations(key, stamp), name: value}
    _store(_observations_file(key), {"stamp": stamp, "seen": seen})


def _observations_file(key: str) -> Path:
    return paths.facts_dir() / f"builder-{key}.seen.json"


def _observations(key: str, stamp: str) -> dict[str, object]:
    try:
        data = json.loads(_observations_file(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    seen = data.get("seen") if isinstance(data, dict) and data.get("stamp") == stamp else None
    return dict(seen) if isinstance(seen, dict) else {}
