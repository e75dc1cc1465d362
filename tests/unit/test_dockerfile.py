"""Reading Dockerfiles with BuildKit's parser, and rendering the build-time copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import dockerfile
from orchestrator.dockerfile import ParsedDockerfile, RunStep, RunWiring, expand, render
from orchestrator.dockerfile.commands import disabled_caches, installers
from orchestrator.dockerfile.sources import source_of
from orchestrator.errors import BadInput, ExitCode

MULTI_STAGE = """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.12-slim
FROM ${BASE} AS base
ARG USER_NAME=app
ARG USER_ID
RUN useradd --uid 1000 ${USER_NAME}
USER ${USER_NAME}
RUN pip install requests

FROM base AS dev
RUN uv pip install pytest

FROM --platform=$BUILDPLATFORM scratch
RUN ["echo", "a b"]
"""


def parse_text(tmp_path: Path, text: str, name: str = "Dockerfile") -> ParsedDockerfile:
    path = tmp_path / name
    path.write_text(text)
    return dockerfile.parse(path)


def run_at(parsed: ParsedDockerfile, line: int) -> RunStep:
    return next(run for run in parsed.runs if run.line == line)


def one_run(tmp_path: Path, command: str) -> RunStep:
    """The single RUN step of a one-stage Dockerfile running ``command``."""
    (run,) = parse_text(tmp_path, f"FROM python\nRUN {command}\n").runs
    return run


# --- parsing ------------------------------------------------------------------------------


def test_stages_have_names_and_bases(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, MULTI_STAGE)
    assert [s.name for s in parsed.stages] == ["base", "dev", None]
    assert [s.base for s in parsed.stages] == ["${BASE}", "base", "scratch"]
    assert [s.index for s in parsed.stages] == [0, 1, 2]
    assert [s.end_line for s in parsed.stages] == [3, 10, 13]


def test_runs_know_their_stage_and_user(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, MULTI_STAGE)
    assert [(r.line, r.stage, r.user) for r in parsed.runs] == [
        (6, 0, "root"),  # before USER
        (8, 0, "${USER_NAME}"),
        (11, 1, "${USER_NAME}"),  # FROM base inherits base's last USER
        (14, 2, "root"),  # a fresh image starts as root
    ]


def test_from_an_image_does_not_inherit_a_user(tmp_path: Path) -> None:
    text = "FROM python AS a\nUSER app\nFROM python AS b\nRUN id\n"
    assert parse_text(tmp_path, text).runs[0].user == "root"


def test_inherited_user_is_the_parent_stage_final_user(tmp_path: Path) -> None:
    text = "FROM python AS a\nUSER one\nRUN id\nUSER two\nFROM a\nRUN id\n"
    assert [r.user for r in parse_text(tmp_path, text).runs] == ["one", "two"]


def test_stage_names_match_case_insensitively(tmp_path: Path) -> None:
    text = "FROM python AS Builder\nUSER app\nFROM builder\nRUN id\n"
    assert parse_text(tmp_path, text).runs[0].user == "app"


def test_args_are_collected_from_every_scope(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, MULTI_STAGE)
    assert parsed.args == {"BASE", "USER_NAME", "USER_ID"}
    assert parsed.declares("USER_ID")
    assert not parsed.declares("GROUP_ID")


def test_arg_defaults_only_for_args_with_a_value(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, MULTI_STAGE)
    assert dict(parsed.arg_defaults) == {"BASE": "python:3.12-slim", "USER_NAME": "app"}


def test_image_refs_expand_from_with_the_global_args_and_build_args(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, MULTI_STAGE)
    assert parsed.image_refs({}) == {0: "python:3.12-slim"}  # dev is FROM base, then scratch
    assert parsed.image_refs({"BASE": "orchestrator/base:bookworm"}) == {
        0: "orchestrator/base:bookworm"
    }


def test_image_refs_use_only_args_declared_before_the_first_from(tmp_path: Path) -> None:
    text = (
        "ARG TAG\nFROM python:${TAG:-3.12} AS a\nARG LATE=x\nFROM ${LATE}\n"
        "FROM ${NOWHERE:-debian}\nFROM $TAG\n"
    )
    parsed = parse_text(tmp_path, text)
    found = {0: "python:3.12", 1: None, 2: "debian", 3: None}  # no TAG: FROM $TAG is empty
    assert parsed.image_refs({"LATE": "ignored"}) == found
    assert parsed.image_refs({"TAG": "3.13"}) == {**found, 0: "python:3.13", 3: "3.13"}


def test_image_refs_skip_a_variable_that_names_an_earlier_stage(tmp_path: Path) -> None:
    text = "ARG FROM_STAGE=build\nFROM python AS build\nFROM ${FROM_STAGE}\n"
    parsed = parse_text(tmp_path, text)
    assert parsed.image_refs({}) == {0: "python"}


def test_a_seeded_stage_starts_from_its_base_image_s_environment(tmp_path: Path) -> None:
    text = (
        "FROM poetry AS a\nRUN poetry install\nENV POETRY_CACHE_DIR=$HOME/cache\n"
        "WORKDIR src\nRUN poetry install\nFROM a\nUSER root\nRUN id\nFROM python\nRUN id\n"
    )
    base = dockerfile.Seed({"HOME": "/home/app", "POETRY_CACHE_DIR": "/opt/c"}, "app", "/app")
    parsed = parse_text(tmp_path, text).seeded({0: base})
    first, second, inherited, other = parsed.runs
    assert (first.user, first.workdir, dict(first.env)) == ("app", "/app", dict(base.env))
    assert (second.workdir, second.env["POETRY_CACHE_DIR"]) == ("/app/src", "/home/app/cache")
    assert (inherited.user, inherited.env["HOME"]) == ("root", "/home/app")  # FROM a
    assert (other.user, other.workdir, dict(other.env)) == ("root", "/", {})  # not seeded
    assert parsed.env_lines == ((3, "POETRY_CACHE_DIR", "/home/app/cache"),)


def test_an_image_without_user_or_workdir_gives_docker_s_defaults(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, "FROM python\nRUN id\n")
    (run,) = parsed.seeded({0: dockerfile.Seed({"PATH": "/usr/bin"})}).runs
    assert (run.user, run.workdir, dict(run.env)) == ("root", "/", {"PATH": "/usr/bin"})
    assert parsed.seeded({}) is parsed


def test_several_args_on_one_line_and_quoted_defaults(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, "FROM x\nARG A=1 B=\"two words\" C\nARG D='q'\n")
    assert parsed.args == {"A", "B", "C", "D"}
    assert dict(parsed.arg_defaults) == {"A": "1", "B": "two words", "D": "q"}


def test_first_default_of_an_arg_is_kept(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, "ARG V=global\nFROM x\nARG V=stage\n")
    assert parsed.arg_defaults["V"] == "global"


def test_multi_line_run_spans_its_continuation_lines(tmp_path: Path) -> None:
    text = "FROM x\nRUN apt-get update \\\n  && pip install a \\\n  && echo done\nRUN echo b\n"
    parsed = parse_text(tmp_path, text)
    assert [(r.line, r.end_line) for r in parsed.runs] == [(2, 4), (5, 5)]
    assert "pip install a" in parsed.runs[0].command


def test_run_flags_are_kept_apart_from_the_command(tmp_path: Path) -> None:
    run = one_run(tmp_path, "--mount=type=cache,target=/root/.cache --network=none pip install x")
    assert run.flags == ("--mount=type=cache,target=/root/.cache", "--network=none")
    assert run.command == "pip install x"


def test_exec_form_run_is_detected(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, MULTI_STAGE)
    exec_run = run_at(parsed, 14)
    assert exec_run.exec_form
    assert exec_run.command == "echo 'a b'"
    assert not any(r.exec_form for r in parsed.runs if r.line != 14)


def test_exec_form_that_installs_is_detected(tmp_path: Path) -> None:
    run = one_run(tmp_path, '["pip", "install", "requests"]')
    assert run.exec_form
    assert run.exec_argv == ("pip", "install", "requests")
    assert installers(run.text) == {"pip"}


@pytest.mark.parametrize(
    "command",
    [
        "pip install requests",
        "pip3 install requests",
        "python3 -m pip install requests",
        "python -m pip install requests",
        "python3.12 -m pip install requests",
        "/opt/venv/bin/pip install requests",
        "uv pip install --system requests",
        "uv sync --frozen",
        "python3 -m uv pip install x",
        "poetry install --no-root",
        "pipenv install --deploy",
        "pdm install",
        "apt-get update && pip install requests",
        "cd /app; poetry install",
        "(cd /src && pip install .)",
    ],
)
def test_installs_packages(tmp_path: Path, command: str) -> None:
    assert installers(one_run(tmp_path, command).text)


@pytest.mark.parametrize(
    "command",
    [
        "echo pipeline",
        "pipx install black",
        "apt-get install -y python3-pip",
        "uvicorn --version",
        "echo hello && ls /pip-data",
        "python3 -m venv /opt/venv",
    ],
)
def test_does_not_install_packages(tmp_path: Path, command: str) -> None:
    assert not installers(one_run(tmp_path, command).text)


def test_versioned_pip_executable_installs_packages(tmp_path: Path) -> None:
    assert installers(one_run(tmp_path, "pip3.12 install requests").text) == {"pip"}


def test_heredoc_run_that_installs_is_detected(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, "FROM x\nRUN <<EOF\npip install requests\nEOF\n")
    assert parsed.runs[0].form == "script"
    assert installers(parsed.runs[0].text) == {"pip"}


@pytest.mark.parametrize(
    ("command", "disabled"),
    [
        ("pip install --no-cache-dir requests", ["pip"]),
        ("PIP_NO_CACHE_DIR=1 pip install requests", ["pip"]),
        ("pip install requests", []),
        ("uv pip install requests", []),
        ("uv pip install --no-cache-dir requests", ["uv"]),  # issue 21: was "pip cache off"
        ("uv sync --no-cache && pip install --no-cache-dir a", ["pip", "uv"]),
    ],
)
def test_the_installer_told_to_use_no_cache(
    tmp_path: Path, command: str, disabled: list[str]
) -> None:
    assert disabled_caches(one_run(tmp_path, command).text) == disabled


@pytest.mark.parametrize(
    ("command", "tools"),
    [
        ("pip install poetry", {"pip"}),  # transactions-task: installs poetry, runs pip
        ("pip install pipenv && pipenv sync", {"pip", "pipenv"}),
        ("POETRY_VIRTUALENVS_CREATE=false poetry install", {"poetry"}),
        ("if [ -f r.txt ]; then pip install -r r.txt; fi", {"pip"}),
        ("/opt/venv/bin/pip3.11 install a", {"pip"}),
        ("python3 -m pip install uv", {"pip"}),
    ],
)
def test_an_installer_is_the_command_run_not_a_package_named(
    tmp_path: Path, command: str, tools: set[str]
) -> None:
    assert installers(one_run(tmp_path, command).text) == tools


def test_pip_compile_is_an_installer(tmp_path: Path) -> None:
    assert installers(one_run(tmp_path, "pip-compile requirements.in").text) == {"pip-tools"}
    assert installers(one_run(tmp_path, "python -m piptools compile x.in").text) == {"pip-tools"}


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "FROM x\nENV ONLYNAME\n",  # ENV needs a value
        "FROM x\nLABEL a\n",  # LABEL needs a value
        "FROM x\nRUN <<EOF\npip install a\n",  # unterminated heredoc
        "",  # no instructions at all
    ],
)
def test_unparsable_dockerfile_is_bad_input_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "Broken.Dockerfile"
    path.write_text(text)
    with pytest.raises(BadInput) as info:
        dockerfile.parse(path)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.message.startswith(f"{path}: cannot parse Dockerfile")


def test_from_without_image_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM\nRUN echo\n")
    with pytest.raises(BadInput, match=str(path)):
        dockerfile.parse(path)


def test_user_without_name_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM x\nUSER\n")
    with pytest.raises(BadInput, match=str(path)):
        dockerfile.parse(path)


# --- expand -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${USER_NAME}", "alice"),
        ("$USER_NAME", "alice"),
        ("${USER_NAME}:${GROUP}", "alice:staff"),
        ("$USER_NAME:$GROUP", "alice:staff"),
        ("${MISSING:-fallback}", "fallback"),
        ("${USER_NAME:-fallback}", "alice"),
        ("${MISSING}", ""),
        ("$MISSING", ""),
        ("plain", "plain"),
        ("1000:1000", "1000:1000"),
    ],
)
def test_expand(value: str, expected: str) -> None:
    assert expand(value, {"USER_NAME": "alice", "GROUP": "staff"}) == expected


# --- render -------------------------------------------------------------------------------

ODD_FILE = """\
# syntax=docker/dockerfile:1
# a comment with trailing spaces\x20\x20\x20
FROM python:3.12   AS   base
\tENV  A=1 \\
\t    B=2
RUN echo untouched

RUN --mount=type=ssh apt-get update \\
    # a comment inside the continuation
    && pip install a \\
    && echo done
COPY  . /src
FROM base
RUN pip install b
"""
WIRED = RunWiring(mounts=("--mount=type=secret,id=s",), prefix="set -a; ")


def test_render_without_wiring_is_the_original(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, ODD_FILE)
    assert render(parsed, {}) == ODD_FILE


def test_render_keeps_untouched_lines_byte_identical(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, ODD_FILE)
    original = ODD_FILE.splitlines()
    rendered = render(parsed, {8: WIRED}).splitlines()
    # lines 8-11 (one RUN with continuations) became one line; all else is as written
    assert rendered[:7] == original[:7]
    assert rendered[8:] == original[11:]
    assert len(rendered) == len(original) - 3


def test_render_replaces_a_continued_run_by_one_line(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, ODD_FILE)
    run = run_at(parsed, 8)
    rendered = render(parsed, {8: WIRED}).splitlines()
    assert rendered[7] == (f"RUN --mount=type=ssh --mount=type=secret,id=s set -a; {run.command}")
    assert "pip install a" in rendered[7]
    assert not any("&& echo done" in line for line in rendered[8:])


def test_render_wiring_flags_replace_the_step_flags(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, ODD_FILE)
    wiring = RunWiring(flags=("--mount=type=ssh,uid=1000,gid=1000",))
    line = render(parsed, {8: wiring}).splitlines()[7]
    assert line.startswith("RUN --mount=type=ssh,uid=1000,gid=1000 apt-get update")
    assert line.count("--mount=type=ssh") == 1


def test_render_rewrites_only_the_wired_runs(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, ODD_FILE)
    rendered = render(parsed, {14: WIRED}).splitlines()
    assert rendered[5] == "RUN echo untouched"
    assert rendered[-1] == "RUN --mount=type=secret,id=s set -a; pip install b"


def test_render_inserts_after_every_from(tmp_path: Path) -> None:
    text = "ARG BASE=x\nFROM ${BASE} \\\n  AS base\nRUN a\nFROM base\nRUN b\n"
    parsed = parse_text(tmp_path, text)
    rendered = render(parsed, {}, after_from=["ARG ONE", "ARG TWO"])
    assert rendered == (
        "ARG BASE=x\nFROM ${BASE} \\\n  AS base\nARG ONE\nARG TWO\nRUN a\n"
        "FROM base\nARG ONE\nARG TWO\nRUN b\n"
    )


def test_rendered_text_parses_again_with_the_same_structure(tmp_path: Path) -> None:
    parsed = parse_text(tmp_path, ODD_FILE)
    rendered = render(parsed, {8: WIRED, 14: WIRED}, after_from=["ARG ORCHESTRATE_FRESH"])
    again = parse_text(tmp_path, rendered, name="Rendered.Dockerfile")
    assert [s.name for s in again.stages] == [s.name for s in parsed.stages]
    assert [r.stage for r in again.runs] == [r.stage for r in parsed.runs]
    assert again.args == parsed.args | {"ORCHESTRATE_FRESH"}
    wired = [r for r in again.runs if "--mount=type=secret,id=s" in r.flags]
    assert len(wired) == 2
    originals = [run_at(parsed, 8), run_at(parsed, 14)]
    assert [r.command for r in wired] == [f"set -a; {r.command}" for r in originals]
    assert [r.flags for r in wired] == [(*r.flags, "--mount=type=secret,id=s") for r in originals]


def test_render_keeps_a_heredoc_body(tmp_path: Path) -> None:
    text = "FROM x\nRUN <<EOF\npip install a\nEOF\nRUN echo z\n"
    parsed = parse_text(tmp_path, text)
    rendered = render(parsed, {2: WIRED})
    assert "pip install a" in rendered
    again = parse_text(tmp_path, rendered, name="Rendered.Dockerfile")
    assert len(again.runs) == 2


def test_render_counts_lines_as_buildkit_does(tmp_path: Path) -> None:
    text = "FROM x\n# page\x0cbreak\nRUN pip install a\nRUN echo b\n"
    parsed = parse_text(tmp_path, text)
    rendered = render(parsed, {3: WIRED})
    assert rendered == text.replace("RUN pip", "RUN --mount=type=secret,id=s set -a; pip")


def test_copy_to_dot_is_into_the_working_directory(tmp_path: Path) -> None:
    """`COPY uv.lock .` and `COPY requirements.txt .` put the file in the WORKDIR, as `./`
    does (before, `.` read as a file named /app, and the file was not traced)."""
    text = "FROM python\nWORKDIR /app\nCOPY requirements.txt .\nCOPY a /opt/.\nCOPY b c\nRUN true\n"
    parsed = dockerfile.parse_text(tmp_path / "Dockerfile", text)
    destinations = [c.destination for c in parsed.copies_before(parsed.runs[0])]
    assert destinations == ["/app/", "/opt/", "/app/c"]
    run = parsed.runs[0]
    assert source_of(parsed, run, "/app/requirements.txt").path == "requirements.txt"
