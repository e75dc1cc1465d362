"""The docs stay true: every profile setting is documented, the README starts as promised."""

from __future__ import annotations

import re

from orchestrator.errors import ExitCode
from orchestrator.profiles import Profile, ProxySettings
from tests.conftest import REPO


def test_every_profile_setting_is_in_the_reference() -> None:
    reference = (REPO / "docs" / "profiles.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", reference, flags=re.MULTILINE))
    assert set(Profile.model_fields) <= documented
    assert set(ProxySettings.model_fields) <= documented


def test_readme_opens_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^    (scripts/setup && .+)$", readme, flags=re.MULTILINE)
    assert commands[:2] == [
        "scripts/setup && .venv/bin/orchestrate build example",
        "scripts/setup && scripts/test",
    ]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_every_exit_code_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", readme, flags=re.MULTILINE), code


def test_the_installer_table_names_tests_that_exist() -> None:
    """docs/installers.md says which test shows each line: those tests must exist."""
    table = (REPO / "docs" / "installers.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", table))
    assert named, "the table names no test"
    sources = "\n".join(path.read_text() for path in (REPO / "tests").rglob("test_*.py"))
    defined = set(re.findall(r"^def (test_\w+)\(", sources, flags=re.MULTILINE))
    assert named <= defined, sorted(named - defined)
    readme = (REPO / "README.md").read_text()
    assert "(docs/installers.md)" in readme
    what_it_does = readme.split("## What it does")[1].split("\n## ")[0]
    for installer in ("pip", "pip-tools", "uv", "poetry"):
        assert f"**{installer}**" in what_it_does, installer
