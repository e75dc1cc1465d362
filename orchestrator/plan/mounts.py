"""A user's own ``--mount`` options, made to work as written: variables made literal where
the frontend does not expand them, and the RUN user's uid and gid on the mounts that
user must be able to use."""

from __future__ import annotations

from orchestrator.dockerfile import RunStep, expand
from orchestrator.dockerfile.parse import VARIABLE, mount_options
from orchestrator.plan.draft import Draft

_OWNED_MOUNTS = ("ssh", "secret", "cache")


def fix_mount(flag: str, draft: Draft, run: RunStep) -> str:
    """Make a user's own --mount work as written for a non-root RUN.

    Where the frontend does not expand variables in mount options (dockerfile before 1.3,
    as built into Docker 20.10), they are replaced by their literal values: ``uid=${ID}``
    does not parse there and a variable target silently stops caching (moby/buildkit#1173).
    ssh, secret and cache mounts get the RUN user's uid and gid, without which that user
    cannot use them (moby/moby#47415).
    """
    if not flag.startswith("--mount="):
        return flag
    fixed = _literal_mount(flag, draft, run)
    options = mount_options(fixed)
    if options.get("type", "bind") not in _OWNED_MOUNTS:
        return fixed
    owner = run_owner(draft, run)
    if owner is None or owner == (0, 0):
        return fixed
    missing = [
        f"{key}={value}"
        for key, value in zip(("uid", "gid"), owner, strict=True)
        if key not in options
    ]
    return ",".join([fixed, *missing]) if missing else fixed


def _literal_mount(flag: str, draft: Draft, run: RunStep) -> str:
    if "$" not in flag or draft.facts.builder.mount_variables:
        return flag
    variables = _variables(draft)
    names = {m.group(1) or m.group(3) for m in VARIABLE.finditer(flag)}
    unknown = sorted(names - set(variables))
    if unknown:
        draft.decide(
            f"RUN line {run.line}",
            "mount left as written",
            f"no value known for {', '.join(unknown)}; this frontend will not expand it",
        )
        return flag
    draft.decide(
        f"RUN line {run.line}",
        "mount variables made literal",
        "this builder's frontend does not expand variables in --mount options "
        "(dockerfile 1.3 does)",
    )
    return expand(flag, variables)


def _variables(draft: Draft) -> dict[str, str]:
    return {**draft.parsed.arg_defaults, **draft.build_args, **draft.profile.build_args}


def run_owner(draft: Draft, run: RunStep) -> tuple[int, int] | None:
    """The uid and gid a RUN step runs as, when the Dockerfile and build args tell."""
    name, _, group = expand(run.user, _variables(draft)).partition(":")
    user = draft.build_user
    if name in ("", "root", "0"):
        return 0, 0
    if user is not None and name in (user.name, str(user.uid)):
        return user.uid, user.gid
    if name.isdigit():
        return int(name), int(group) if group.isdigit() else int(name)
    return None
