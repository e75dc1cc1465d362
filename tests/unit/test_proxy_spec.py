"""The proxy planned as data: proxpi's environment, the container spec and its image build."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator import dockerfile
from orchestrator.errors import BadInput
from orchestrator.profiles import ProfileStore, ProxySettings, Secret
from orchestrator.proxy import spec as spec_module
from orchestrator.proxy.front import (
    CONF_VARIABLE,
    FETCHER_PORT,
    FRONT_DIR,
    SYSTEM_CERTIFICATES,
    FrontConfig,
    nginx_conf,
    start_command,
)
from orchestrator.proxy.image import build_image_argv, recipes
from orchestrator.proxy.spec import (
    CA_TARGET,
    CACHE_DIR,
    CONFIG_LABEL,
    CONTAINER_PORT,
    LOCAL_FRONT_IMAGE,
    LOCAL_IMAGE,
    OWNER,
    OWNER_LABEL,
    PROFILE_LABEL,
    ROLE_LABEL,
    proxpi_env,
    proxy_spec,
    spec_digest,
    streams_files,
)
from tests.conftest import write_profile

IMAGE = "epicwink/proxpi:v1.3.1"


def settings(**changes: Any) -> ProxySettings:
    """Proxy settings that do not depend on the host's CA bundle."""
    return ProxySettings(**{"ca_bundle": "off", **changes})


def option_values(argv: tuple[str, ...], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == option]


# --- proxpi_env ---------------------------------------------------------------------------


def test_proxpi_keeps_no_files_where_the_front_fetches_them() -> None:
    """Size 0: proxpi redirects each file to the upstream's URL at once, and the front's
    fetcher follows it, streaming (issue 22)."""
    env = proxpi_env(settings(), with_ca=False)
    assert env["PROXPI_CACHE_DIR"] == CACHE_DIR
    assert env["PROXPI_CACHE_SIZE"] == "0"


def test_proxpi_keeps_its_files_where_the_upstream_needs_credentials() -> None:
    """The URL proxpi would redirect to carries them: nginx cannot follow it."""
    authed = settings(credentials=Secret(env="REPO_AUTH"))
    assert not streams_files(authed)
    assert proxpi_env(authed, with_ca=False)["PROXPI_CACHE_SIZE"] == str(20 * 1024**3)
    spec = proxy_spec(authed, image=IMAGE)
    assert "proxy_pass $proxpi;\n    }\n    location /index/" in spec.front.envs[CONF_VARIABLE]


def test_the_front_fetches_files_through_its_own_fetcher() -> None:
    conf = proxy_spec(settings(), image=IMAGE).front.envs[CONF_VARIABLE]
    files = conf.split('location ~ "^/index/[^/]+/[^/]+$" {', 1)[1].split("}", 1)[0]
    assert f"proxy_pass http://127.0.0.1:{FETCHER_PORT};" in files
    assert f"listen 127.0.0.1:{FETCHER_PORT};" in conf
    assert f"proxy_ssl_trusted_certificate {SYSTEM_CERTIFICATES};" in conf


def test_the_fetcher_trusts_the_ca_bundle_proxpi_is_given(tmp_path: Path) -> None:
    """A network that intercepts TLS intercepts the front's fetches too."""
    bundle = tmp_path / "ca.pem"
    spec = proxy_spec(settings(ca_bundle=str(bundle)), image=IMAGE)
    assert (str(bundle), CA_TARGET, "ro") in spec.front.volumes
    assert f"proxy_ssl_trusted_certificate {CA_TARGET};" in spec.front.envs[CONF_VARIABLE]


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


# --- proxy_spec: the front and proxpi -------------------------------------------------------


def test_only_the_front_publishes_and_on_loopback_by_default() -> None:
    spec = proxy_spec(settings(), image=IMAGE)
    assert spec.front.publish == (("127.0.0.1:5000", CONTAINER_PORT),)
    assert spec.backend.publish == ()


def test_the_front_publishes_on_the_configured_bind_and_port() -> None:
    spec = proxy_spec(settings(bind="0.0.0.0", port=6000), image=IMAGE)
    assert spec.front.publish == (("0.0.0.0:6000", CONTAINER_PORT),)


def test_names_images_networks_and_volumes() -> None:
    spec = proxy_spec(settings(name="px", network="nw", cache_volume="vol"), image="img:1")
    assert (spec.front.name, spec.front.network) == ("px", "nw")
    assert (spec.backend.name, spec.backend.image, spec.backend.network) == (
        "px-backend",
        "img:1",
        "nw",
    )
    assert spec.backend.volumes == (("vol", CACHE_DIR, "rw"),)
    assert spec.front.volumes == (("vol-front", FRONT_DIR, "rw"),)
    assert spec.backend.envs == proxpi_env(settings(), with_ca=False)
    assert spec.containers == (spec.backend, spec.front)  # proxpi first: the front names it


def test_the_ca_is_mounted_read_only_into_proxpi(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x\n")
    spec = proxy_spec(settings(ca_bundle=bundle), image=IMAGE)
    assert (str(bundle), CA_TARGET, "ro") in spec.backend.volumes
    assert spec.backend.envs["REQUESTS_CA_BUNDLE"] == CA_TARGET


def test_the_host_ca_bundle_is_a_fact(tmp_path: Path) -> None:
    bundle = tmp_path / "host.pem"
    spec = proxy_spec(settings(ca_bundle="auto"), image=IMAGE, host_ca_bundle=bundle)
    assert (str(bundle), CA_TARGET, "ro") in spec.backend.volumes


def test_digest_is_stable_for_equal_settings() -> None:
    first = proxy_spec(settings(), image=IMAGE).digest
    assert first == proxy_spec(settings(), image=IMAGE).digest
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
        {"front_image": "nginx:1.26"},
    ],
)
def test_digest_changes_with_a_container_setting(change: dict[str, Any]) -> None:
    base = proxy_spec(settings(), image=IMAGE).digest
    assert proxy_spec(settings(**change), image=IMAGE).digest != base


def test_digest_follows_the_configured_image_not_the_resolved_one() -> None:
    # A locally built stand-in for the configured image matches the same settings...
    first = proxy_spec(settings(), image="a:1", front_image="f:1").digest
    assert first == proxy_spec(settings(), image="a:2", front_image="f:2").digest
    # ...while configuring another image is a change of settings.
    other = settings(image="example/proxpi:2")
    assert proxy_spec(other, image="a:1").digest != proxy_spec(settings(), image="a:1").digest


@pytest.mark.parametrize(
    "change",
    [
        {"health_project": "requests"},
        {"startup_timeout": 99},
        {"mode": "require"},
        {"base_image": "python:3.13-slim"},
    ],
)
def test_digest_ignores_settings_the_containers_do_not_see(change: dict[str, Any]) -> None:
    base = proxy_spec(settings(), image=IMAGE).digest
    assert proxy_spec(settings(**change), image=IMAGE).digest == base


def test_labels_carry_owner_digest_profile_and_role() -> None:
    spec = proxy_spec(settings(), image=IMAGE)
    assert spec.labels(spec.front, "web") == {
        OWNER_LABEL: OWNER,
        CONFIG_LABEL: spec.digest,
        PROFILE_LABEL: "web",
        ROLE_LABEL: "front",
    }


def test_the_front_answers_its_digest_and_reaches_proxpi_by_name() -> None:
    spec = proxy_spec(settings(name="px"), image=IMAGE)
    conf = spec.front.envs[CONF_VARIABLE]
    assert f'"digest": "{spec.digest}"' in conf
    assert "set $proxpi http://px-backend:5000;" in conf
    assert spec.front.command[:2] == ("sh", "-c")


def test_the_front_stops_at_once_on_the_nginx_images_stop_signal() -> None:
    script = start_command()[2]
    trap = next(line for line in script.splitlines() if line.startswith("trap "))
    assert trap.split("'")[-1].split() == ["TERM", "INT", "QUIT"]


def test_the_front_resolves_proxpi_when_asked_so_it_starts_without_it() -> None:
    """An upstream{} block resolves its server at start: nginx would not start while proxpi
    is down, which is exactly when the front's cache matters."""
    conf = front_conf()
    assert not re.search(r"^\s*upstream\s", conf, flags=re.MULTILINE)
    assert "resolver 127.0.0.11 valid=10s ipv6=off;" in conf
    assert conf.count("proxy_pass $proxpi;") == 4  # files, pages, backend health, the rest


def test_a_new_front_configuration_is_a_new_digest() -> None:
    """The digest names the containers and the configuration's text: a new template (a
    new orchestrator) is a new digest, which recreates the front."""
    spec = proxy_spec(settings(), image=IMAGE)
    backend = spec.backend
    front = replace(spec.front, envs={})  # as the digest sees it, before the text is set
    conf = nginx_conf(spec_module._front_config(settings(), "", SYSTEM_CERTIFICATES))
    assert spec_digest(backend, front, conf) == spec.digest
    assert spec_digest(backend, front, conf + "# new\n") != spec.digest


# --- the front's nginx configuration ---------------------------------------------------------


def front_conf(**changes: Any) -> str:
    values: dict[str, Any] = {
        "backend": "proxy-backend",
        "backend_port": 5000,
        "cache_bytes": 20 * 1024**3,
        "index_ttl": 1800,
        "download_timeout": 900,
        "digest": "0123456789abcdef",
        "name": "proxy",
        **changes,
    }
    return nginx_conf(FrontConfig(**values))


def block(conf: str, start: str) -> str:
    """The text of the nginx block that opens with ``start``."""
    index = conf.index(start)
    depth = 0
    for position in range(conf.index("{", index), len(conf)):
        depth += {"{": 1, "}": -1}.get(conf[position], 0)
        if depth == 0:
            return conf[index : position + 1]
    raise AssertionError(start)


def test_front_keeps_pages_for_the_index_ttl_and_serves_them_stale() -> None:
    conf = front_conf(index_ttl=60)
    pages = block(conf, "location /index/")
    assert "proxy_cache_valid 200 60s;" in pages
    assert "proxy_cache_background_update on;" in pages
    assert (
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;" in conf
    )
    assert "inactive=3650d" in conf  # an entry outlives any outage


def test_front_keeps_files_for_good_and_fetches_each_once() -> None:
    conf = front_conf(download_timeout=900)
    files = block(conf, 'location ~ "^/index/[^/]+/[^/]+$"')
    assert "proxy_cache_valid 200 3650d;" in files
    assert "proxy_cache_lock on;" in conf
    assert "proxy_cache_lock_timeout 960s;" in conf  # not nginx's 5 s, past which it fetches again
    assert "proxy_cache_lock_age 960s;" in conf
    assert (
        "proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;" in conf
    )  # proxpi's no-cache


def test_front_marks_files_immutable_for_the_installers_own_caches() -> None:
    """proxpi answers files with ``Cache-Control: no-cache``: pip revalidated each one on
    every warm install and rewrote its cached copy on the 304 (0.14-0.20 s per large wheel,
    seen in BuildKit's log on both engines)."""
    conf = front_conf()
    assert "proxy_hide_header Cache-Control;" in conf
    marks = block(conf, 'map "$variant:$status" $file_cache_control')
    assert '"file:200" "max-age=365000000, immutable, public";' in marks
    assert 'default "";' in marks  # pages, redirects, errors: no header
    assert "add_header Cache-Control $file_cache_control;" in conf


def test_front_keys_pages_by_pep691_format_and_asks_proxpi_for_that_format() -> None:
    """Which format each Accept gets: tests/unit/test_front.py."""
    conf = front_conf()
    assert 'proxy_cache_key "$uri|$variant";' in conf
    assert "proxy_set_header Accept $proxpi_accept;" in conf
    assert 'set $args "";' in block(conf, "location /index/")


def test_offline_location_never_reaches_proxpi() -> None:
    offline = block(front_conf(), "location /offline/")
    assert "proxy_pass http://127.0.0.1:9;" in offline
    assert "rewrite ^/offline(/.*)$ $1 break;" in offline
    assert "proxpi" not in offline


def test_offline_never_waits_for_an_online_fill_of_the_same_entry() -> None:
    """With the server's lock, an offline lookup of an entry being filled waited for that
    fill (seen: 5.5 s; up to proxpi's read timeout with the upstream hung)."""
    conf = front_conf()
    assert "proxy_cache_lock on;" in conf  # online: one download per file
    assert "proxy_cache_lock off;" in block(conf, "location /offline/")


def test_offline_answers_404_for_what_is_not_cached_and_logs_it() -> None:
    conf = front_conf()
    offline = block(conf, "location /offline/")
    assert "error_page 502 504 =404 /_orchestrator/not-cached;" in offline
    not_cached = block(conf, "location = /_orchestrator/not-cached")
    assert "internal;" in not_cached
    assert "return 404 " in not_cached
    assert "access_log off" not in not_cached  # the request it answers is logged


def test_the_backend_health_is_proxpi_s_own_which_never_asks_the_upstream() -> None:
    backend = block(front_conf(), "location = /_orchestrator/backend")
    assert "rewrite ^ /health break;" in backend
    assert "proxy_cache off;" in backend
    assert "proxy_connect_timeout 1s;" in backend


def test_front_allows_no_cache_invalidation_from_outside() -> None:
    assert "limit_except GET HEAD { deny all; }" in block(front_conf(), "location / {")


# --- build_image_argv ---------------------------------------------------------------------


PROXPI_RECIPE, FRONT_RECIPE = recipes(ProxySettings(base_image="registry.example/python:3.12"))


def test_build_image_argv_passes_the_ca_as_a_secret(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    argv = build_image_argv(PROXPI_RECIPE, bundle)
    assert option_values(argv, "--secret") == [f"id=ca_bundle,src={bundle}"]
    assert not any(str(bundle) in value for value in option_values(argv, "--build-arg"))


def test_build_image_argv_without_ca_has_no_secret() -> None:
    assert "--secret" not in build_image_argv(PROXPI_RECIPE, None)
    assert "--secret" not in build_image_argv(FRONT_RECIPE, Path("/ca.pem"))  # apt needs none


def test_build_image_argv_shape() -> None:
    argv = build_image_argv(PROXPI_RECIPE, None)
    assert argv[:3] == ("docker", "buildx", "build")
    assert "BASE_IMAGE=registry.example/python:3.12" in option_values(argv, "--build-arg")
    assert option_values(argv, "--tag") == [LOCAL_IMAGE]
    assert option_values(argv, "--label") == [f"{OWNER_LABEL}={OWNER}"]
    assert "--load" in argv
    (file,) = option_values(argv, "--file")
    assert Path(file).parent == Path(argv[-1])
    assert Path(file).is_file()


@pytest.mark.parametrize("recipe", [PROXPI_RECIPE, FRONT_RECIPE])
def test_bundled_dockerfiles_use_what_the_argv_passes(recipe: Any) -> None:
    argv = build_image_argv(recipe, None)
    (file,) = option_values(argv, "--file")
    parsed = dockerfile.parse(Path(file))
    assert {key for key, _ in recipe.build_args} <= parsed.args
    assert option_values(argv, "--tag") == [recipe.local]
    assert {LOCAL_IMAGE, LOCAL_FRONT_IMAGE} >= {recipe.local}
    mounts_ca = any("--mount=type=secret,id=ca_bundle" in run.flags for run in parsed.runs)
    assert mounts_ca is recipe.ca_secret


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
    gateway = "172.17.0.1"
    assert len(proxy_spec(ProxySettings(), bridge_gateway=gateway).front.publish) == 1
    spec = proxy_spec(ProxySettings(bridge=True), bridge_gateway=gateway).front
    assert spec.publish == (("127.0.0.1:5000", CONTAINER_PORT), ("172.17.0.1:5000", CONTAINER_PORT))
