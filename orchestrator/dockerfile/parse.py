"""Reading a user's Dockerfile with BuildKit's own parser, into what wiring needs to know.

For each RUN step: its form (shell, exec, heredoc script), the stage's user, working
directory, shell and environment at that point, and its own flags. For each stage: what
COPY/ADD put where, so a file an installer reads in the image (a uv.lock) can be traced
back to the build context, and which image it starts from. A stage starts from its base
image's ENV, USER and WORKDIR, which only the engine knows: read once without them, then
again with them (``ParsedDockerfile.seeded``) when they were gathered. Nothing here
decides anything.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Literal

import dockerfile as bk_parser

from orchestrator.errors import BadInput
from orchestrator.inputs import read_text

VARIABLE = re.compile(r"\$(?:\{(\w+)(?::?-([^}]*))?\}|(\w+))")
DEFAULT_SHELL = ("/bin/sh", "-c")
POSIX_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})

# How a RUN step's command reaches a process: through the shell as one line (``shell``,
# also ``python3 <<EOF`` where the shell reads the heredoc), as a heredoc script the shell
# runs (``script``), as a heredoc with its own ``#!`` interpreter (``shebang``), or as an
# argv with no shell at all (``exec``).
RunForm = Literal["shell", "script", "shebang", "exec"]


@dataclass(frozen=True)
class Copy:
    """A COPY or ADD from the build context: sources as written, destination in the image."""

    line: int
    sources: tuple[str, ...]
    destination: str
    workdir: str


@dataclass(frozen=True)
class RunStep:
    """One RUN instruction as the parser saw it, with the stage's state at that point."""

    line: int
    end_line: int
    flags: tuple[str, ...]
    command: str
    form: RunForm
    stage: int
    user: str
    workdir: str = "/"
    shell: tuple[str, ...] = DEFAULT_SHELL
    env: Mapping[str, str] = field(default_factory=dict)
    heredoc_body: str = ""
    exec_argv: tuple[str, ...] = ()  # the JSON array of an exec-form step

    @property
    def exec_form(self) -> bool:
        return self.form == "exec"

    @property
    def heredoc(self) -> bool:
        return bool(self.heredoc_body) or self.form in ("script", "shebang")

    @property
    def posix_shell(self) -> bool:
        """Whether a POSIX ``set -a; . FILE`` line works in this step's shell."""
        return PurePosixPath(self.shell[0]).name in POSIX_SHELLS if self.shell else False

    @property
    def text(self) -> str:
        """Everything the step runs, heredoc bodies included, for reading what it does."""
        return "\n".join(part for part in (self.command, self.heredoc_body) if part)


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str
    end_line: int
    copies: tuple[Copy, ...] = ()
    parent: int | None = None  # the stage it is built FROM, if any


@dataclass(frozen=True)
class Seed:
    """What a stage's base image gives its first step: its configuration's Env, User and
    WorkingDir (empty: Docker's defaults, root and /). The Dockerfile's own lines follow."""

    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""


@dataclass(frozen=True)
class ParsedDockerfile:
    path: Path
    text: str
    stages: tuple[Stage, ...]
    runs: tuple[RunStep, ...]
    args: frozenset[str]
    arg_defaults: Mapping[str, str] = field(default_factory=dict)
    syntax: str | None = None  # a `# syntax=` frontend, when the file names one
    env_lines: tuple[tuple[int, str, str], ...] = ()  # (line, name, value) of every ENV
    # The ARGs declared before the first FROM, the only ones FROM may use, with their
    # defaults (None: declared without one)
    global_args: Mapping[str, str | None] = field(default_factory=dict)

    def declares(self, name: str) -> bool:
        return name in self.args

    def image_refs(self, build_args: Mapping[str, str]) -> dict[int, str | None]:
        """The image each stage starts from, by stage index, for the stages that start
        from an image (not from another stage, not from scratch). FROM's variables are
        expanded as BuildKit expands them: with the ARGs declared before the first FROM, a
        build arg replacing a declared one's default. None: a variable has no value."""
        variables = {
            name: build_args.get(name, default or "")
            for name, default in self.global_args.items()
            if name in build_args or default is not None
        }
        names: set[str] = set()
        found: dict[int, str | None] = {}
        for stage in self.stages:
            ref = _resolve(stage.base, variables)
            if stage.parent is None and ref is not None and ref.lower() in names:
                continue  # a variable naming an earlier stage
            if stage.name:
                names.add(stage.name)
            if stage.parent is None and (ref is None or ref.lower() != "scratch"):
                found[stage.index] = ref
        return found

    def seeded(self, seeds: Mapping[int, Seed]) -> ParsedDockerfile:
        """The same file read again, each stage in ``seeds`` (by index) starting from its
        base image's environment, user and working directory rather than Docker's
        defaults: as BuildKit runs its steps."""
        if not seeds:
            return self
        return parse_text(self.path, self.text, seeds)

    def copies_before(self, run: RunStep) -> list[Copy]:
        """COPY/ADD steps that ran before ``run`` in its stage and the stages it builds on."""
        found: list[Copy] = []
        index: int | None = run.stage
        while index is not None:
            stage = self.stages[index]
            found += [c for c in stage.copies if c.line < run.line]
            index = stage.parent
        return found


_SYNTAX = re.compile(r"^#\s*syntax\s*=\s*(\S+)", re.IGNORECASE)


def parse(path: Path) -> ParsedDockerfile:
    text = read_text(path, "Dockerfile")
    return parse_text(path, text)


def parse_text(path: Path, text: str, seeds: Mapping[int, Seed] | None = None) -> ParsedDockerfile:
    try:
        commands = bk_parser.parse_string(text)
    except bk_parser.GoParseError as exc:
        raise BadInput(f"{path}: cannot parse Dockerfile: {exc}") from None
    return _Reader(path, text, seeds or {}).read(commands)


def _resolve(base: str, variables: Mapping[str, str]) -> str | None:
    """FROM's image with its variables expanded; None when one has no value (an ARG with
    neither a default nor a build arg, and no ``:-`` default of its own)."""
    for match in VARIABLE.finditer(base):
        if (match.group(1) or match.group(3)) not in variables and match.group(2) is None:
            return None
    return expand(base, variables) or None


def _syntax(text: str) -> str | None:
    for line in text.splitlines():
        if not line.startswith("#"):
            return None
        match = _SYNTAX.match(line)
        if match:
            return match.group(1)
    return None


@dataclass
class _StageState:
    user: str = "root"
    workdir: str = "/"
    shell: tuple[str, ...] = DEFAULT_SHELL
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)


class _Reader:
    """One pass over the instructions, keeping each stage's state as BuildKit would."""

    def __init__(self, path: Path, text: str, seeds: Mapping[int, Seed]) -> None:
        self.path = path
        self.text = text
        self.seeds = seeds
        self.stages: list[Stage] = []
        self.states: list[_StageState] = []
        self.runs: list[RunStep] = []
        self.args: set[str] = set()
        self.defaults: dict[str, str] = {}
        self.env_lines: list[tuple[int, str, str]] = []
        self.global_args: dict[str, str | None] = {}

    def read(self, commands: Sequence[bk_parser.Command]) -> ParsedDockerfile:
        for command in commands:
            self._one(command)
        stages = tuple(
            replace(stage, copies=tuple(state.copies))
            for stage, state in zip(self.stages, self.states, strict=True)
        )
        return ParsedDockerfile(
            self.path,
            self.text,
            stages,
            tuple(self.runs),
            frozenset(self.args),
            self.defaults,
            _syntax(self.text),
            tuple(self.env_lines),
            self.global_args,
        )

    def _one(self, command: bk_parser.Command) -> None:
        kind = command.cmd.upper()
        if kind in ("FROM", "USER", "WORKDIR") and not command.value:
            raise BadInput(f"{self.path}:{command.start_line}: {kind} needs an argument")
        if kind == "ARG":
            self._arg(command.value)
            return
        if kind == "FROM":
            self._from(command)
            return
        if not self.states:
            return
        state = self.states[-1]
        if kind == "USER":
            state.user = command.value[0]
        elif kind == "WORKDIR":
            state.workdir = _join(state.workdir, _expand(command.value[0], state.env))
        elif kind == "SHELL":
            state.shell = tuple(command.value)
        elif kind == "ENV":
            self._env(command, state)
        elif kind in ("COPY", "ADD"):
            self._copy(command, state)
        elif kind == "RUN":
            self.runs.append(_run(command, len(self.stages) - 1, state))

    def _arg(self, values: Sequence[str]) -> None:
        for item in values:
            name, equals, default = item.partition("=")
            self.args.add(name)
            if not self.stages:
                self.global_args[name] = default.strip("\"'") if equals else None
            if default and name not in self.defaults:
                self.defaults[name] = default.strip("\"'")

    def _from(self, command: bk_parser.Command) -> None:
        words = list(command.value)
        name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
        base = words[0]
        parent = next((s for s in self.stages if s.name == base.lower()), None)
        index = len(self.stages)
        self.stages.append(
            Stage(index, name, base, command.end_line, parent=parent.index if parent else None)
        )
        inherited = self.states[parent.index] if parent else self._seeded(index)
        self.states.append(
            _StageState(inherited.user, inherited.workdir, inherited.shell, dict(inherited.env))
        )

    def _seeded(self, index: int) -> _StageState:
        """A stage's state before its first line: its base image's, where known."""
        seed = self.seeds.get(index)
        if seed is None:
            return _StageState()
        return _StageState(
            user=seed.user or "root", workdir=seed.workdir or "/", env=dict(seed.env)
        )

    def _env(self, command: bk_parser.Command, state: _StageState) -> None:
        values = list(command.value)
        for name, value in zip(values[::2], values[1::2], strict=False):
            state.env[name] = _expand(value, state.env)
            self.env_lines.append((command.start_line, name, state.env[name]))

    def _copy(self, command: bk_parser.Command, state: _StageState) -> None:
        if any(flag.startswith("--from") for flag in command.flags) or len(command.value) < 2:
            return  # from another stage or image: not the build context
        *sources, destination = command.value
        dest = _join(state.workdir, _expand(destination, state.env))
        # `.` is the working directory: `COPY uv.lock .` puts the file in it, as `./` would
        if destination.endswith(("/", "/.")) or destination in (".", "..") or len(sources) > 1:
            dest = dest.rstrip("/") + "/"
        state.copies.append(Copy(command.start_line, tuple(sources), dest, state.workdir))


def _run(command: bk_parser.Command, stage: int, state: _StageState) -> RunStep:
    heredocs = [doc.content for doc in getattr(command, "heredocs", ()) or ()]
    body = "\n".join(heredocs)
    form: RunForm = "shell"
    if command.json:
        form = "exec"
        text = shlex.join(command.value)
    else:
        text = " ".join(command.value)
        if heredocs and re.fullmatch(r"<<-?[\"']?\w+[\"']?", text.strip()):
            form = "shebang" if body.lstrip("\t").startswith("#!") else "script"
    return RunStep(
        line=command.start_line,
        end_line=command.end_line,
        flags=tuple(command.flags),
        command=text,
        form=form,
        stage=stage,
        user=state.user,
        workdir=state.workdir,
        shell=state.shell,
        env=dict(state.env),
        heredoc_body=body,
        exec_argv=tuple(command.value) if command.json else (),
    )


def mount_options(flag: str) -> dict[str, str]:
    """``--mount=type=cache,id=x,ro`` as ``{"type": "cache", "id": "x", "ro": ""}``."""
    if not flag.startswith("--mount="):
        return {}
    pairs = (item.partition("=") for item in flag.removeprefix("--mount=").split(","))
    return {key.strip(): value.strip().strip("\"'") for key, _, value in pairs}


def _join(base: str, path: str) -> str:
    joined = PurePosixPath(base) / path if not path.startswith("/") else PurePosixPath(path)
    text = str(joined)
    return text + "/" if path.endswith("/") and not text.endswith("/") else text


def _expand(value: str, env: Mapping[str, str]) -> str:
    return expand(value, env) if "$" in value else value


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Expand $VAR, ${VAR} and ${VAR:-default} as the Dockerfile frontend would."""

    def replace_one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2) or ""
        return variables.get(name, default)

    return VARIABLE.sub(replace_one, value)
