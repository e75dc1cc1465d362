"""Reading a user's Dockerfile with BuildKit's own parser, and rendering a build-time copy.

The user's file is never modified. The rendered copy differs only in the RUN steps we
wire: each gets extra ``--mount`` flags with literal values (BuildKit's built-in frontend
rejects ``uid=${USER_ID}``, and a variable target silently stops caching,
moby/buildkit#1173) and a short prefix that loads the build's settings from a secret,
so nothing of them lands in a layer or in ``docker history``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile as bk_parser

from orchestrator.errors import BadInput
from orchestrator.profiles import read_text

PACKAGE_MANAGERS = ("pip", "pip3", "uv", "poetry", "pipenv", "pdm")
_VERSION_SUFFIX = re.compile(r"(?<=^pip)[0-9.]+$")
_PYTHON_M_PIP = re.compile(r"\bpython[0-9.]*\s+-m\s+(pip|uv)\b")
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::?-([^}]*))?\}|(\w+))")


@dataclass(frozen=True)
class RunStep:
    """One RUN instruction as the parser saw it, with what we need to know to wire it."""

    line: int
    end_line: int
    flags: tuple[str, ...]
    command: str
    exec_form: bool
    stage: int
    user: str
    heredoc: bool = False

    @property
    def installs_packages(self) -> bool:
        if self.exec_form:
            return False
        words = set(re.split(r"[\s;&|()/]+", self.command))
        versioned = {_VERSION_SUFFIX.sub("", word) for word in words}
        found = bool(versioned & set(PACKAGE_MANAGERS))
        return found or bool(_PYTHON_M_PIP.search(self.command))

    @property
    def disables_pip_cache(self) -> bool:
        return "--no-cache-dir" in self.command or "PIP_NO_CACHE_DIR" in self.command


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str
    end_line: int


@dataclass(frozen=True)
class ParsedDockerfile:
    path: Path
    text: str
    stages: tuple[Stage, ...]
    runs: tuple[RunStep, ...]
    args: frozenset[str]
    arg_defaults: Mapping[str, str] = field(default_factory=dict)

    def declares(self, name: str) -> bool:
        return name in self.args


def parse(path: Path) -> ParsedDockerfile:
    text = read_text(path, "Dockerfile")
    try:
        commands = bk_parser.parse_string(text)
    except bk_parser.GoParseError as exc:
        raise BadInput(f"{path}: cannot parse Dockerfile: {exc}") from None
    return _interpret(path, text, commands)


def _interpret(path: Path, text: str, commands: Sequence[bk_parser.Command]) -> ParsedDockerfile:
    stages: list[Stage] = []
    runs: list[RunStep] = []
    args: set[str] = set()
    defaults: dict[str, str] = {}
    users: dict[int, str] = {}
    for command in commands:
        kind = command.cmd.upper()
        if kind in ("FROM", "USER") and not command.value:
            raise BadInput(f"{path}:{command.start_line}: {kind} needs an argument")
        if kind == "ARG":
            for item in command.value:
                name, _, default = item.partition("=")
                args.add(name)
                if default and name not in defaults:
                    defaults[name] = default.strip("\"'")
        elif kind == "FROM":
            stages.append(_stage(len(stages), command.value, command.end_line))
            base = stages[-1].base.lower()
            parent = next((s for s in stages[:-1] if s.name == base), None)
            users[len(stages) - 1] = users.get(parent.index, "root") if parent else "root"
        elif kind == "USER" and stages:
            users[len(stages) - 1] = command.value[0]
        elif kind == "RUN" and stages:
            runs.append(_run(command, len(stages) - 1, users[len(stages) - 1]))
    return ParsedDockerfile(path, text, tuple(stages), tuple(runs), frozenset(args), defaults)


def _stage(index: int, value: Sequence[str], end_line: int) -> Stage:
    words = list(value)
    name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
    return Stage(index=index, name=name, base=words[0], end_line=end_line)


def _run(command: bk_parser.Command, stage: int, user: str) -> RunStep:
    text = shlex.join(command.value) if command.json else " ".join(command.value)
    bodies = [doc.content for doc in getattr(command, "heredocs", ()) or ()]
    return RunStep(
        line=command.start_line,
        end_line=command.end_line,
        flags=tuple(command.flags),
        command="\n".join([text, *bodies]),
        exec_form=bool(command.json),
        stage=stage,
        user=user,
        heredoc=bool(bodies),
    )


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Expand $VAR, ${VAR} and ${VAR:-default} as the Dockerfile frontend would."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2) or ""
        return variables.get(name, default)

    return VARIABLE.sub(replace, value)


@dataclass(frozen=True)
class RunWiring:
    """What to add to one RUN step."""

    flags: tuple[str, ...] | None = None  # replaces the step's own flags when set
    mounts: tuple[str, ...] = ()
    prefix: str = ""


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
            out.append(_render_run(run, wiring[number]))
            # A heredoc's body and terminator follow its instruction line untouched.
            index = number if run.heredoc else run.end_line
        else:
            out.append(lines[index])
            index += 1
        if index in stage_ends:
            out.extend(after_from)
    return "\n".join(out) + "\n"


def _render_run(run: RunStep, wiring: RunWiring) -> str:
    own = run.flags if wiring.flags is None else wiring.flags
    head = " ".join(["RUN", *own, *wiring.mounts])
    command = run.command.split("\n", 1)[0] if run.heredoc else run.command
    return f"{head} {wiring.prefix}{command}"
