"""Facts about this machine that planning needs, gathered in one place before planning,
and the inputs from its environment that must be there before anything starts."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import paths
from orchestrator.errors import BadInput
from orchestrator.facts.model import BuilderFacts, HostFacts, ImageFacts, ProxyFacts
from orchestrator.inputs import no_agent, read_text, unset_variable
from orchestrator.paths import HOST_CA_BUNDLE

if TYPE_CHECKING:
    from orchestrator.dockerfile import ParsedDockerfile
    from orchestrator.profiles import ResolvedProfile

CONTEXT_FILE_LIMIT = 8 * 1024 * 1024  # bytes of one context file read for planning


def gather_facts(
    *,
    builder: BuilderFacts,
    render_dir: Path,
    proxy: ProxyFacts | None = None,
    bridge_gateway: str | None = None,
    parsed: ParsedDockerfile | None = None,
    context: Path | None = None,
    context_files: Mapping[str, str] | None = None,
    base_images: Mapping[str, ImageFacts] | None = None,
) -> HostFacts:
    """This process's facts; the context files read from ``parsed``'s steps unless given."""
    uid, gid = os.getuid(), os.getgid()
    files = dict(context_files or {})
    if parsed is not None and context is not None:
        files = read_context_files(parsed, context)
    return HostFacts(
        uid=uid,
        gid=gid,
        user_name=_user_name(uid),
        ssh_auth_sock=_agent_socket(),
        env_names=frozenset(os.environ),
        host_ca_bundle=host_ca_bundle(),
        builder=builder,
        proxy=proxy,
        bridge_gateway=bridge_gateway,
        render_dir=render_dir,
        fresh_token=secrets.token_hex(8),
        context_files=files,
        base_images=dict(base_images or {}),
        pip_lock_file=paths.pip_lock_dir() / "sitecustomize.py",
    )


def check_inputs(resolved: ResolvedProfile) -> None:
    """What the user must fix, found before anything is created on their behalf."""
    profile = resolved.profile
    where = paths.shown(resolved.sources[0])
    for key, secret in profile.secrets.items():
        if secret.env is not None and secret.env not in os.environ:
            raise unset_variable(where, f"secrets.{key}.env", secret.env)
    credentials = profile.proxy.credentials
    if credentials is not None and credentials.env and credentials.env not in os.environ:
        raise unset_variable(where, "proxy.credentials.env", credentials.env)
    if profile.ssh and not os.environ.get("SSH_AUTH_SOCK"):
        raise no_agent(where)


def read_credentials(source: str, where: str) -> str:
    """``user:password`` from where the profile keeps it (``env:NAME`` or ``file:PATH``),
    read when it is needed and never kept: what a build hands BuildKit as a secret."""
    kind, _, name = source.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise unset_variable(where, "proxy.credentials.env", name)
    else:
        value = read_text(Path(name), "credentials file")
    value = value.strip()
    if ":" not in value or "\n" in value:
        raise BadInput(
            f"{where}: field 'proxy.credentials': give user:password on one line (a token as "
            "its index names the user, such as aws:TOKEN)"
        )
    return value


def engine_endpoint(environ: Mapping[str, str] | None = None) -> str:
    """Which engine this process's docker commands reach, as the docker CLI chooses it:
    DOCKER_HOST, else DOCKER_CONTEXT, else the configuration's current context, and with
    which client configuration (DOCKER_CONFIG: its buildx and plugins). Read from the
    environment and one small file, without asking the engine, so that a remembered
    plan is looked up per engine at no cost."""
    env = os.environ if environ is None else environ
    config = env.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    where = env.get("DOCKER_HOST") or env.get("DOCKER_CONTEXT") or _current_context(config)
    return f"{where or 'default'} (config {config})"


def _current_context(config: str) -> str | None:
    try:
        data = json.loads((Path(config) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = data.get("currentContext") if isinstance(data, dict) else None
    return f"context {found}" if isinstance(found, str) and found else None


def host_ca_bundle() -> Path | None:
    """The host's CA bundle, if it has one at the usual Debian path."""
    return HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None


def read_context_files(parsed: ParsedDockerfile, context: Path) -> dict[str, str]:
    """The files of the build context that wiring reads: the lock files uv project steps
    read, and the requirement files installs name (for the index options inside them)."""
    from orchestrator.dockerfile.locks import lock_uses  # noqa: PLC0415 - planning only
    from orchestrator.dockerfile.requirements import requirement_uses  # noqa: PLC0415

    sources = [use.source for use in lock_uses(parsed)]
    sources += [use.source for run in parsed.runs for use in requirement_uses(parsed, run)]
    found = {}
    for source in dict.fromkeys(s for s in sources if s is not None):
        path = context / source
        try:
            if path.is_file() and path.stat().st_size <= CONTEXT_FILE_LIMIT:
                found[source] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return found


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return os.environ.get("USER", f"user{uid}")


def _agent_socket() -> str | None:
    """SSH_AUTH_SOCK, if it names a socket that exists."""
    path = os.environ.get("SSH_AUTH_SOCK")
    if not path:
        return None
    try:
        return path if stat.S_ISSOCK(os.stat(path).st_mode) else None
    except OSError:
        return None
