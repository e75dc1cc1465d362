"""A plan rendered for people (``--dry-run``) and for programs (``--json``)."""

from __future__ import annotations

import shlex
from dataclasses import asdict
from typing import Any

from orchestrator.plan.model import ENV_VARIABLE, FRESH_ARG, BuildPlan
from orchestrator.urls import redact


def as_dict(plan: BuildPlan) -> dict[str, Any]:
    return {
        "profile": plan.profile,
        "sources": [str(s) for s in plan.sources],
        "mode": plan.mode,
        "index_url": redact(plan.index_url or "") or None,
        "context": str(plan.context),
        "dockerfile": str(plan.dockerfile),
        "rendered_dockerfile": str(plan.rendered_path) if plan.rendered_path else None,
        "tags": list(plan.tags),
        "network": plan.network,
        "decisions": [asdict(d) for d in plan.decisions],
        "bypasses": [asdict(b) for b in plan.bypasses],
        "build_env": {k: redact(v) for k, v in plan.build_env.items()},
        "prepare": [list(p) for p in plan.prepare],
        "argv": list(plan.argv),
        "command": plan.command_line,
    }


def text(plan: BuildPlan, *, command: bool = True) -> str:
    """The human-readable plan printed by ``--dry-run``."""
    lines = [
        f"profile:    {plan.profile} ({', '.join(str(s) for s in plan.sources)})",
        f"mode:       {plan.mode}",
        f"context:    {plan.context}",
        f"dockerfile: {plan.dockerfile}",
        f"rendered:   {plan.rendered_path or '(none: the Dockerfile is used as is)'}",
        f"tags:       {', '.join(plan.tags) or '(none)'}",
        "decisions:",
        *(f"  - {d.topic}: {d.choice} ({d.reason})" for d in plan.decisions),
    ]
    if plan.bypasses:
        lines += ["not through the proxy:", *(f"  {b.text()}" for b in plan.bypasses)]
    if plan.build_env:
        lines += [
            "build settings (secret, never a layer):",
            *(f"  {k}={redact(v)}" for k, v in plan.build_env.items()),
        ]
    if plan.prepare:
        lines += ["prepare once:", *(f"  {shlex.join(p)}" for p in plan.prepare)]
    if plan.rendered_text is not None:
        changed = [
            line
            for line in plan.rendered_text.splitlines()
            if "id=orchestrator-" in line or FRESH_ARG in line
        ]
        lines += ["rendered steps:", *(f"  {line}" for line in changed)]
    if not command:
        return "\n".join(lines)
    env = " ".join(f"{name}=..." for name in plan.secret_env)
    lines += ["command:", f"  {env} {plan.command_line}" if env else f"  {plan.command_line}"]
    return "\n".join(lines)


__all__ = ["ENV_VARIABLE", "as_dict", "text"]
