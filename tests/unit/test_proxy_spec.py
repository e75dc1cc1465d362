"""The proxy planned as data: proxpi's environment, the container spec and its image build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import dockerfile
from orchestrator.errors import BadInput
from orchestrator.profiles import ProfileStore, ProxySettings
from orchestrator.proxy.image import build_image_argv
from orchestrator.proxy.spec import (
    CA_TARGET,
    CACHE_DIR,
    CONFIG_LABEL,
    CONTAINER_PORT,
    LOCAL_IMAGE,
    OWNER,
    OWNER_LABEL,
    PROFILE_LABEL,
    container_spec,
    proxpi_env,
)
from tests.conftest import write_profile

IMAGE = "epicwink/proxpi:v1.3.1"


def settings(**changes: Any) -> ProxySettings:
    """Proxy settings that do not depend on the host's CA bundle."""
    return ProxySettings(**{"ca_bundle": "off", **changes})


def option_values(argv: tuple[str, ...], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == option]


# --- proxpi_env ---------------------------------------------------------------------------


def test_proxpi_env_keeps_its_cache_on_the_volume() -> None:
    env = proxpi_env(settings(), with_ca=False)
    assert env["PROXPI_CACHE_DIR"] == CACHE_DIR
    assert env["PROXPI_CACHE_SIZE"] == str(20 * 1024**3)


def test_proxpi_env_waits_long_for_cold_files() -> None:
    env = proxpi_env(settings(), with_ca=False)
    assert float(env["PROXPI_DOWNLOAD_TIMEOUT"]) >= 60


def test_proxpi_env_download_timeout_follows_the_setting() -> None:
    env = proxpi_env(settings(download_timeout=120), with_ca=False)
    assert float(env["PROXPI_DOWNLOAD_TIMEOUT"]) == 120


def test_proxpi_env_mirrors_the_configured_index() -> None:
    env = proxpi_env(settings(index="https://mirror.example/simple/", index_ttl=60), with_ca=False)
    assert env["PROXPI_INDEX_URL"] == "https://mirror.example/simple/"
    assert env["PROXPI_INDEX_TTL"] == "60"


def test_proxpi_env_without_extra_indexes_sets_none() -> None:
    env = proxpi_env(settings(), with_ca=False)
    assert "PROXPI_EXTRA_INDEX_URLS" not in env
    assert "PROXPI_EXTRA_INDEX_TTLS" not in env


@pytest.mark.parametrize("count", [1, 3])
def test_proxpi_env_extra_indexes_have_one_ttl_each(count: int) -> None:
    urls = tuple(f"https://private{i}.example/simple/" for i in range(count))
    env = proxpi_env(settings(extra_indexes=urls, extra_index_ttl=42), with_ca=False)
    assert env["PROXPI_EXTRA_INDEX_URLS"].split(",") == list(urls)
    assert env["PROXPI_EXTRA_INDEX_TTLS"].split(",") == ["42"] * count


def test_proxpi_env_trusts_the_ca_only_when_given() -> None:
    assert "REQUESTS_CA_BUNDLE" not in proxpi_env(settings(), with_ca=False)
    assert proxpi_env(settings(), with_ca=True)["REQUESTS_CA_BUNDLE"] == CA_TARGET


# --- container_spec -----------------------------------------------------------------------


def test_container_spec_publishes_on_loopback_by_default() -> None:
    spec = container_spec(settings(), IMAGE)
    assert spec.publish == (("127.0.0.1:5000", CONTAINER_PORT),)


def test_container_spec_publishes_on_the_configured_bind_and_port() -> None:
    spec = container_spec(settings(bind="0.0.0.0", port=6000), IMAGE)
    assert spec.publish == (("0.0.0.0:6000", CONTAINER_PORT),)


def test_container_spec_names_image_network_and_volume() -> None:
    spec = container_spec(settings(name="p", network="n", cache_volume="v"), "img:1")
    assert (spec.name, spec.image, spec.network) == ("p", "img:1", "n")
    assert spec.volumes == (("v", CACHE_DIR, "rw"),)
    assert spec.envs == proxpi_env(settings(), with_ca=False)


def test_container_spec_mounts_the_ca_read_only(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x\n")
    spec = container_spec(settings(ca_bundle=bundle), IMAGE)
    assert (str(bundle), CA_TARGET, "ro") in spec.volumes
    assert spec.envs["REQUESTS_CA_BUNDLE"] == CA_TARGET


def test_digest_is_stable_for_equal_settings() -> None:
    first = container_spec(settings(), IMAGE).digest()
    assert first == container_spec(settings(), IMAGE).digest()
    assert len(first) == 16
    int(first, 16)  # hex


@pytest.mark.parametrize(
    "change",
    [
        {"port": 6000},
        {"bind": "0.0.0.0"},
        {"name": "other"},
        {"network": "other"},
        {"cache_volume": "other"},
        {"cache_size": 1024},
        {"index": "https://mirror.example/simple/"},
        {"index_ttl": 60},
        {"extra_indexes": ("https://private.example/simple/",)},
        {"download_timeout": 120},
    ],
)
def test_digest_changes_with_a_container_setting(change: dict[str, Any]) -> None:
    base = container_spec(settings(), IMAGE).digest()
    assert container_spec(settings(**change), IMAGE).digest() != base


def test_digest_follows_the_configured_image_not_the_resolved_one() -> None:
    # A locally built stand-in for the configured image matches the same settings...
    assert container_spec(settings(), "a:1").digest() == container_spec(settings(), "a:2").digest()
    # ...while configuring another image is a change of settings.
    other = settings(image="example/proxpi:2")
    assert container_spec(other, "a:1").digest() != container_spec(settings(), "a:1").digest()


@pytest.mark.parametrize(
    "change",
    [
        {"health_project": "requests"},
        {"startup_timeout": 99},
        {"mode": "require"},
        {"base_image": "python:3.13-slim"},
    ],
)
def test_digest_ignores_settings_the_container_does_not_see(change: dict[str, Any]) -> None:
    base = container_spec(settings(), IMAGE).digest()
    assert container_spec(settings(**change), IMAGE).digest() == base


def test_labels_carry_owner_and_config_digest() -> None:
    spec = container_spec(settings(), IMAGE)
    assert spec.labels("web") == {
        OWNER_LABEL: OWNER,
        CONFIG_LABEL: spec.digest(),
        PROFILE_LABEL: "web",
    }


# --- build_image_argv ---------------------------------------------------------------------


def test_build_image_argv_passes_the_ca_as_a_secret(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    argv = build_image_argv("python:3.12-slim", bundle)
    assert option_values(argv, "--secret") == [f"id=ca_bundle,src={bundle}"]
    assert not any(str(bundle) in value for value in option_values(argv, "--build-arg"))


def test_build_image_argv_without_ca_has_no_secret() -> None:
    argv = build_image_argv("python:3.12-slim", None)
    assert "--secret" not in argv


def test_build_image_argv_shape() -> None:
    argv = build_image_argv("registry.example/python:3.12", None)
    assert argv[:3] == ("docker", "buildx", "build")
    assert "BASE_IMAGE=registry.example/python:3.12" in option_values(argv, "--build-arg")
    assert option_values(argv, "--tag") == [LOCAL_IMAGE]
    assert option_values(argv, "--label") == [f"{OWNER_LABEL}={OWNER}"]
    assert "--load" in argv
    (file,) = option_values(argv, "--file")
    assert Path(file).parent == Path(argv[-1])
    assert Path(file).is_file()


def test_bundled_proxy_dockerfile_uses_what_the_argv_passes() -> None:
    (file,) = option_values(build_image_argv("python:3.12-slim", None), "--file")
    parsed = dockerfile.parse(Path(file))
    assert {"BASE_IMAGE", "PROXPI_VERSION"} <= parsed.args
    assert any("--mount=type=secret,id=ca_bundle" in run.flags for run in parsed.runs)


# --- host_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:5000/index/"),
        ("0.0.0.0", "http://127.0.0.1:5000/index/"),
        ("::", "http://[::1]:5000/index/"),
        ("::1", "http://[::1]:5000/index/"),
        ("192.168.1.10", "http://192.168.1.10:5000/index/"),
    ],
)
def test_host_url_for_bind(bind: str, url: str) -> None:
    assert settings(bind=bind).host_url == url


def test_host_url_of_an_external_proxy_is_its_url() -> None:
    assert settings(url="https://proxy.example/simple/").host_url == "https://proxy.example/simple/"


# --- profile shorthands -------------------------------------------------------------------


def proxy_of(directory: Path, name: str = "app") -> ProxySettings:
    return ProfileStore(directory).resolve(name).profile.proxy


def test_proxy_off_shorthand(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nproxy: off\n")
    assert proxy_of(profiles_dir).mode == "off"


def test_proxy_require_shorthand(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nproxy: require\n")
    assert proxy_of(profiles_dir).mode == "require"


def test_proxy_ca_bundle_off_is_the_word_off(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nproxy: {ca_bundle: off}\n")
    found = proxy_of(profiles_dir)
    assert found.ca_bundle == "off"
    assert found.ca_bundle_path(Path("/host/ca.pem")) is None


def test_unknown_proxy_mode_is_bad_input(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nproxy: sometimes\n")
    with pytest.raises(BadInput, match=r"app\.yaml:2: field 'proxy\.mode'"):
        proxy_of(profiles_dir)


@pytest.mark.parametrize(("shorthand", "mode"), [("require", "require"), ("off", "off")])
def test_child_shorthand_keeps_the_parent_proxy_settings(
    profiles_dir: Path, shorthand: str, mode: str
) -> None:
    write_profile(profiles_dir, "base", "context: ../ctx\nproxy: {port: 6000}\n")
    write_profile(profiles_dir, "app", f"extends: base\nproxy: {shorthand}\n")
    found = proxy_of(profiles_dir)
    assert found.mode == mode
    assert found.port == 6000


def test_parent_shorthand_is_merged_with_child_settings(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "base", "context: ../ctx\nproxy: require\n")
    write_profile(profiles_dir, "app", "extends: base\nproxy: {port: 6000}\n")
    found = proxy_of(profiles_dir)
    assert (found.mode, found.port) == ("require", 6000)


def test_bridge_publishing_is_off_by_default_and_adds_the_gateway_when_on() -> None:
    assert len(container_spec(ProxySettings(), "img", bridge_gateway="172.17.0.1").publish) == 1
    spec = container_spec(ProxySettings(bridge=True), "img", bridge_gateway="172.17.0.1")
    assert spec.publish == (("127.0.0.1:5000", CONTAINER_PORT), ("172.17.0.1:5000", CONTAINER_PORT))
