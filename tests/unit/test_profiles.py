"""Profiles: loading, inheritance and the one-line errors for every kind of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestrator.errors import BadInput, ExitCode
from orchestrator.profiles import ProfileStore, ResolvedProfile, json_schema
from orchestrator.units import parse_size
from tests.conftest import REPO, write_profile

MINIMAL = "context: ../ctx\n"


def resolve(directory: Path, name: str = "app") -> ResolvedProfile:
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
    assert "app.yaml:1: field 'context'" in message
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


# --- where an error is blamed: the file and line that set the exact path (issue 15) ----


def test_bad_nested_value_in_parent_is_blamed_on_the_parent_line(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", MINIMAL + "proxy:\n  port: 99999\n")
    write_profile(profiles_dir, "app", "extends: base\nproxy: {name: mine}\n")
    assert "base.yaml:3: field 'proxy.port'" in error_of(profiles_dir)


def test_bad_nested_value_in_child_is_blamed_on_the_child_line(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", MINIMAL + "proxy:\n  port: 5000\n")
    write_profile(profiles_dir, "app", "extends: base\nproxy:\n  name: mine\n  port: 0\n")
    assert "app.yaml:4: field 'proxy.port'" in error_of(profiles_dir)


@pytest.mark.parametrize(
    ("parent", "child", "blamed"),
    [
        ("build_args:\n  A: 3.10\n", "build_args: {B: x}\n", "base.yaml:3: field 'build_args.A'"),
        ("labels:\n  a: 2024-01-01\n", "labels: {b: x}\n", "base.yaml:3: field 'labels.a'"),
        (
            "secrets:\n  a: {env: X, file: f}\n",
            "secrets: {b: {env: Y}}\n",
            "base.yaml:3: field 'secrets.a'",
        ),
        ("user:\n  name: x\n  uid: 1\n  gid: 1\n", "user: {uid: u}\n", "app.yaml:2: field 'user"),
    ],
)
def test_bad_mapping_entry_is_blamed_on_the_file_that_set_it(
    profiles_dir: Path, parent: str, child: str, blamed: str
) -> None:
    write_profile(profiles_dir, "base", MINIMAL + parent)
    write_profile(profiles_dir, "app", "extends: base\n" + child)
    assert blamed in error_of(profiles_dir)


def test_missing_secret_file_is_blamed_on_the_parent_that_named_it(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", MINIMAL + "secrets:\n  netrc: {file: nope}\n")
    write_profile(profiles_dir, "app", "extends: base\nsecrets:\n  token: {env: TOKEN}\n")
    message = error_of(profiles_dir)
    assert "base.yaml:3: field 'secrets.netrc.file'" in message
    assert "does not exist" in message


@pytest.mark.parametrize(
    ("setting", "blamed"),
    [
        ("secrets:\n  netrc: {file: ../ctx}\n", "app.yaml:3: field 'secrets.netrc.file'"),
        ("ca_bundle: ../ctx\n", "app.yaml:2: field 'ca_bundle'"),
        ("proxy:\n  ca_bundle: ../ctx\n", "app.yaml:3: field 'proxy.ca_bundle'"),
    ],
)
def test_a_directory_named_as_a_file_is_called_a_directory(
    profiles_dir: Path, setting: str, blamed: str
) -> None:
    """Not "does not exist": it does, and is the wrong kind."""
    write_profile(profiles_dir, "app", MINIMAL + setting)
    message = error_of(profiles_dir)
    assert message.startswith(f"{profiles_dir}/{blamed}: file ")
    assert message.endswith("ctx is a directory, not a file")


def test_secret_redefined_by_the_child_is_blamed_on_the_child(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", MINIMAL + "secrets:\n  netrc: {env: NETRC}\n")
    write_profile(profiles_dir, "app", "extends: base\nsecrets:\n  netrc: {file: nope}\n")
    assert "app.yaml:3: field 'secrets.netrc.file'" in error_of(profiles_dir)


def test_missing_context_set_in_parent_names_the_parent_line(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", "description: d\ncontext: ../nowhere\n")
    write_profile(profiles_dir, "app", "extends: base\ntags: [x]\n")
    assert "base.yaml:2: field 'context': directory" in error_of(profiles_dir)


def test_unknown_parent_is_blamed_on_the_extends_line(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "extends: bsae\n")
    write_profile(profiles_dir, "base", MINIMAL)
    message = error_of(profiles_dir)
    assert "app.yaml:2: field 'extends': no profile named 'bsae'" in message
    assert "did you mean 'base'" in message


# --- validation before any side effect (issue 15) -----------------------------------------


@pytest.mark.parametrize("field", ["name", "cache_volume"])
@pytest.mark.parametrize("value", ["-lead", "a b", "a/b", "a:b", "ü", '""', '"\\0"'])
def test_container_and_volume_names_follow_dockers_rule(
    profiles_dir: Path, field: str, value: str
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  {field}: {value}\n")
    assert f"app.yaml:3: field 'proxy.{field}': use letters, digits" in error_of(profiles_dir)


@pytest.mark.parametrize("value", ['""', "a/b", '"a b"', '"a\\tb"', '"\\0"'])
def test_network_names_refuse_what_docker_refuses(profiles_dir: Path, value: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  network: {value}\n")
    assert "app.yaml:3: field 'proxy.network'" in error_of(profiles_dir)


@pytest.mark.parametrize("value", ['""', '"a b"', "-pip", "pip.", "pip/x", "ü"])
def test_health_project_is_a_project_name(profiles_dir: Path, value: str) -> None:
    """An empty name would ask the index's root, which answers, or a page none has."""
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  health_project: {value}\n")
    expected = "app.yaml:3: field 'proxy.health_project': give a project name such as pip"
    assert expected in error_of(profiles_dir)


@pytest.mark.parametrize(
    "setting",
    [
        f"proxy: {{health_project: '-{'x' * 100}'}}",
        f"tags: ['{'X' * 300}']",
        f"tags: ['{'X' * 300}']\nproxy: {{health_project: ''}}",
    ],
)
def test_a_long_value_is_cut_to_keep_the_line_under_200(
    profiles_dir: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """The value shown gives way to the words that say what to do."""
    write_profile(profiles_dir, "app", MINIMAL + setting + "\n")
    monkeypatch.chdir(profiles_dir.parent)
    message = error_of(profiles_dir)
    assert len("orchestrate: error: " + message) < 200, message
    assert "...)" in message, "the value is cut, the rest of the line kept"


@pytest.mark.parametrize("value", ["pip", "zope.interface", "typing_extensions", "A-1", "x"])
def test_health_project_takes_pep_508_names(profiles_dir: Path, value: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  health_project: {value}\n")
    assert resolve(profiles_dir).profile.proxy.health_project == value


@pytest.mark.parametrize("value", ["bridge", "host", "none"])
def test_the_proxy_network_is_not_one_of_dockers_own(profiles_dir: Path, value: str) -> None:
    """Container names resolve only on a user-defined network; on host or none a
    container joins no other."""
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  network: {value}\n")
    message = error_of(profiles_dir)
    assert "app.yaml:3: field 'proxy.network': Docker's own networks" in message
    assert "give a user-defined network's name" in message


def test_docker_names_docker_accepts_are_accepted(profiles_dir: Path) -> None:
    proxy = "proxy: {name: Proxy_1.a-b, cache_volume: 0cache, network: jenkins_ci-shared.1}\n"
    write_profile(profiles_dir, "app", MINIMAL + proxy)
    settings = resolve(profiles_dir).profile.proxy
    assert (settings.name, settings.cache_volume) == ("Proxy_1.a-b", "0cache")
    assert settings.network == "jenkins_ci-shared.1"


@pytest.mark.parametrize("field", ["image", "base_image"])
@pytest.mark.parametrize("value", ['""', '"a b"', '"a\\0"'])
def test_image_references_must_be_one_word(profiles_dir: Path, field: str, value: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  {field}: {value}\n")
    assert f"app.yaml:3: field 'proxy.{field}'" in error_of(profiles_dir)


@pytest.mark.parametrize("value", ["localhost", "127.0.0.256", '"[::1]"', "0.0.0.0:5000"])
def test_bind_must_be_an_ip_address(profiles_dir: Path, value: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  bind: {value}\n")
    assert "app.yaml:3: field 'proxy.bind': give an IP address" in error_of(profiles_dir)


@pytest.mark.parametrize(
    ("value", "bind"),
    [
        ("0.0.0.0", "0.0.0.0"),
        ('"::"', "::"),
        ("::1", "::1"),
        ('""', ""),
        ("192.168.1.10", "192.168.1.10"),
    ],
)
def test_bind_accepts_ipv4_ipv6_or_empty(profiles_dir: Path, value: str, bind: str) -> None:
    """Accepted as written: it is what the proxy's port is published on."""
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  bind: {value}\n")
    assert resolve(profiles_dir).profile.proxy.bind == bind


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("index: pypi.org/simple/", "proxy.index"),
        ("index: ftp://mirror.example/simple/", "proxy.index"),
        ("url: https:///simple/", "proxy.url"),
        ("url: http://proxy.example:99999/", "proxy.url"),
        ('url: "http://proxy example/"', "proxy.url"),
        ("extra_indexes: [https://ok.example/simple/, private/simple]", "proxy.extra_indexes.1"),
    ],
)
def test_index_urls_must_be_http_urls_with_a_host(
    profiles_dir: Path, setting: str, field: str
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  {setting}\n")
    message = error_of(profiles_dir)
    assert f"app.yaml:3: field '{field}': give an http(s) URL" in message


def test_index_urls_that_are_fine_are_kept(profiles_dir: Path) -> None:
    proxy = (
        "proxy:\n  index: http://localhost:3141/root/pypi/+simple/\n"
        "  url: https://user:pw@[::1]:8080/index/\n  extra_indexes: [HTTPS://x.example/s/]\n"
    )
    write_profile(profiles_dir, "app", MINIMAL + proxy)
    settings = resolve(profiles_dir).profile.proxy
    assert settings.index == "http://localhost:3141/root/pypi/+simple/"
    assert settings.url == "https://user:pw@[::1]:8080/index/"


def test_bad_url_is_shown_without_its_credentials(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "proxy: {url: 'ftp://me:s3cret@host/'}\n")
    assert "s3cret" not in error_of(profiles_dir)


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ('proxy: {name: "\\0"}', "proxy.name"),
        ('proxy: {network: "\\0"}', "proxy.network"),
        ('proxy: {cache_volume: "\\0"}', "proxy.cache_volume"),
        ('proxy: {ca_bundle: "\\0"}', "proxy.ca_bundle"),
        ('proxy: {health_project: "\\0"}', "proxy.health_project"),
        ('ca_bundle: "a\\0"', "ca_bundle"),
        ('dockerfile: "a\\0"', "dockerfile"),
        ('secrets: {x: {file: "~\\0"}}', "secrets.x.file"),
        ('secrets: {x: {env: "\\0"}}', "secrets.x.env"),
        ('tags: ["\\0"]', "tags.0"),
        ('build_args: {A: "\\0"}', "build_args.A"),
        ('labels: {"\\0": x}', "labels"),
        ('extends: "\\0"', "extends"),
    ],
)
def test_nul_gives_one_line_naming_the_field(profiles_dir: Path, setting: str, field: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + setting + "\n")
    message = error_of(profiles_dir)
    assert f"app.yaml:2: field '{field}" in message
    assert "\x00" not in message


def test_nul_in_context_gives_one_line(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", 'context: "../ctx\\0"\n')
    assert "app.yaml:1: field 'context': contains a NUL character" in error_of(profiles_dir)


def test_raw_nul_byte_in_the_file_gives_one_line(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "tags: [a\x00]\n")
    assert "app.yaml:2: invalid YAML: character #x0000" in error_of(profiles_dir)


def test_duplicate_top_level_key_names_both_lines(profiles_dir: Path) -> None:
    text = MINIMAL + "description: d\ntags: [a]\nssh: false\n\n\ntags: [b]\n"
    write_profile(profiles_dir, "app", text)
    message = error_of(profiles_dir)
    assert message.endswith("app.yaml:7: duplicate key 'tags' (first at line 3): keep one")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy:\n  port: 1\n  port: 2\n", "app.yaml:4: duplicate key 'port' (first at line 3)"),
        ("build_args: {A: '1', A: '2'}\n", "app.yaml:2: duplicate key 'A' (first at line 2)"),
        (
            "secrets:\n  s:\n    env: A\n    env: B\n",
            "app.yaml:5: duplicate key 'env' (first at line 4)",
        ),
    ],
)
def test_duplicate_nested_key_names_both_lines(
    profiles_dir: Path, text: str, expected: str
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + text)
    assert expected in error_of(profiles_dir)


def test_duplicate_key_in_a_parent_names_the_parent(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", MINIMAL + "labels:\n  a: x\n  a: y\n")
    write_profile(profiles_dir, "app", "extends: base\n")
    assert "base.yaml:4: duplicate key 'a' (first at line 3)" in error_of(profiles_dir)


def test_yaml_merge_keys_may_still_be_overridden(profiles_dir: Path) -> None:
    text = MINIMAL + "labels: &common {A: '1', B: '2'}\nbuild_args:\n  <<: *common\n  A: '3'\n"
    write_profile(profiles_dir, "app", text)
    assert resolve(profiles_dir).profile.build_args == {"A": "3", "B": "2"}


# --- pydantic's errors in the YAML's words (issue 21, item 6) ---------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("user: 5", "field 'user': give host, off, or {name, uid, gid} (got 5)"),
        ('user: "bogus"', "field 'user': give host, off, or {name, uid, gid}"),
        ("ca_bundle: 5", "field 'ca_bundle': give auto, off, or a path (got 5)"),
        ("proxy: {ca_bundle: [1]}", "field 'proxy.ca_bundle': give auto, off, or a path"),
        ("proxy: 5", "field 'proxy': give auto, require, off, or a mapping"),
        ("secrets: {x: {file: 5}}", "field 'secrets.x.file': give a path (got 5)"),
    ],
)
def test_a_value_of_no_accepted_form_is_told_every_form(
    profiles_dir: Path, setting: str, expected: str
) -> None:
    """Not one union member's complaint, nor its tag (``literal['host','off']``)."""
    write_profile(profiles_dir, "app", MINIMAL + setting + "\n")
    message = error_of(profiles_dir)
    assert f"app.yaml:2: {expected}" in message
    assert "more error" not in message


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("user: {name: a, uid: x, gid: 1}", "field 'user.uid': give a whole number (got \"x\")"),
        ("user: {name: a}", "field 'user.uid' is required but not set here or in any parent"),
        ("user: {name: a, uid: 1, gid: 1, nmae: b}", "unknown field 'user.nmae'"),
    ],
)
def test_a_mapping_is_checked_as_the_form_that_takes_one(
    profiles_dir: Path, setting: str, expected: str
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + setting + "\n")
    assert f"app.yaml:2: {expected}" in error_of(profiles_dir)


def test_an_unknown_key_of_a_mapping_form_is_matched_against_that_form(
    profiles_dir: Path,
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "user: {name: a, uid: 1, gid: 1, gdi: 2}\n")
    assert "unknown field 'user.gdi' (did you mean 'gid'?)" in error_of(profiles_dir)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("proxy: {port: x}", "field 'proxy.port': give a whole number"),
        ("proxy: {port: 0}", "field 'proxy.port': give at least 1 (got 0)"),
        ("proxy: {port: 70000}", "field 'proxy.port': give at most 65535"),
        ("proxy: {download_timeout: 0}", "field 'proxy.download_timeout': give more than 0"),
        ("proxy: {startup_timeout: x}", "field 'proxy.startup_timeout': give a number"),
        ("proxy: {mode: bogus}", "field 'proxy.mode': give auto, require or off"),
        ("progress: 5", "field 'progress': give auto, plain, tty or quiet"),
        ("description: [a]", "field 'description': give a string"),
        ("secrets: [a]", "field 'secrets': give a mapping"),
        ("platforms: a", "field 'platforms': give a list"),
        ("build_args: {5: x}", "field 'build_args.5': a key must be a string: put it in quotes"),
    ],
)
def test_type_errors_say_what_to_give(profiles_dir: Path, setting: str, expected: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + setting + "\n")
    message = error_of(profiles_dir)
    assert f"app.yaml:2: {expected}" in message
    assert "Input should" not in message


@pytest.mark.parametrize("setting", ["ssh", "proxy.bridge"])
@pytest.mark.parametrize("value", ['"yes"', '"true"', "1", "0", '"off"'])
def test_switches_take_yaml_booleans_only(profiles_dir: Path, setting: str, value: str) -> None:
    """pydantic would read "yes" or 1 as true; a quoted "false" would be a surprise."""
    parent, _, name = setting.rpartition(".")
    text = f"{parent}: {{{name}: {value}}}" if parent else f"{name}: {value}"
    write_profile(profiles_dir, "app", MINIMAL + text + "\n")
    assert f"app.yaml:2: field '{setting}': give true or false" in error_of(profiles_dir)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("yes", True), ("false", False)])
def test_switches_take_what_yaml_reads_as_a_boolean(
    profiles_dir: Path, value: str, expected: bool
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"ssh: {value}\nproxy: {{bridge: {value}}}\n")
    profile = resolve(profiles_dir).profile
    assert (profile.ssh, profile.proxy.bridge) == (expected, expected)


@pytest.mark.parametrize(
    "tag",
    ["UPPER:Tag!", "App", "a:", ":1", "a-", "a//b", "a:b:c", "a:é", "-a", "a@sha256:abc", ""],
)
def test_tags_are_image_references(profiles_dir: Path, tag: str) -> None:
    """The engine would refuse them only once the build is done (exit 4)."""
    write_profile(profiles_dir, "app", MINIMAL + f"tags: [ok, {json.dumps(tag)}]\n")
    message = error_of(profiles_dir)
    assert "app.yaml:2: field 'tags.1': give [HOST[:PORT]/]NAME[:TAG], NAME in lowercase" in message


@pytest.mark.parametrize(
    "tag",
    [
        "app",
        "app:1.0",
        "demo/app:Latest_1.2-rc",
        "a__b.c-d---e/f_g",
        "Registry.Example.com:5000/team/api:ci",
        "localhost:5000/api",
        "[::1]:5000/api:1",
        f"api:1@sha256:{'0' * 64}",
        "a:" + "x" * 128,
    ],
)
def test_image_references_the_grammar_allows_are_kept(profiles_dir: Path, tag: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"tags: [{json.dumps(tag)}]\n")
    assert resolve(profiles_dir).profile.tags == (tag,)


def test_a_tag_of_more_than_128_characters_is_refused(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"tags: [a:{'x' * 129}]\n")
    assert "field 'tags.0'" in error_of(profiles_dir)


@pytest.mark.parametrize("value", ["20G", "500M", "2GiB", "10k", "1.5g", "0", "1048576"])
def test_cache_size_takes_what_prune_max_size_takes(profiles_dir: Path, value: str) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy: {{cache_size: {value!r}}}\n")
    assert resolve(profiles_dir).profile.proxy.cache_size == parse_size(value)


def test_cache_size_still_takes_a_number_of_bytes(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", MINIMAL + "proxy: {cache_size: 1073741824}\n")
    assert resolve(profiles_dir).profile.proxy.cache_size == 1024**3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20X", "give bytes or a size such as 500M or 20G"),
        ('"-5M"', "give bytes or a size such as 500M or 20G"),
        ("-5", "give at least 0"),
        ("1.5", "give a whole number"),
    ],
)
def test_cache_size_refuses_what_is_not_a_size(
    profiles_dir: Path, value: str, expected: str
) -> None:
    write_profile(profiles_dir, "app", MINIMAL + f"proxy:\n  cache_size: {value}\n")
    assert f"app.yaml:3: field 'proxy.cache_size': {expected}" in error_of(profiles_dir)


def test_the_schema_takes_a_size_with_a_unit_for_cache_size() -> None:
    size = json_schema()["$defs"]["ProxySettings"]["properties"]["cache_size"]
    kinds = {variant["type"]: variant for variant in size["anyOf"]}
    assert kinds["integer"]["minimum"] == 0
    assert re.match(kinds["string"]["pattern"], "20G")
