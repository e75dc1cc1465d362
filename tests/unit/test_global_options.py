"""The global options (-v, --log-format, --profiles-dir) before the command's name or after
it, with the same meaning; after `orchestrate run`'s `--`, every word is the command's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli.parser import build_parser
from tests.conftest import write_profile
from tests.support.cli import run_cli

GLOBALS = ["-v", "--log-format", "json", "--profiles-dir", "elsewhere"]


def parsed(words: list[str]) -> tuple[object, ...]:
    options = build_parser(words).parse_args(words)
    return options.verbose, options.log_format, options.profiles_dir


@pytest.mark.parametrize(
    "command",
    [
        ["build", "app", "--dry-run"],
        ["bake", "--profile", "app"],
        ["run", "app"],
        ["env", "app"],
        ["profiles", "list"],
        ["profiles", "validate"],
        ["proxy", "status"],
        ["proxy", "prune", "--dry-run"],
    ],
)
def test_after_the_command_they_mean_what_they_mean_before(command: list[str]) -> None:
    before = parsed([*GLOBALS, *command])
    assert before == (True, "json", "elsewhere")
    assert parsed([*command, *GLOBALS]) == before
    assert parsed([*command[:1], *GLOBALS, *command[1:]]) == before  # between the words too


def test_given_before_the_command_they_are_not_reset_by_it() -> None:
    assert parsed([*GLOBALS, "profiles", "list", "--json"]) == (True, "json", "elsewhere")
    assert parsed(["profiles", "list"]) == (False, "auto", None)


def test_after_the_dashes_of_run_they_are_the_command_s() -> None:
    words = ["run", "app", "--", "pytest", *GLOBALS]
    options = build_parser(words).parse_args(words)
    assert (options.verbose, options.log_format, options.profiles_dir) == (False, "auto", None)
    assert options.command == ["pytest", *GLOBALS]
    words = ["run", "app", "-v", "--", "pytest", "-v"]
    options = build_parser(words).parse_args(words)
    assert (options.verbose, options.command) == (True, ["pytest", "-v"])


def test_profiles_list_reads_the_directory_given_after_the_command(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_profile(profiles_dir, "only", "description: here\ncontext: ../ctx\n")
    ran = run_cli("profiles", "list", "--json", "--profiles-dir", str(profiles_dir))
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout) == [{"name": "only", "description": "here", "valid": True}]


def test_log_options_after_the_command_are_followed(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-v: the handled error's traceback at debug; --log-format json: every line JSON."""
    ran = run_cli("env", "nothing", "--profiles-dir", str(profiles_dir), *GLOBALS[:3])
    assert ran.code == 2, ran.stderr
    records = [json.loads(line) for line in ran.stderr.splitlines()]
    assert [(r["level"], r["event"]) for r in records] == [
        ("debug", "handled error"),
        ("error", "error"),
    ]


def test_a_log_format_after_the_dashes_does_not_format_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran = run_cli("run", "app", "--no-such", "--", "tool", "--log-format", "json")
    assert ran.code == 2
    assert ran.stderr == (
        "orchestrate: error: orchestrate: unrecognized arguments: --no-such "
        "(see `orchestrate --help`)\n"
    )
