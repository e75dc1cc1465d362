"""Profiles: loading, inheritance and the one-line errors for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import BadInput, ExitCode
from orchestrator.profiles import ProfileStore, json_schema
from tests.conftest import REPO, write_profile

MINIMAL = "context: ../ctx\n"


def resolve(directory: Path, name: str = "app"):
    return ProfileStore(directory).resolve(name)


def error_of(directory: Path, name: str = "app") -> str:
    with pytest.raises(BadInput) as info:
        resolve(directory, name)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "\n" not in info.value.message
    return info.value.message


def test_minimal_profile_gets_defaults(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL)
    resolved = resolve(profiles_dir)
    assert resolved.profile.context == (profiles_dir.parent / "ctx").resolve()
    assert resolved.profile.dockerfile_path.name == "Dockerfile"
    assert resolved.profile.tags == ()
    assert resolved.sources == (profiles_dir / "app.yaml",)


def test_numbers_in_build_args_become_strings(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "build_args: {USER_ID: 1000, DEBUG: true}\n")
    assert resolve(profiles_dir).profile.build_args == {"USER_ID": "1000", "DEBUG": "true"}


def test_extends_merges_mappings_and_replaces_lists(profiles_dir: Path) -> None:
    write_profile(
        profiles_dir,
        "base",
        MINIMAL + "tags: [a]\nbuild_args: {A: '1', B: '2'}\nlabels: {x: y}\n",
    )
    write_profile(profiles_dir, "app", "extends: base\ntags: [b, c]\nbuild_args: {B: '3'}\n")
    resolved = resolve(profiles_dir)
    assert resolved.profile.tags == ("b", "c")
    assert resolved.profile.build_args == {"A": "1", "B": "3"}
    assert resolved.profile.labels == {"x": "y"}
    assert resolved.sources == (profiles_dir / "app.yaml", profiles_dir / "base.yaml")


def test_context_is_relative_to_the_profile_not_the_cwd(
    tmp_path: Path, profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profile(profiles_dir, "app", MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert resolve(profiles_dir).profile.context == (tmp_path / "ctx").resolve()


def test_misspelt_key_names_file_line_and_suggestion(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "tagz: [x]\n")
    message = error_of(profiles_dir)
    assert "app.yaml:2" in message
    assert "unknown field 'tagz'" in message
    assert "did you mean 'tags'" in message


def test_wrong_type_names_the_field_and_value(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "tags:\n  - ok\n  - [nested]\n")
    message = error_of(profiles_dir)
    assert "app.yaml:4" in message
    assert "field 'tags.1'" in message
    assert '["nested"]' in message


def test_error_in_parent_names_the_parent_file(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", MINIMAL + "platforms: 7\n")
    write_profile(profiles_dir, "app", "extends: base\n")
    assert "base.yaml:2: field 'platforms'" in error_of(profiles_dir)


def test_invalid_yaml_gives_position(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: [unclosed\n")
    message = error_of(profiles_dir)
    assert "app.yaml:2:1: invalid YAML" in message


def test_profile_must_be_a_mapping(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "- a\n- b\n")
    assert "must be a mapping" in error_of(profiles_dir)


def test_unknown_profile_suggests_close_name(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "example", MINIMAL)
    message = error_of(profiles_dir, "exmaple")
    assert "no profile named 'exmaple'" in message
    assert "did you mean 'example'" in message


def test_cyclic_extends_is_refused(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "a", MINIMAL + "extends: b\n")
    write_profile(profiles_dir, "b", "extends: a\n")
    message = error_of(profiles_dir, "a")
    assert "field 'extends': cycle a -> b -> a" in message


def test_missing_context_is_reported(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../nowhere\n")
    message = error_of(profiles_dir)
    assert "app.yaml: field 'context'" in message
    assert "does not exist" in message


def test_missing_dockerfile_is_reported(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "dockerfile: Nope.Dockerfile\n")
    message = error_of(profiles_dir)
    assert "field 'dockerfile'" in message
    assert "Nope.Dockerfile does not exist" in message


def test_missing_required_context(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "tags: [x]\n")
    assert "field 'context' is required" in error_of(profiles_dir)


def test_missing_profiles_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="profiles directory not found"):
        ProfileStore(tmp_path / "absent").names()


def test_schema_forbids_unknown_keys_and_requires_nothing() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert "required" not in schema
    assert {"context", "dockerfile", "target", "tags", "build_args", "labels", "platforms"} <= set(
        schema["properties"]
    )


def test_bundled_profiles_are_valid() -> None:
    store = ProfileStore(REPO / "profiles")
    names = store.names()
    assert "example" in names
    for name in names:
        store.resolve(name)
