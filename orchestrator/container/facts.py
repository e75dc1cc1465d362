"""Gathering what planning a run needs: the proxy, the host, the terminal, and (only when
the fallback may be chosen) the image and the proxy's network.

The engine is asked about the image and the network only when the proxy does not serve,
so a run through a proxy that answers costs no Docker call before `docker run` itself.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from orchestrator import build as builds
from orchestrator import paths
from orchestrator.container.model import ComposeService, ImageFacts, RunFacts, TerminalFacts
from orchestrator.engine import client as engine
from orchestrator.errors import BadInput
from orchestrator.host import gather_facts
from orchestrator.inputs import read_text
from orchestrator.plan.facts import BuilderFacts
from orchestrator.plan.model import BuildOptions
from orchestrator.profiles import ResolvedProfile

# The names `docker compose` looks for in the working directory, in its order.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def gather(
    resolved: ResolvedProfile, *, image: str | None, no_proxy: bool, dry_run: bool
) -> RunFacts:
    """Facts for planning; finding or starting the proxy is the only side effect, and a
    dry run only looks."""
    builds.check_inputs(resolved)
    proxy = builds.proxy_facts(resolved, BuildOptions(no_proxy=no_proxy), dry_run=dry_run)
    host = gather_facts(
        builder=BuilderFacts(checked=False), render_dir=paths.rendered_dir(), proxy=proxy
    )
    settings = resolved.profile.proxy
    fallback = settings.mode != "off" and (proxy is None or not proxy.healthy)
    return RunFacts(
        host=host,
        terminal=terminal(),
        image=image_facts(image) if fallback and image else None,
        network_exists=network_exists(settings.network) if fallback and not settings.url else None,
        secret_dir=secret_base() / f"orchestrate-run-{secrets.token_hex(6)}",
        token=secrets.token_hex(4),
        pip_lock_dir=pip_lock_dir(),
    )


def terminal() -> TerminalFacts:
    """Whether stdin and stdout are terminals, and whether stdin has anything to read."""
    readable = False
    try:
        mode = os.fstat(0).st_mode
        readable = stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)
    except OSError:
        pass
    return TerminalFacts(stdin_tty=_isatty(0), stdout_tty=_isatty(1), stdin_readable=readable)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def image_facts(image: str) -> ImageFacts:
    """The image's environment and USER, or that it is not in the engine's store."""
    docker = engine.client()
    try:
        found = engine.call("inspect the run's image", docker.image.inspect, image)
    except engine.absent_errors():
        return ImageFacts(present=False)
    env = dict(item.partition("=")[::2] for item in (found.config.env or []))
    return ImageFacts(present=True, env=env, user=str(found.config.user or ""))


def network_exists(name: str) -> bool:
    docker = engine.client()
    return bool(engine.call("look up the proxy's network", docker.network.exists, name))


def secret_base() -> Path:
    """Where private copies of secrets go: a memory file system when there is one."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def pip_lock_dir() -> Path:
    """The directory whose only file is the sitecustomize that locks older pips."""
    from orchestrator import resources  # noqa: PLC0415

    return Path(resources.__file__).resolve().parent / "pipcache"


def compose_services(names: list[str], directory: Path) -> tuple[ComposeService, ...]:
    """The services a compose fragment is for: those named, else every service of the
    compose file in the working directory, with what each says about networks."""
    import yaml  # noqa: PLC0415

    path = next((directory / n for n in COMPOSE_FILES if (directory / n).is_file()), None)
    declared: dict[str, object] = {}
    if path is not None:
        try:
            data = yaml.safe_load(read_text(path, "compose file"))
        except yaml.YAMLError as exc:
            raise BadInput(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
        found = data.get("services") if isinstance(data, dict) else None
        declared = dict(found) if isinstance(found, dict) else {}
    if not names and not declared:
        where = f"{path} declares no services" if path else f"no compose file in {directory}"
        raise BadInput(f"{where}: name the services with --service")
    services = []
    for name in names or list(declared):
        spec = declared.get(name)
        spec = spec if isinstance(spec, dict) else {}
        mode = spec.get("network_mode")
        services.append(
            ComposeService(
                name=str(name),
                networks=bool(spec.get("networks")),
                network_mode=str(mode) if mode else None,
            )
        )
    return tuple(services)
