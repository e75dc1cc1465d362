"""A run's plan and a container's wiring, rendered: for people (``--dry-run``), for programs
(JSON) and for the tools that start containers themselves (`orchestrate env`).

`env` formats:

- ``shell``: ``export`` lines for the variables (the values a container needs, to pass
  with ``docker run -e NAME``); the network, user and mounts as comments.
- ``docker``: the `docker run` options on one line, shell-quoted.
- ``compose``: an override fragment for ``docker compose -f compose.yaml -f -``.
- ``json``: all of it.

A secret held in a host variable has no file to mount outside a run: the docker and shell
formats leave it out and say so on stderr; compose reads it from the variable itself.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict
from typing import Any

from orchestrator.facts.model import ComposeService
from orchestrator.plan.containers import Mount, RunPlan, Secret, Wiring
from orchestrator.plan.wiring import docker_args
from orchestrator.urls import redact, redact_all

COMPOSE_NETWORK = "orchestrator-proxy"  # the fragment's key for the proxy's network
COMPOSE_VOLUME = "orchestrator-cache"
COMPOSE_SECRET_PREFIX = "orchestrator-"  # profile secret ids never start with it


# --- the run plan ----------------------------------------------------------------------------


def run_text(plan: RunPlan) -> str:
    """The human-readable plan printed by `orchestrate run --dry-run`."""
    wiring = plan.wiring
    lines = [
        f"profile:    {wiring.profile}",
        f"mode:       {wiring.mode}",
        f"image:      {plan.image}",
        f"container:  {plan.name}",
        f"network:    {wiring.network or '(engine default)'}",
        f"user:       {wiring.user or '(the image USER)'}",
        "decisions:",
        *(f"  - {d.topic}: {d.choice} ({d.reason})" for d in plan.all_decisions),
    ]
    if wiring.env:
        lines += ["environment:", *(f"  {k}={redact(v)}" for k, v in wiring.env.items())]
    if plan.copies:
        lines += [
            "secrets (private copies, removed after the run):",
            *(f"  {c.secret.target} <- {c.secret.origin}" for c in plan.copies),
        ]
    given = "".join(f"{name}=... " for name in plan.process_env)
    lines += ["command:", f"  {given}{redact(plan.command_line)}"]
    return "\n".join(lines)


def run_dict(plan: RunPlan) -> dict[str, Any]:
    return {
        **wiring_dict(plan.wiring, hide=True),
        "image": plan.image,
        "container": plan.name,
        "remove": plan.remove,
        "command": list(plan.command),
        "decisions": [asdict(d) for d in plan.all_decisions],
        "argv": [redact(word) for word in plan.argv],
        "process_env": sorted(plan.process_env),
        "command_line": redact(plan.command_line),
    }


# --- the wiring ------------------------------------------------------------------------------


def wiring_dict(wiring: Wiring, *, hide: bool = False) -> dict[str, Any]:
    """Everything, as JSON data; ``hide`` hides URL credentials, which `orchestrate env`
    keeps: a container needs them to authenticate."""
    cache = wiring.cache
    data = {
        "profile": wiring.profile,
        "mode": wiring.mode,
        "reason": wiring.mode_reason,
        "index_url": wiring.index_url,
        "network": wiring.network,
        "user": wiring.user,
        "env": dict(wiring.env),
        "mounts": [asdict(m) for m in wiring.mounts],
        "secrets": [
            {
                "id": s.id,
                "target": s.target,
                "file": str(s.file) if s.file else None,
                "variable": s.variable,
            }
            for s in wiring.secrets
        ],
        "cache_volume": cache.name if cache else None,
        "labels": dict(wiring.labels),
        "decisions": [asdict(d) for d in wiring.decisions],
        "docker_args": docker_words(wiring),
    }
    return dict(redact_all(data)) if hide else data


def docker_words(wiring: Wiring) -> list[str]:
    """`docker run` options; secrets from files are mounted, those from variables cannot be."""
    words = docker_args(wiring)
    for secret in wiring.secrets:
        if secret.file is not None:
            words += ["--mount", Mount("bind", str(secret.file), secret.target).option()]
    return words


def docker_line(wiring: Wiring) -> str:
    return shlex.join(docker_words(wiring))


def shell(wiring: Wiring) -> str:
    """``export`` lines, with what a variable cannot carry as comments."""
    lines = [f"# orchestrate env {wiring.profile}: mode {wiring.mode} ({wiring.mode_reason})"]
    if wiring.network:
        lines.append(f"# network: {wiring.network}")
    if wiring.user:
        lines.append(f"# user: {wiring.user}")
    lines += [f"# mount: {mount.option()}" for mount in wiring.mounts]
    lines += [f"# secret: {s.target} <- {s.origin}" for s in wiring.secrets]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in wiring.env.items()]
    return "\n".join(lines)


def unmountable(wiring: Wiring) -> list[Secret]:
    """Secrets a docker or shell rendering cannot give: they live in host variables."""
    return [s for s in wiring.secrets if s.file is None]


def compose(wiring: Wiring, services: tuple[ComposeService, ...]) -> str:
    """A compose override fragment giving each service the wiring.

    A service that names no networks is on the project's ``default`` network alone; the
    fragment lists ``default`` for it, since naming any network would take that one away.
    """
    import yaml  # noqa: PLC0415

    fragment: dict[str, Any] = {"services": {}}
    for service in services:
        fragment["services"][service.name] = _compose_service(wiring, service)
    if wiring.network and wiring.network != "host":
        # the proxy's network, which exists before any service starts
        fragment["networks"] = {COMPOSE_NETWORK: {"name": wiring.network, "external": True}}
    if wiring.cache is not None:
        fragment["volumes"] = {COMPOSE_VOLUME: {"name": wiring.cache.name, "external": True}}
    if wiring.secrets:
        fragment["secrets"] = {
            COMPOSE_SECRET_PREFIX + s.id: (
                {"file": str(s.file)} if s.file is not None else {"environment": s.variable}
            )
            for s in wiring.secrets
        }
    header = f"# orchestrate env {wiring.profile} --format compose: mode {wiring.mode}\n"
    header += "".join(_kept_user(wiring, service) for service in services)
    return header + yaml.safe_dump(fragment, sort_keys=False)


def _kept_user(wiring: Wiring, service: ComposeService) -> str:
    """A service's own ``user:`` is the compose file's word, which an override would
    replace without a trace; it stands, and the fragment says what it did not impose."""
    if service.user is None or not wiring.user or service.user == wiring.user:
        return ""
    return (
        f"# {service.name}: keeps its own user {service.user!r}, not the profile's "
        f"{wiring.user} (remove user: from the service to take it)\n"
    )


def _compose_service(wiring: Wiring, service: ComposeService) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if wiring.network == "host":
        spec["network_mode"] = "host"
    elif wiring.network and service.network_mode is None:
        networks: dict[str, Any] = {} if service.networks else {"default": {}}
        networks[COMPOSE_NETWORK] = {}
        spec["networks"] = networks
    if wiring.user and service.user is None:
        spec["user"] = wiring.user
    if wiring.env:
        # compose interpolates ${...} in values: a literal $ is written $$
        spec["environment"] = {k: v.replace("$", "$$") for k, v in wiring.env.items()}
    volumes = [_compose_mount(m) for m in wiring.mounts]
    if volumes:
        spec["volumes"] = volumes
    if wiring.secrets:
        spec["secrets"] = [
            {"source": COMPOSE_SECRET_PREFIX + s.id, "target": s.id} for s in wiring.secrets
        ]
    return spec


def _compose_mount(mount: Mount) -> dict[str, Any]:
    source = COMPOSE_VOLUME if mount.kind == "volume" else mount.source
    return {
        "type": mount.kind,
        "source": source,
        "target": mount.target,
        "read_only": mount.read_only,
    }
