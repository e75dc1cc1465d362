"""What a container run needs to know besides the host: its terminal, the proxy's network
(asked only when the fallback may be chosen, so a run through a proxy that answers costs
no Docker call before `docker run` itself; the run's image likewise, ``facts/image.py``),
where private files go, and the services of a compose file."""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from orchestrator import paths
from orchestrator.engine import client as engine
from orchestrator.errors import BadInput, HandledError
from orchestrator.facts.host import engine_endpoint
from orchestrator.facts.model import ComposeService, TerminalFacts
from orchestrator.inputs import read_text

# The names `docker compose` looks for in the working directory, in its order.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


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


def files_shared(images: Sequence[str], *, ask: bool = True) -> bool | None:
    """Whether the engine sees this machine's files (a bind mount of a path here shows
    what is here), from evidence: a private directory here holding a random token, bind
    mounted read-only into a throwaway container of the first of ``images`` the engine
    has, which prints it back. The answer is kept per engine endpoint; None when no image
    could tell (then nothing is assumed), and when ``ask`` is false (a dry run) and it was
    never asked."""
    memo = files_memo()
    try:
        return bool(json.loads(memo.read_text(encoding="utf-8"))["shared"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not ask:
        return None
    found = _probe_files(images)
    if found is not None:
        with suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(json.dumps({"shared": found}), encoding="utf-8")
    return found


def _probe_files(images: Sequence[str]) -> bool | None:
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="orchestrate-files-") as directory:
        place = Path(directory)
        (place / "token").write_text(token, encoding="utf-8")
        place.chmod(0o755)
        (place / "token").chmod(0o644)
        for image in images:
            said = _read_through_engine(image, place)
            if said is not None:
                return said.strip() == token
    return None


def _read_through_engine(image: str, place: Path) -> str | None:
    """The token file as a container of ``image`` on the engine reads it ("none" when it is
    not there); None when this image cannot tell (absent, or no shell in it). A path the
    engine does not have is created empty by it, as a bind of a missing source is."""
    docker = engine.client()
    cannot_tell: tuple[type[Exception], ...] = (*engine.absent_errors(), HandledError)
    try:
        said = engine.call(
            "see whether the engine shares this machine's files",
            docker.container.run,
            image,
            ["-c", "cat /probe/token 2>/dev/null || echo none"],
            entrypoint="sh",
            remove=True,
            pull="never",
            networks=["none"],
            user="0:0",
            volumes=[(str(place), "/probe", "ro")],
            labels={"io.orchestrator.owner": "orchestrator"},
        )
    except cannot_tell:
        return None
    return str(said or "")


def files_memo() -> Path:
    """Where the answer for this engine endpoint is kept."""
    return paths.fact_file("files", engine_endpoint())


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
        mode, user = spec.get("network_mode"), spec.get("user")
        services.append(
            ComposeService(
                name=str(name),
                networks=bool(spec.get("networks")),
                network_mode=str(mode) if mode else None,
                user=str(user) if user is not None else None,
            )
        )
    return tuple(services)
