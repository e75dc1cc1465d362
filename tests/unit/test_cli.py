"""The command line as a user meets it: one line per bad input, documented exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli.parser import build_parser, named_command
from orchestrator.profiles import json_schema
from tests.conftest import REPO, write_profile
from tests.support.cli import run_cli
from tests.support.engine import FakeEngine


def orchestrate(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    engine: FakeEngine | None = None,
) -> subprocess.CompletedProcess[str]:
    """The entry point in this process (``tests/support/cli.py``), JSON logs, with this
    environment and working directory; Docker is a fake that answers nothing unless one
    is given, so a command that was not meant to ask Docker fails the test."""
    with environment(env or {}), contextlib.chdir(cwd):
        ran = run_cli("--log-format", "json", *args, engine=engine)
    return subprocess.CompletedProcess(list(args), ran.code, ran.stdout, ran.stderr)


def orchestrate_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """The real entry point in a process of its own, as a user starts it, on the real
    engine: for the few tests about the process itself (start-up, pipes, the engine)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "--log-format", "json", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """These variables set (an empty value unsets one) for the block, then put back."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


def stderr_records(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """With --log-format json, every line on stderr is a JSON object."""
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, result.stderr
    errors = [r for r in stderr_records(result) if r.get("event") == "error"]
    assert len(errors) == 1, result.stderr
    line = str(errors[0]["message"])
    assert line.startswith("orchestrate: error: ")
    assert len(line) < 200 + len("orchestrate: error: "), line
    assert errors[0]["exit_code"] == code
    assert "Traceback" not in result.stderr
    for part in parts:
        assert part in line


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("context: ../ctx\ntagz: [x]\n", ["bad.yaml:2", "unknown field 'tagz'", "'tags'"]),
        ("context: ../ctx\ntags: 5\n", ["bad.yaml:2", "field 'tags'"]),
        ("context: [\n", ["bad.yaml:", "invalid YAML"]),
        ("context: ../missing\n", ["bad.yaml", "field 'context'", "does not exist"]),
        ("context: ../ctx\ndockerfile: Nope\n", ["field 'dockerfile'", "does not exist"]),
        ("extends: bad\ncontext: ../ctx\n", ["field 'extends'", "cycle bad -> bad"]),
        ("context: ../ctx\nproxy: {port: 99999}\n", ["field 'proxy.port'"]),
        ("context: ../ctx\nssh: true\n", ["field 'ssh'", "SSH_AUTH_SOCK"]),
    ],
)
def test_bad_profiles_give_one_line_and_exit_2(
    profiles_dir: Path, text: str, parts: list[str]
) -> None:
    write_profile(profiles_dir, "bad", text)
    result = orchestrate(
        "--profiles-dir",
        str(profiles_dir),
        "build",
        "bad",
        "--dry-run",
        env={"SSH_AUTH_SOCK": ""},
        cwd=profiles_dir.parent,
    )
    assert_one_line_error(result, 2, *parts)


PYDANTIC_WORDS = ("literal[", "<class", "function-after", "is-instance", "Input should")


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("tags: ['UPPER:Tag!']", "tags.0"),
        (f"tags: [ok, '{'X' * 300}']", "tags.1"),
        ("proxy: {network: host}", "proxy.network"),
        ("proxy: {network: none}", "proxy.network"),
        ("proxy: {network: bridge}", "proxy.network"),
        ("proxy: {health_project: ''}", "proxy.health_project"),
        (f"proxy: {{health_project: '-{'x' * 100}'}}", "proxy.health_project"),
        ("ssh: 'yes'", "ssh"),
        ("proxy: {bridge: 1}", "proxy.bridge"),
        ("proxy: {cache_size: 20X}", "proxy.cache_size"),
        ("proxy: {cache_size: 1.5}", "proxy.cache_size"),
        ("secrets: {netrc: {file: ../ctx}}", "secrets.netrc.file"),
        ("secrets: {netrc: {file: nope}}", "secrets.netrc.file"),
        ("ca_bundle: ../ctx", "ca_bundle"),
        ("proxy: {ca_bundle: ../ctx}", "proxy.ca_bundle"),
        ("user: 5", "user"),
        ("user: {name: a, uid: x, gid: 1}", "user.uid"),
        ("user: {name: a}", "user.uid"),
        ("ca_bundle: 5", "ca_bundle"),
        ("proxy: {ca_bundle: [1]}", "proxy.ca_bundle"),
        ("secrets: {x: {file: 5}}", "secrets.x.file"),
        ("secrets: {x: {}}", "secrets.x"),
        ("tagz: [x]", "tagz"),
        ("tags: 5", "tags"),
        ("proxy: 5", "proxy"),
        ("proxy: {port: 99999}", "proxy.port"),
        ("proxy: {port: x}", "proxy.port"),
        ("proxy: {mode: sometimes}", "proxy.mode"),
        ("proxy: {bind: localhost}", "proxy.bind"),
        ("proxy: {index: ftp://mirror.example/simple/}", "proxy.index"),
        ("progress: loud", "progress"),
        ("build_args: {5: x}", "build_args.5"),
        ("cache_namespace: -x", "cache_namespace"),
    ],
)
def test_every_bad_value_is_one_short_line_naming_its_field(
    profiles_dir: Path, setting: str, field: str
) -> None:
    """Refused before anything runs (exit 2), in one line under 200 characters that names
    the field in the user's words, not pydantic's (issue 21, item 6)."""
    write_profile(profiles_dir, "bad", f"context: ../ctx\n{setting}\n")
    with contextlib.chdir(profiles_dir.parent):
        ran = run_cli("--profiles-dir", "profiles", "build", "bad", "--dry-run")
    assert ran.code == 2, ran.stderr
    [line] = ran.lines
    assert len(line) < 200, line
    assert line.startswith("orchestrate: error: profiles/bad.yaml:2: "), line
    assert f"field '{field}'" in line, line
    for words in PYDANTIC_WORDS:
        assert words not in line, line


def test_paths_below_the_working_directory_are_named_relative_to_it(profiles_dir: Path) -> None:
    """Two absolute paths alone could pass the 200 characters (seen under pytest-xdist,
    whose temporary paths are longer)."""
    write_profile(profiles_dir, "bad", "context: ../ctx\ndockerfile: Nope\n")
    args = ("--profiles-dir", str(profiles_dir), "build", "bad", "--dry-run")
    result = orchestrate(*args, cwd=profiles_dir.parent)
    assert_one_line_error(
        result, 2, "profiles/bad.yaml:2: field 'dockerfile': ctx/Nope does not exist"
    )
    for elsewhere in (REPO, Path("/")):  # not below: named whole
        result = orchestrate(*args, cwd=elsewhere)
        assert result.returncode == 2
        assert f"error: {profiles_dir}/bad.yaml:2: field 'dockerfile'" in result.stderr


def test_unknown_profile_name(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "example", "context: ../ctx\n")
    result = orchestrate("--profiles-dir", str(profiles_dir), "build", "exampel", "--dry-run")
    assert_one_line_error(result, 2, "no profile named 'exampel'", "did you mean 'example'")


def test_profiles_dir_from_environment(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "only", "description: from env\ncontext: ../ctx\n")
    result = orchestrate(
        "profiles", "list", "--json", env={"ORCHESTRATE_PROFILES_DIR": str(profiles_dir)}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"name": "only", "description": "from env", "valid": True}]


def test_validate_reports_each_bad_profile_and_exits_2(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "good", "context: ../ctx\n")
    write_profile(profiles_dir, "bad", "context: ../ctx\nlabels: [1]\n")
    result = orchestrate("--profiles-dir", str(profiles_dir), "profiles", "validate")
    assert result.returncode == 2
    assert "ok       good" in result.stdout
    assert "invalid  bad:" in result.stderr
    assert "field 'labels'" in result.stderr


def test_show_json_is_fully_resolved(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", "context: ../ctx\nbuild_args: {A: 1}\n")
    write_profile(profiles_dir, "app", "extends: base\nbuild_args: {B: 2}\n")
    result = orchestrate("--profiles-dir", str(profiles_dir), "profiles", "show", "app", "--json")
    data = json.loads(result.stdout)
    assert data["build_args"] == {"A": "1", "B": "2"}
    assert data["context"] == str((profiles_dir.parent / "ctx").resolve())
    assert data["sources"] == [str(profiles_dir / "app.yaml"), str(profiles_dir / "base.yaml")]


def test_schema_command_matches_the_shipped_schema_file() -> None:
    result = orchestrate("profiles", "schema")
    assert json.loads(result.stdout) == json_schema()
    shipped = json.loads((REPO / "docs" / "profile.schema.json").read_text())
    assert shipped == json_schema(), (
        "regenerate: orchestrate profiles schema > docs/profile.schema.json"
    )


def test_unreachable_engine_exits_3(tmp_path: Path) -> None:
    """The real engine, in a real process: its socket is not there."""
    no_engine = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}
    result = orchestrate_process("build", "example", env=no_engine)
    assert_one_line_error(result, 3, "cannot reach the Docker engine")


def test_usage_error_exits_2_in_one_line() -> None:
    result = orchestrate("build")
    assert_one_line_error(result, 2, "build: the following arguments are required: PROFILE")


def test_dry_run_with_the_engine_stopped_exits_3_like_a_real_run(tmp_path: Path) -> None:
    """A dry run cannot tell what the builder can do without asking it (issue 15)."""
    result = orchestrate_process(
        "build",
        "example",
        "--dry-run",
        "--no-proxy",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "XDG_CACHE_HOME": str(tmp_path)},
    )
    assert_one_line_error(result, 3, "cannot reach the Docker engine")
    assert result.stdout == ""
    assert not (tmp_path / "orchestrator" / "facts").exists() or not any(
        (tmp_path / "orchestrator" / "facts").iterdir()
    ), "facts about an engine that did not answer are never kept"


def test_closed_pipe_ends_quietly(profiles_dir: Path) -> None:
    """Quietly and with 141, as the README says: 300 lines of 420 bytes are more than the
    pipe (64 KiB) and head's one read (8 KiB) hold, so a write always meets the closed
    pipe."""
    for index in range(300):
        text = f"description: {'x' * 400}\ncontext: ../ctx\n"  # more than a pipe holds
        write_profile(profiles_dir, f"p{index:03d}", text)
    command = (
        f"{sys.executable} -m orchestrator --profiles-dir {profiles_dir} profiles list | head -1; "
        "echo status=${PIPESTATUS[0]}"
    )
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.splitlines()[0].startswith("p000")
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "status=141"


def test_the_parser_holds_only_the_command_it_is_given() -> None:
    """A build's start-up builds the build command's options only; help lists them all."""
    assert named_command(["--log-format", "json", "--profiles-dir", "p", "-v", "build", "x"]) == (
        "build"
    )
    assert named_command(["--help", "build"]) is None
    assert named_command(["biuld", "x"]) is None
    assert named_command(["--version"]) == "--version"
    options = build_parser(["build", "app", "--no-proxy"]).parse_args(
        ["build", "app", "--no-proxy"]
    )
    assert options.profile == "app"
    assert options.no_proxy
    assert options.handler == "orchestrator.cli.commands.build"
    full = build_parser(["--help"]).format_help()
    for command in ("build", "bake", "run", "env", "profiles", "proxy"):
        assert command in full
