"""Rendering the build-time copy of a Dockerfile: the user's text with some RUN steps wired.

The user's file is never modified. The copy differs only in the RUN steps we wire: each
gets extra ``--mount`` flags with literal values (BuildKit's built-in frontend before
dockerfile 1.3 rejects ``uid=${USER_ID}``, and a variable target silently stops caching,
moby/buildkit#1173) and a short prefix that loads the build's settings from a secret,
so nothing of them lands in a layer or in ``docker history``. Every other line, and the
line count of every instruction's body, stays as written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.dockerfile.parse import ParsedDockerfile, RunStep


@dataclass(frozen=True)
class RunWiring:
    """What to add to one RUN step."""

    flags: tuple[str, ...] | None = None  # replaces the step's own flags when set
    mounts: tuple[str, ...] = ()
    prefix: str = ""  # shell words put before the command line
    script_prefix: str = ""  # a line put first in a heredoc script's body


def render(
    parsed: ParsedDockerfile,
    wiring: Mapping[int, RunWiring],
    after_from: Sequence[str] = (),
) -> str:
    """The Dockerfile with the given RUN steps (by line) rewritten, all else untouched.

    ``after_from`` lines are inserted at the top of every stage (``ARG`` lines, say).
    """
    lines = parsed.text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    by_line = {run.line: run for run in parsed.runs}
    stage_ends = {stage.end_line for stage in parsed.stages}
    out: list[str] = []
    index = 0
    while index < len(lines):
        number = index + 1
        run = by_line.get(number)
        if run is not None and number in wiring:
            out += _render_run(run, wiring[number])
            # A heredoc's body and terminator follow its instruction line untouched.
            index = number if run.heredoc else run.end_line
        else:
            out.append(lines[index])
            index += 1
        if index in stage_ends:
            out.extend(after_from)
    return "\n".join(out) + "\n"


def _render_run(run: RunStep, wiring: RunWiring) -> list[str]:
    own = run.flags if wiring.flags is None else wiring.flags
    head = " ".join(["RUN", *own, *wiring.mounts])
    if run.exec_form:
        command = json.dumps(list(run.exec_argv))
    else:
        command = run.command.split("\n", 1)[0] if run.heredoc else run.command
    rendered = [f"{head} {wiring.prefix}{command}"]
    if wiring.script_prefix:
        rendered.append(wiring.script_prefix)
    return rendered
