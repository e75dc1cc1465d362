"""Facts about the machine that planning needs, gathered in one place."""

from __future__ import annotations

import os
import pwd
import secrets
import stat
from pathlib import Path

from orchestrator import engine
from orchestrator.errors import BadInput, EngineUnavailable
from orchestrator.plan import HostFacts, ProxyFacts


def gather_facts(
    *,
    builder: str | None = None,
    proxy: ProxyFacts | None = None,
    render_dir: Path,
    bridge_gateway: str | None = None,
) -> HostFacts:
    uid, gid = os.getuid(), os.getgid()
    return HostFacts(
        uid=uid,
        gid=gid,
        user_name=_user_name(uid),
        ssh_auth_sock=_agent_socket(),
        env_names=frozenset(os.environ),
        builder_driver=builder_driver(builder),
        proxy=proxy,
        bridge_gateway=bridge_gateway,
        render_dir=render_dir,
        fresh_token=secrets.token_hex(8),
    )


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


def builder_driver(builder: str | None) -> str:
    """The buildx driver that will run the build; 'docker' when the engine cannot say."""
    if builder is None and not os.environ.get("BUILDX_BUILDER"):
        current = Path.home() / ".docker" / "buildx" / "current"
        if not current.is_file():
            return "docker"
    try:
        found = engine.call("inspect builder", engine.client().buildx.inspect, builder)
    except EngineUnavailable as exc:
        if builder is None:
            return "docker"
        raise BadInput(
            f"buildx builder '{builder}' cannot be used ({exc.message}); create it with "
            f"`docker buildx create --name {builder}` or remove 'builder' from the profile"
        ) from None
    return str(found.driver)
