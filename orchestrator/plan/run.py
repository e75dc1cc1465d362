"""Planning a run: the wiring (``wiring``), plus what only `orchestrate run` decides.

Pure: the image, the container's name (from a token gathered beforehand), the terminal
flags, where the private copies of the secrets go, and the exact argv.
"""

from __future__ import annotations

import shlex

from orchestrator.errors import BadInput
from orchestrator.facts.model import RunFacts
from orchestrator.plan.containers import (
    Mount,
    RunOptions,
    RunPlan,
    SecretCopy,
    Wiring,
)
from orchestrator.plan.model import Decision
from orchestrator.plan.wiring import docker_args, plan_wiring
from orchestrator.profiles import ResolvedProfile
from orchestrator.urls import redact

# Options orchestrate sets itself and stops the container by: passing them again breaks that.
RESERVED_OPTIONS = ("--name", "--detach", "-d")


def run_image(resolved: ResolvedProfile, options: RunOptions) -> str:
    """``--image``, else the profile's first tag: the image `orchestrate build` made."""
    if options.image:
        return options.image
    if resolved.profile.tags:
        return resolved.profile.tags[0]
    raise BadInput(
        f"{resolved.sources[0]}: profile '{resolved.name}' has no tags, so it names no "
        "image to run: give --image"
    )


def plan_run(resolved: ResolvedProfile, facts: RunFacts, options: RunOptions) -> RunPlan:
    """The exact `docker run` for a command in the profile's image, wired as a build is."""
    image = run_image(resolved, options)
    wiring = plan_wiring(resolved, facts, options, image)
    extra = _docker_opts(options.docker_opts)
    decisions: list[Decision] = []
    name = f"orchestrator-run-{resolved.name}-{facts.token}"
    head = ["docker", "run"]
    if not options.keep:
        head.append("--rm")
    head += ["--name", name, "--init"]
    decisions.append(
        Decision(
            "container",
            name,
            "named so that Ctrl-C stops it by name; --init passes signals on to a command "
            "that runs as PID 1" + ("" if options.keep else "; removed when it exits (--rm)"),
        )
    )
    head += _terminal(facts, decisions)
    for key, value in wiring.labels.items():
        head += ["--label", f"{key}={value}"]
    hidden = {k: v for k, v in wiring.env.items() if redact(v) != v}  # credentials in URLs
    head += docker_args(wiring, by_name=frozenset(hidden))
    copies = _copies(wiring, facts, decisions)
    for copy in copies:
        mount = Mount("bind", str(copy.path), copy.secret.target)
        head += ["--mount", mount.option()]
    argv = (*head, *extra, image, *options.command)
    return RunPlan(
        wiring=wiring,
        image=image,
        name=name,
        command=options.command,
        argv=argv,
        copies=copies,
        secret_dir=facts.secret_dir if copies else None,
        remove=not options.keep,
        attached=facts.terminal.stdin_tty,
        decisions=tuple(decisions),
        process_env=hidden,
    )


# --- what only a run decides ----------------------------------------------------------------


def _terminal(facts: RunFacts, decisions: list[Decision]) -> list[str]:
    """``-i`` with a terminal on stdin, ``-t`` when stdout is one too, as `docker run -it`.

    A pipe is not passed on by default: inside a shell loop that reads its own input, the
    container would swallow the rest of it (as ssh does); ``--docker-opt=-i`` passes it.
    """
    terminal = facts.terminal
    flags = []
    if terminal.stdin_tty:
        flags.append("--interactive")
        if terminal.stdout_tty:
            flags.append("--tty")
    if "--tty" in flags:
        reason = "a terminal: Ctrl-C goes to the command in the container, as with docker run -it"
    elif flags:
        reason = "stdin is a terminal, stdout is not"
    elif terminal.stdin_readable:
        reason = "stdin is a pipe or a file, not passed on unless --docker-opt=--interactive"
    else:
        reason = "no terminal"
    if not flags:
        reason += "; with JSON logs the command's stderr lines become JSON events"
    decisions.append(Decision("terminal", " ".join(flags) or "none", reason))
    return flags


def _copies(wiring: Wiring, facts: RunFacts, decisions: list[Decision]) -> tuple[SecretCopy, ...]:
    """Each secret as a private file for this run, readable by the run's user alone."""
    if not wiring.secrets:
        return ()
    host_uid = facts.host.uid
    run_uid = int(wiring.user.partition(":")[0]) if wiring.user is not None else None
    owner: tuple[int, int] | None = None
    mode = 0o444  # the run's user may be anybody: the private directory keeps others out
    if run_uid is not None and host_uid == 0:
        uid, _, gid = (wiring.user or "").partition(":")
        owner, mode = (int(uid), int(gid)), 0o400
    elif run_uid == host_uid:
        mode = 0o400  # ours already
    copies = tuple(
        SecretCopy(secret, facts.secret_dir / secret.id, mode, owner) for secret in wiring.secrets
    )
    if mode == 0o444:
        who = "mode 0444: the run's user is not ours to give files to"
    else:
        uid_gid = f"{owner[0]}:{owner[1]}" if owner is not None else "the invoking user"
        who = f"owned by {uid_gid}, mode 0400"
    decisions.append(
        Decision(
            "secret files",
            str(facts.secret_dir),
            f"copied into a private directory ({who}) mounted read-only, removed after the run",
        )
    )
    return copies


def _docker_opts(options: tuple[str, ...]) -> list[str]:
    """``--docker-opt`` values, each split as a shell would, after orchestrate's own."""
    words: list[str] = []
    for option in options:
        try:
            words += shlex.split(option)
        except ValueError as exc:
            raise BadInput(f"--docker-opt {option!r}: {exc}") from None
    for word in words:
        flag = word.partition("=")[0]
        if flag in RESERVED_OPTIONS:
            raise BadInput(
                f"--docker-opt {word!r}: orchestrate names the container and waits for it "
                "itself; leave out --name and --detach"
            )
    return words
