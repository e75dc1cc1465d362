"""`orchestrate run` and `orchestrate env` as a user types them (no engine: proxy off)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.parser import build_parser
from tests.conftest import write_profile
from tests.unit.test_cli import assert_one_line_error, orchestrate

OFF = "context: ../ctx\ntags: [demo/app:1]\nca_bundle: off\nproxy: off\n"


@pytest.mark.parametrize(
    ("words", "profile", "image", "command"),
    [
        (
            ["app", "--image", "x", "--", "pip", "install", "-v"],
            "app",
            "x",
            ["pip", "install", "-v"],
        ),
        (["--image", "x", "app", "--", "sh", "-c", "exit 3"], "app", "x", ["sh", "-c", "exit 3"]),
        (["app", "python3", "x.py"], "app", None, ["python3", "x.py"]),
        (["app", "--", "--", "x"], "app", None, ["--", "x"]),
        (["app"], "app", None, []),
    ],
)
def test_the_command_is_every_word_after_the_first_dashes(
    words: list[str], profile: str, image: str | None, command: list[str]
) -> None:
    options = build_parser().parse_args(["run", *words])
    assert (options.profile, options.image, options.command) == (profile, image, command)


def test_docker_opts_repeat() -> None:
    options = build_parser().parse_args(
        ["run", "app", "--docker-opt=--memory=1g", "--docker-opt", "-e A=1", "--", "true"]
    )
    assert options.docker_opts == ["--memory=1g", "-e A=1"]


def test_dry_run_prints_the_docker_command(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    result = orchestrate(
        "--profiles-dir", str(profiles_dir), "run", "app", "--dry-run", "--json", "--", "true"
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["mode"] == "off"
    assert plan["argv"][:3] == ["docker", "run", "--rm"]
    assert plan["argv"][-2:] == ["demo/app:1", "true"]


def test_a_reserved_docker_option_is_one_line_and_exit_2(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    result = orchestrate(
        "--profiles-dir", str(profiles_dir), "run", "app", "--docker-opt=--name=x", "--dry-run"
    )
    assert_one_line_error(result, 2, "leave out --name and --detach")


def test_env_compose_reads_the_services_of_the_compose_file(
    profiles_dir: Path, tmp_path: Path
) -> None:
    write_profile(profiles_dir, "app", OFF)
    work = tmp_path / "work"
    work.mkdir()
    (work / "compose.yaml").write_text("services:\n  web: {image: x}\n  db: {image: y}\n")
    result = orchestrate(
        "--profiles-dir", str(profiles_dir), "env", "app", "--format", "compose", cwd=work
    )
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load(result.stdout)["services"]) == ["web", "db"]


def test_env_compose_without_services_says_how_to_name_them(
    profiles_dir: Path, tmp_path: Path
) -> None:
    write_profile(profiles_dir, "app", OFF)
    result = orchestrate(
        "--profiles-dir", str(profiles_dir), "env", "app", "--format", "compose", cwd=tmp_path
    )
    assert_one_line_error(result, 2, "no compose file in", "--service")
