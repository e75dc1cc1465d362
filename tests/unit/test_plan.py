"""Planning: a profile, its Dockerfile and host facts become the exact build to run."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator import dockerfile
from orchestrator.errors import BadInput, ExitCode, ProxyUnavailable
from orchestrator.facts.builder import network_option
from orchestrator.facts.model import BuilderFacts, HostFacts, ProxyFacts
from orchestrator.plan import render
from orchestrator.plan.build import plan_build
from orchestrator.plan.model import BuildOptions, BuildPlan, Decision
from orchestrator.profiles import ProfileStore
from orchestrator.urls import redact
from tests.conftest import write_profile

DOCKERFILE = """\
ARG BASE=python:3.12-slim
FROM ${BASE} AS base
ARG USER_NAME=app
ARG USER_ID=1000
ARG GROUP_ID=1000
RUN groupadd -g ${GROUP_ID} ${USER_NAME} \\
 && useradd -u ${USER_ID} -g ${GROUP_ID} ${USER_NAME}
USER ${USER_NAME}
RUN pip install --user requests
RUN echo hello
FROM base AS test
RUN ["python", "-c", "print(1)"]
"""
ROOT_RUN, PIP_RUN, ECHO_RUN, EXEC_RUN = 6, 9, 10, 12
LOOPBACK_INDEX = "http://127.0.0.1:5000/index/"
HEALTHY = ProxyFacts(healthy=True, reason="served the pip page (200)")
DOWN = ProxyFacts(healthy=False, reason="no proxy container")
PIP_EXPORTS = (
    "PIP_CACHE_DIR=/var/cache/orchestrator/pip "
    "ORCHESTRATE_PIP_LOCK=/var/cache/orchestrator/pip/orchestrator-pip.lock "
    "PYTHONPATH=/opt/orchestrator/python${PYTHONPATH:+:$PYTHONPATH}"
)
OLD = BuilderFacts(buildx_version="0.13.1", buildkit_version="v0.8.2")
NEW = BuilderFacts(
    buildx_version="0.29.1",
    buildkit_version="v0.25.1",
    heredocs=True,
    mount_variables=True,
    secret_env=True,
    bake_network=True,
    bake_fs_entitlements=True,
)
PASSWORD = "s3cret"
CREDENTIAL_URL = f"http://user:{PASSWORD}@proxy.example/simple/"
LOAD = "set -a; . /run/secrets/orchestrator-env; set +a"

MakePlan = Callable[..., BuildPlan]


@pytest.fixture
def make_plan(profiles_dir: Path, tmp_path: Path) -> MakePlan:
    """Write profile 'app' and its Dockerfile, then plan; facts default to a healthy proxy,
    Docker 20.10's builder and host user alice (1234:2345)."""

    def make(
        profile: str = "",
        docker_file: str = DOCKERFILE,
        *,
        ca_bundle: str = "off",
        options: BuildOptions | None = None,
        **facts: object,
    ) -> BuildPlan:
        (profiles_dir.parent / "ctx" / "Dockerfile").write_text(docker_file)
        write_profile(profiles_dir, "app", f"context: ../ctx\nca_bundle: {ca_bundle}\n{profile}")
        resolved = ProfileStore(profiles_dir).resolve("app")
        parsed = dockerfile.parse(resolved.profile.dockerfile_path)
        fields: dict[str, object] = {
            "uid": 1234,
            "gid": 2345,
            "user_name": "alice",
            "proxy": HEALTHY,
            "builder": OLD,
            "render_dir": tmp_path / "rendered",
            "fresh_token": "tok123",
            **facts,
        }
        return plan_build(resolved, parsed, HostFacts(**fields), options)  # type: ignore[arg-type]

    return make


def rendered_line(plan: BuildPlan, start: str) -> str:
    """The one rendered line that contains ``start``."""
    assert plan.rendered_text is not None
    found = [line for line in plan.rendered_text.splitlines() if start in line]
    assert len(found) == 1, found
    return found[0]


def option_values(plan: BuildPlan, option: str) -> list[str]:
    return [plan.argv[i + 1] for i, word in enumerate(plan.argv) if word == option]


def decision(plan: BuildPlan, topic: str) -> Decision:
    (found,) = [d for d in plan.decisions if d.topic == topic]
    return found


def decisions(plan: BuildPlan, topic: str) -> list[str]:
    return [f"{d.choice}: {d.reason}" for d in plan.decisions if d.topic == topic]


def has_host_network(plan: BuildPlan) -> bool:
    return "host" in option_values(plan, "--network")


# --- mode: proxy --------------------------------------------------------------------------


def test_healthy_proxy_gives_proxy_mode(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert plan.mode == "proxy"
    assert decision(plan, "mode").reason == f"the proxy serves: {HEALTHY.reason}"
    assert plan.index_url == LOOPBACK_INDEX


def test_proxy_mode_on_docker_driver_uses_host_network(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert option_values(plan, "--network") == ["host"]
    assert decision(plan, "network").choice == "host"


def test_proxy_mode_build_env_points_only_at_the_proxy(make_plan: MakePlan) -> None:
    env = make_plan().build_env
    assert env["PIP_INDEX_URL"] == LOOPBACK_INDEX
    assert env["UV_DEFAULT_INDEX"] == LOOPBACK_INDEX
    assert env["POETRY_PYPI_MIRROR_URL"] == LOOPBACK_INDEX
    assert env["PIP_TRUSTED_HOST"] == "127.0.0.1"
    assert env["PIP_CONFIG_FILE"] == "/dev/null"
    assert "UV_INDEX_URL" not in env  # uv refuses it together with UV_DEFAULT_INDEX


def test_installers_wait_as_long_as_the_proxy_fetches(make_plan: MakePlan) -> None:
    env = make_plan().build_env
    assert int(env["PIP_DEFAULT_TIMEOUT"]) >= 900
    assert int(env["UV_HTTP_TIMEOUT"]) >= 900


def test_proxy_mode_keeps_the_installers_caches_on(make_plan: MakePlan) -> None:
    """Their caches go to cache mounts, so turning them off would only defeat the
    Dockerfile's own cache mounts (issue 11)."""
    env = make_plan().build_env
    assert "PIP_NO_CACHE_DIR" not in env
    assert "UV_NO_CACHE" not in env


def test_no_extra_index_url_reaches_the_build(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {extra_indexes: ['https://private.example/simple/']}\n")
    settings = " ".join([*plan.build_env, *plan.build_env.values(), plan.rendered_text or ""])
    assert not any("EXTRA_INDEX" in key.upper() for key in plan.build_env)
    for text in (settings, " ".join(plan.argv), *plan.secret_env.values()):
        assert "extra-index-url" not in text.lower()
        assert "private.example" not in text


def test_every_shell_run_loads_the_settings_secret(make_plan: MakePlan) -> None:
    plan = make_plan()
    mount = "--mount=type=secret,id=orchestrator-env,mode=0444"
    for command in ("groupadd", "pip install", "echo hello"):
        line = rendered_line(plan, command)
        assert mount in line
        assert LOAD in line
    assert option_values(plan, "--secret") == [
        "id=orchestrator-pip-lock,src=/nonexistent/sitecustomize.py",
        "id=orchestrator-env,env=ORCHESTRATE_BUILD_ENV",
    ]


def test_secret_env_carries_the_build_env_shell_quoted(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert set(plan.secret_env) == {"ORCHESTRATE_BUILD_ENV"}
    lines = plan.secret_env["ORCHESTRATE_BUILD_ENV"].splitlines()
    assert len(lines) == len(plan.build_env)
    for line in lines:
        key, _, quoted = line.partition("=")
        assert shlex.split(quoted) == [plan.build_env[key]]


def test_bind_on_all_interfaces_is_reached_through_loopback(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {bind: 0.0.0.0, port: 6000}\n")
    assert plan.index_url == "http://127.0.0.1:6000/index/"
    assert has_host_network(plan)


def test_ipv6_wildcard_bind_is_reached_through_ipv6_loopback(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {bind: '::'}\n")
    assert plan.index_url == "http://[::1]:5000/index/"
    assert plan.build_env["PIP_TRUSTED_HOST"] == "[::1]"
    assert has_host_network(plan)


def test_a_proxy_bound_to_a_routable_address_is_reached_there(make_plan: MakePlan) -> None:
    """The shared-proxy recipe: the cache host publishes the proxy on its own address;
    RUN steps on the default network reach it there (it planned http://None/ before)."""
    plan = make_plan("proxy: {bind: 10.251.0.1, port: 5010}\n")
    assert plan.mode == "proxy"
    assert plan.index_url == "http://10.251.0.1:5010/index/"
    assert plan.build_env["PIP_INDEX_URL"] == "http://10.251.0.1:5010/index/"
    assert not has_host_network(plan)
    assert "routable address" in decision(plan, "proxy address").reason


@pytest.mark.parametrize(
    ("bind", "published", "who"),
    [
        ("0.0.0.0", "0.0.0.0:5000", "this host"),
        ("'::'", "[::]:5000", "this host"),
        ("''", "*:5000", "this host"),
        ("10.251.0.1", "10.251.0.1:5000", "10.251.0.1"),
        ("fd00::1", "[fd00::1]:5000", "fd00::1"),
    ],
)
def test_a_proxy_published_beyond_loopback_is_said_to_be(
    make_plan: MakePlan, bind: str, published: str, who: str
) -> None:
    """Accepted, as a team's shared cache needs it, and said: in the plan, whatever the
    mode the proxy leaves the build in (it is the profile's setting)."""
    for proxy in (HEALTHY, DOWN):
        plan = make_plan(f"proxy: {{bind: {bind}}}\n", proxy=proxy)
        assert decisions(plan, "proxy exposure") == [
            f"{published}: every machine that reaches {who} can use (and fill) the proxy's "
            "cache; proxy.bind: 127.0.0.1 keeps it to this machine"
        ]


@pytest.mark.parametrize(
    "profile",
    [
        "",
        "proxy: {bind: '::1'}\n",
        "proxy: {bind: 127.0.0.2}\n",
        "proxy: {bind: 0.0.0.0, mode: off}\n",
        "proxy: {bind: 0.0.0.0, url: 'http://cache.example/simple/'}\n",
    ],
)
def test_a_proxy_kept_to_loopback_off_or_external_says_nothing_of_exposure(
    make_plan: MakePlan, profile: str
) -> None:
    assert decisions(make_plan(profile), "proxy exposure") == []


def test_no_proxy_says_nothing_of_exposure(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {bind: 0.0.0.0}\n", options=BuildOptions(no_proxy=True))
    assert decisions(plan, "proxy exposure") == []


def test_profile_network_default_cannot_reach_a_loopback_proxy(make_plan: MakePlan) -> None:
    plan = make_plan("network: default\n")
    assert not has_host_network(plan)
    assert decision(plan, "network").reason == "set by the profile"
    assert plan.mode == "cache-mount"
    assert "network: default cannot reach" in decision(plan, "mode").reason


# --- mode: offline (issue 12) ------------------------------------------------------------------

OFFLINE = ProxyFacts(healthy=True, reason="served", offline="http://up/simple/ unreachable")


def test_a_dead_upstream_sends_builds_to_the_proxy_s_cache_only(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=OFFLINE)
    assert plan.mode == "offline"
    assert plan.index_url == "http://127.0.0.1:5000/offline/index/"
    assert plan.build_env["PIP_INDEX_URL"] == plan.index_url
    assert "http://up/simple/ unreachable" in decision(plan, "mode").reason


def test_the_plan_says_where_to_read_the_proxy_from_and_why_it_is_offline(
    make_plan: MakePlan,
) -> None:
    offline = make_plan(proxy=OFFLINE)
    assert (offline.outage, offline.proxy_front) == (
        "http://up/simple/ unreachable",
        "http://127.0.0.1:5000/index/",
    )
    assert make_plan().outage is None
    assert make_plan().proxy_front == "http://127.0.0.1:5000/index/"
    assert make_plan(options=BuildOptions(no_proxy=True)).proxy_front is None


def test_offline_keeps_the_rendering_of_the_other_modes(make_plan: MakePlan) -> None:
    assert make_plan(proxy=OFFLINE).rendered_text == make_plan().rendered_text
    assert make_plan(proxy=OFFLINE).argv == make_plan().argv


def test_an_external_proxy_is_never_offline(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {url: 'http://devpi.example/simple/'}\n", proxy=OFFLINE)
    assert plan.mode == "proxy"


def test_uv_lock_copy_points_at_the_offline_cache(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file=UV_GUIDE, context_files={"uv.lock": UV_LOCK}, proxy=OFFLINE)
    (copy,) = plan.files.values()
    assert 'registry = "http://127.0.0.1:5000/offline/index/"' in copy


# --- mode: cache-mount -------------------------------------------------------------------------


def test_unhealthy_proxy_falls_back_to_cache_mounts(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=DOWN)
    assert plan.mode == "cache-mount"
    assert DOWN.reason in decision(plan, "mode").reason
    assert plan.index_url == "https://pypi.org/simple/"


def test_fallback_to_pypi_leaves_the_installers_index_alone(make_plan: MakePlan) -> None:
    """PyPI is every installer's default: saying it again could only break a uv.lock
    that spells it without the trailing slash (issue 11)."""
    plan = make_plan(proxy=DOWN)
    assert not {"PIP_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_CONFIG_FILE"} & set(plan.build_env)
    assert decision(plan, "package index").choice == "installers' own"


def test_uv_copies_from_its_cache_mount_in_every_mode(make_plan: MakePlan) -> None:
    """uv's Docker guide: UV_LINK_MODE=copy where the cache is on another file system,
    the fallback to PyPI included (it set nothing there, so uv warned and fell back)."""
    for facts in ({}, {"proxy": DOWN}, {"proxy": OFFLINE}):
        assert make_plan(**facts).build_env["UV_LINK_MODE"] == "copy"


def test_fallback_to_a_private_upstream_points_installers_there(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {index: 'http://mirror.example/simple/'}\n", proxy=DOWN)
    assert plan.build_env["PIP_INDEX_URL"] == "http://mirror.example/simple/"
    assert plan.build_env["UV_DEFAULT_INDEX"] == "http://mirror.example/simple/"
    # poetry too (it went to PyPI in the fallback: found by the installer tests)
    assert plan.build_env["POETRY_PYPI_MIRROR_URL"] == "http://mirror.example/simple/"
    assert plan.build_env["PIP_TRUSTED_HOST"] == "mirror.example"
    assert "PIP_CONFIG_FILE" not in plan.build_env


def test_unchecked_proxy_falls_back_to_cache_mounts(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=None)
    assert plan.mode == "cache-mount"
    assert "not checked" in decision(plan, "mode").reason


def test_no_proxy_option_forces_cache_mounts(make_plan: MakePlan) -> None:
    plan = make_plan(options=BuildOptions(no_proxy=True))
    assert plan.mode == "cache-mount"
    assert decision(plan, "mode").reason == "--no-proxy forces the fallback"


# --- one rendering, one network in every mode (issue 10) ------------------------------------


def test_switching_modes_changes_no_rendered_text_mount_or_network(make_plan: MakePlan) -> None:
    proxy = make_plan()
    fallback = make_plan(proxy=DOWN)
    forced = make_plan(options=BuildOptions(no_proxy=True))
    assert proxy.mode == "proxy"
    assert fallback.mode == forced.mode == "cache-mount"
    assert proxy.rendered_text == fallback.rendered_text == forced.rendered_text
    assert proxy.rendered_path == fallback.rendered_path
    assert proxy.network == fallback.network == "host"
    assert proxy.argv == fallback.argv  # the mode travels only in the secret's content
    assert proxy.secret_env != fallback.secret_env


def run_steps(plan: BuildPlan) -> list[str]:
    """The rendering's RUN instructions, each on one line (continuations joined)."""
    assert plan.rendered_text is not None
    text = plan.rendered_text.replace("\\\n", " ")
    return [line for line in text.splitlines() if line.lstrip().upper().startswith("RUN")]


def test_a_step_that_must_rerun_when_modes_switch_is_the_plan_s_to_name(
    make_plan: MakePlan,
) -> None:
    """A RUN step rendered differently in two modes has another cache key in each, so it
    re-runs at every switch, and the plan would have to name it. Every step renders alike
    in every mode: none must re-run, and no decision says one does."""
    proxy, fallback = make_plan(), make_plan(proxy=DOWN)
    assert len(run_steps(proxy)) == 4  # every RUN of DOCKERFILE is compared
    steps = zip(run_steps(proxy), run_steps(fallback), strict=True)
    must_rerun = [ours for ours, theirs in steps if ours != theirs]
    assert must_rerun == [], "these re-run when the mode switches: the plan must name them"
    for plan in (proxy, fallback):
        assert not [d for d in plan.decisions if "re-run" in d.reason]


# --- caches ----------------------------------------------------------------------------------


def test_cache_mounts_only_on_runs_that_install_and_for_their_installer(
    make_plan: MakePlan,
) -> None:
    plan = make_plan()
    line = rendered_line(plan, "pip install")
    assert "id=orchestrator-pip-1234,target=/var/cache/orchestrator/pip" in line
    assert "id=orchestrator-uv-" not in line
    assert "type=cache" not in rendered_line(plan, "groupadd")
    assert "type=cache" not in rendered_line(plan, "echo hello")


def test_pip_and_uv_caches_are_shared_and_an_old_pip_locks_its_own(make_plan: MakePlan) -> None:
    """uv locks its own cache: parallel builds on a shared one stay intact and fetch each
    file once (test_installers.py), without waiting for each other's uv steps. A pip older
    than 25.3 locks pip's through the sitecustomize it is handed (issue 22: a locked mount
    made every parallel build's pip step wait, even through the proxy)."""
    text = "FROM python\nRUN pip install a && uv pip install --system b\n"
    plan = make_plan(docker_file=text)
    line = rendered_line(plan, "pip install")
    assert "target=/var/cache/orchestrator/pip,uid=0,gid=0,sharing=shared" in line
    assert "target=/var/cache/orchestrator/uv,uid=0,gid=0,sharing=shared" in line
    assert (
        "--mount=type=secret,id=orchestrator-pip-lock,"
        "target=/opt/orchestrator/python/sitecustomize.py,mode=0444"
    ) in line
    assert f"export {PIP_EXPORTS} UV_CACHE_DIR=" in line
    assert "id=orchestrator-pip-lock,src=/nonexistent/sitecustomize.py" in option_values(
        plan, "--secret"
    )
    assert plan.build_env["ORCHESTRATE_PIP_BUSY"] == "skip", "through the proxy: never wait"
    fallback = make_plan(docker_file=text, proxy=DOWN)
    assert "ORCHESTRATE_PIP_BUSY" not in fallback.build_env, "the fallback's pips wait"
    assert fallback.rendered_text == plan.rendered_text, "the same text in every mode"


def test_an_exec_form_pip_keeps_a_locked_mount(make_plan: MakePlan) -> None:
    """No shell to put the sitecustomize on its PYTHONPATH: BuildKit locks the mount."""
    line = rendered_line(make_plan(docker_file='FROM python\nRUN ["pip", "install", "a"]\n'), "RUN")
    assert "sharing=locked" in line
    assert "orchestrator-pip-lock" not in line


def test_cache_mounts_use_literal_ids_of_the_expanded_build_user(make_plan: MakePlan) -> None:
    line = rendered_line(make_plan(proxy=DOWN), "pip install")
    assert (
        "--mount=type=cache,id=orchestrator-pip-1234,target=/var/cache/orchestrator/pip,"
        "uid=1234,gid=2345,sharing=shared"
    ) in line
    assert "${" not in line.split(f" {LOAD}")[0]


def test_a_step_s_own_cache_mount_is_kept_and_not_doubled(make_plan: MakePlan) -> None:
    text = (
        "FROM python\nRUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen\n"
        "RUN --mount=type=cache,target=/root/.cache pip install x\n"
    )
    plan = make_plan(docker_file=text)
    uv_line = rendered_line(plan, "uv sync")
    assert uv_line.startswith("RUN --mount=type=cache,target=/root/.cache/uv ")
    assert "orchestrator-uv" not in uv_line
    assert "UV_CACHE_DIR" not in uv_line
    assert "orchestrator-pip" not in rendered_line(plan, "pip install")


def test_root_run_that_installs_gets_root_owned_cache(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file="FROM python\nRUN pip install x\n", proxy=DOWN)
    assert "uid=0,gid=0,sharing=shared" in rendered_line(plan, "pip install")


def test_unknown_run_user_gets_root_cache_and_a_decision(make_plan: MakePlan) -> None:
    text = "FROM python\nUSER someone\nRUN pip install x\n"
    plan = make_plan(docker_file=text, proxy=DOWN)
    assert "id=orchestrator-pip-0,target" in rendered_line(plan, "pip install")
    assert decision(plan, "RUN line 3").choice == "cache owned by root"


def test_no_cache_dir_is_reported(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN pip install --no-cache-dir x\n"
    plan = make_plan(docker_file=text, proxy=DOWN)
    assert decision(plan, "RUN line 2").choice == "pip cache off"


def test_numeric_user_owns_its_cache(make_plan: MakePlan) -> None:
    text = "FROM python\nUSER 4242:4343\nRUN pip install x\n"
    line = rendered_line(make_plan(docker_file=text, proxy=DOWN), "pip install")
    assert "uid=4242,gid=4343,sharing=shared" in line


def test_poetry_gets_its_cache_and_the_mirror_variable(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN poetry install --no-root\n"
    plan = make_plan(docker_file=text)
    assert "id=orchestrator-poetry-0,target=/root/.cache/pypoetry/artifacts," in rendered_line(
        plan, "poetry install"
    )
    assert plan.build_env["POETRY_PYPI_MIRROR_URL"] == LOOPBACK_INDEX


def test_poetry_s_virtualenvs_stay_in_the_image(make_plan: MakePlan) -> None:
    """Poetry keeps its virtualenvs under its cache directory: moving that directory to a
    cache mount left `poetry install`'s venv out of the image (found by the installer
    tests), so only the downloaded files (``artifacts``) are mounted, where poetry looks."""
    text = (
        "FROM python\nRUN poetry install --no-root\nUSER 1234\nRUN poetry install\n"
        "ENV POETRY_CACHE_DIR=/opt/poetry-cache\nRUN poetry install\n"
        "ENV XDG_CACHE_HOME=/xdg\nRUN poetry install\n"
    )
    plan = make_plan(docker_file=text)
    assert plan.rendered_text is not None
    assert "export POETRY_CACHE_DIR" not in plan.rendered_text
    lines = [line for line in plan.rendered_text.splitlines() if "poetry install" in line]
    targets = [line.split("target=")[1].split(",")[0] for line in lines]
    assert targets == [
        "/root/.cache/pypoetry/artifacts",
        "/home/alice/.cache/pypoetry/artifacts",
        "/opt/poetry-cache/artifacts",
        "/opt/poetry-cache/artifacts",  # the ENV variable beats XDG_CACHE_HOME, as in poetry
    ]


def test_a_poetry_step_of_a_user_without_a_known_home_gets_no_cache(make_plan: MakePlan) -> None:
    text = "FROM python\nUSER 4242\nRUN poetry install\n"
    plan = make_plan(docker_file=text)
    assert "type=cache" not in rendered_line(plan, "poetry install")
    assert "no poetry cache mount" in [d.split(":")[0] for d in decisions(plan, "RUN line 3")]


def test_a_named_user_whose_uid_is_not_known_has_no_home_of_root_s(make_plan: MakePlan) -> None:
    """Its cache mounts are root's for want of its uid; its home is not root's for that."""
    plan = make_plan(docker_file="FROM python\nUSER app\nRUN poetry install\n")
    assert "type=cache" not in rendered_line(plan, "poetry install")
    assert [reason.split(":")[0] for reason in decisions(plan, "RUN line 3")] == [
        "cache owned by root",
        "no poetry cache mount",
        "poetry on its own index",  # no step installs its mirror plugin
    ]


def test_a_cache_mount_where_the_stage_s_env_puts_the_cache_is_the_step_s_own(
    make_plan: MakePlan,
) -> None:
    """uv's guide with ENV UV_CACHE_DIR: the step's mount is kept and its location too."""
    text = (
        "FROM python\nENV UV_CACHE_DIR=/opt/uv-cache PIP_CACHE_DIR=/opt/pip-cache\n"
        "RUN --mount=type=cache,target=/opt/uv-cache uv pip install --system x\n"
        "RUN --mount=type=cache,target=/opt/pip-cache pip install x\n"
    )
    plan = make_plan(docker_file=text)
    for command in ("uv pip install", "; pip install x"):
        line = rendered_line(plan, command)
        assert "id=orchestrator-" not in line.replace("id=orchestrator-env", "")
        assert "CACHE_DIR" not in line


# --- every RUN form (issue 11) -----------------------------------------------------------------


def test_exec_form_install_reads_settings_from_config_files(make_plan: MakePlan) -> None:
    text = 'FROM python\nRUN ["pip", "install", "requests"]\n'
    plan = make_plan(docker_file=text)
    line = rendered_line(plan, '"pip", "install"')
    assert "--mount=type=secret,id=orchestrator-pip-conf,target=/etc/xdg/pip/pip.conf" in line
    assert "--mount=type=secret,id=orchestrator-uv-toml,target=/etc/xdg/uv/uv.toml" in line
    assert line.endswith('["pip", "install", "requests"]')
    assert "set -a" not in line
    assert "target=/root/.cache/pip" in line  # pip's own default place for root
    pip_conf = plan.secret_env["ORCHESTRATE_PIP_CONF"]
    assert f"index-url = {LOOPBACK_INDEX}" in pip_conf
    assert "trusted-host = 127.0.0.1" in pip_conf
    assert f'index-url = "{LOOPBACK_INDEX}"' in plan.secret_env["ORCHESTRATE_UV_TOML"]
    assert "id=orchestrator-pip-conf,env=ORCHESTRATE_PIP_CONF" in option_values(plan, "--secret")


def test_exec_form_poetry_is_said_to_stay_on_its_own_index(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file='FROM python\nRUN ["poetry", "install", "--no-root"]\n')
    assert "poetry left on its own index" in decisions(plan, "RUN line 2")[1]
    assert "target=/root/.cache/pypoetry/artifacts" in rendered_line(plan, '"poetry"')


def test_exec_form_step_without_an_installer_is_left_alone(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert rendered_line(plan, '"print(1)"') == 'RUN ["python", "-c", "print(1)"]'


def test_exec_form_config_files_name_no_index_in_the_fallback_to_pypi(make_plan: MakePlan) -> None:
    text = 'FROM python\nRUN ["pip", "install", "requests"]\n'
    plan = make_plan(docker_file=text, proxy=DOWN)
    assert plan.secret_env["ORCHESTRATE_PIP_CONF"] == ""
    assert plan.secret_env["ORCHESTRATE_UV_TOML"] == 'link-mode = "copy"\n'
    assert plan.rendered_text == make_plan(docker_file=text).rendered_text


def test_heredoc_script_loads_settings_as_its_first_line(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN <<EOF\npip install requests\nEOF\n"
    plan = make_plan(docker_file=text, builder=NEW)
    assert plan.rendered_text == (
        "FROM python\n"
        "RUN --mount=type=secret,id=orchestrator-env,mode=0444 "
        "--mount=type=secret,id=orchestrator-pip-lock,"
        "target=/opt/orchestrator/python/sitecustomize.py,mode=0444 "
        "--mount=type=cache,id=orchestrator-pip-0,target=/var/cache/orchestrator/pip,"
        "uid=0,gid=0,sharing=shared <<EOF\n"
        f"{LOAD}; export {PIP_EXPORTS}\n"
        "pip install requests\nEOF\n"
    )


def test_heredoc_read_by_a_command_is_wired_on_its_command_line(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN bash <<EOF\npip install requests\nEOF\n"
    plan = make_plan(docker_file=text, builder=NEW)
    assert f"{LOAD}; export {PIP_EXPORTS}; bash <<EOF" in (plan.rendered_text or "")


def test_heredoc_with_its_own_interpreter_reads_config_files(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN <<EOF\n#!/bin/bash -e\npip install x\nEOF\n"
    plan = make_plan(docker_file=text, builder=NEW)
    line = rendered_line(plan, "RUN ")
    assert "target=/etc/xdg/pip/pip.conf" in line
    assert "set -a" not in (plan.rendered_text or "")


def test_heredoc_on_a_frontend_without_heredocs_is_left_as_written(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN <<EOF\npip install requests\nEOF\n"
    plan = make_plan(docker_file=text, builder=OLD)
    assert plan.rendered_path is None
    assert "dockerfile 1.4" in decision(plan, "RUN line 2").reason


def test_a_non_posix_shell_gets_config_files(make_plan: MakePlan) -> None:
    text = 'FROM python\nSHELL ["pwsh", "-Command"]\nRUN pip install x\n'
    plan = make_plan(docker_file=text)
    line = rendered_line(plan, "pip install x")
    assert "target=/etc/xdg/pip/pip.conf" in line
    assert "set -a" not in line
    assert "not a POSIX shell" in decision(plan, "RUN line 3").reason


def test_bash_shell_still_loads_variables(make_plan: MakePlan) -> None:
    text = 'FROM python\nSHELL ["/bin/bash", "-o", "pipefail", "-c"]\nRUN pip install x\n'
    assert LOAD in rendered_line(make_plan(docker_file=text), "pip install x")


# --- where the Dockerfile points installers itself ------------------------------------------


def test_env_index_in_the_dockerfile_is_reported_line_by_line(make_plan: MakePlan) -> None:
    text = "FROM python\nENV PIP_INDEX_URL=https://corp.example/simple\nRUN pip install x\n"
    proxy = make_plan(docker_file=text)
    assert decision(proxy, "ENV line 2").choice == "PIP_INDEX_URL=https://corp.example/simple"
    assert "shell-form steps load orchestrator's settings after it" in (
        decision(proxy, "ENV line 2").reason
    )
    fallback = make_plan(docker_file=text, proxy=DOWN)
    assert "applies as written" in decision(fallback, "ENV line 2").reason


def test_index_url_on_the_command_line_is_reported_and_left(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN pip install --index-url https://corp.example/simple x\n"
    plan = make_plan(docker_file=text)
    found = decision(plan, "RUN line 2")
    assert found.choice == "left as written: --index-url https://corp.example/simple"
    assert "bypasses the proxy" in found.reason
    assert "--index-url https://corp.example/simple x" in rendered_line(plan, "pip install")


# --- uv.lock (issue 11) -------------------------------------------------------------------------

UV_LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [{ name = "six" }]

[[package]]
name = "six"
version = "1.16.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/71/39/six-1.16.0.tar.gz", hash = "sha256:1" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/d9/5a/six-1.16.0-py2.py3-none-any.whl", hash = "sha256:2" },
]
"""  # noqa: E501 - a uv.lock's lines are as long as uv writes them
UV_GUIDE = """\
FROM python
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=uv.lock,target=uv.lock \\
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \\
    uv sync --locked --no-install-project
"""


def test_uv_sync_locked_gets_a_lock_copy_pointing_at_the_proxy(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file=UV_GUIDE, context_files={"uv.lock": UV_LOCK})
    line = rendered_line(plan, "uv sync")
    assert "--mount=type=bind,source=uv.lock,target=uv.lock" not in line
    assert "--mount=type=secret,id=orchestrator-uv-lock-3,target=/app/uv.lock,mode=0444" in line
    assert "--mount=type=bind,source=pyproject.toml,target=pyproject.toml" in line
    ((path, copy),) = plan.files.items()
    assert f"id=orchestrator-uv-lock-3,src={path}" in option_values(plan, "--secret")
    assert f'source = {{ registry = "{LOOPBACK_INDEX}" }}' in copy
    assert f'url = "{LOOPBACK_INDEX}six/six-1.16.0-py2.py3-none-any.whl"' in copy
    assert f'url = "{LOOPBACK_INDEX}six/six-1.16.0.tar.gz"' in copy
    assert "pythonhosted" not in copy
    assert plan.build_env["UV_DEFAULT_INDEX"] == LOOPBACK_INDEX  # the very string uv compares


def test_uv_lock_copy_keeps_the_original_in_the_fallback_to_pypi(make_plan: MakePlan) -> None:
    proxy = make_plan(docker_file=UV_GUIDE, context_files={"uv.lock": UV_LOCK})
    fallback = make_plan(docker_file=UV_GUIDE, context_files={"uv.lock": UV_LOCK}, proxy=DOWN)
    assert list(fallback.files.values()) == [UV_LOCK]
    assert proxy.rendered_text == fallback.rendered_text


def test_uv_lock_copied_in_by_copy_is_traced(make_plan: MakePlan) -> None:
    text = "FROM python\nWORKDIR /srv\nCOPY pyproject.toml uv.lock ./\nRUN uv sync --frozen\n"
    plan = make_plan(docker_file=text, context_files={"uv.lock": UV_LOCK})
    assert "target=/srv/uv.lock" in rendered_line(plan, "uv sync")


def test_uv_sync_that_may_rewrite_its_lock_stays_on_the_lock_s_index(make_plan: MakePlan) -> None:
    text = "FROM python\nCOPY . /app\nWORKDIR /app\nRUN uv sync\n"
    plan = make_plan(docker_file=text, context_files={"uv.lock": UV_LOCK})
    line = rendered_line(plan, "uv sync")
    assert "unset UV_DEFAULT_INDEX" in line
    assert "uv-lock" not in line
    assert "may rewrite the lock" in decision(plan, "RUN line 4").reason


def test_uv_lock_of_unknown_origin_stays_on_the_lock_s_index(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN uv sync --locked\n"
    plan = make_plan(docker_file=text)
    assert "unset UV_DEFAULT_INDEX" in rendered_line(plan, "uv sync")
    assert "cannot tell which file" in decision(plan, "RUN line 2").reason


# --- the user's own mounts ------------------------------------------------------------------

SSH_FILE = """\
FROM python
ARG USER_NAME
RUN --mount=type=ssh git clone git@example.com:root.git
USER ${USER_NAME}
RUN --mount=type=ssh git clone git@example.com:user.git
"""


def test_mount_variables_are_made_literal_where_the_frontend_cannot(make_plan: MakePlan) -> None:
    text = "FROM python\nARG USER_ID\nRUN --mount=type=cache,target=/c,uid=${USER_ID} id\n"
    old = make_plan("proxy: off\n", docker_file=text, builder=OLD)
    assert "--mount=type=cache,target=/c,uid=1234" in rendered_line(old, "id")
    assert decision(old, "RUN line 3").choice == "mount variables made literal"
    new = make_plan("proxy: off\n", docker_file=text, builder=NEW)
    assert new.rendered_path is None  # dockerfile 1.3 expands them itself


def test_ssh_mount_of_a_non_root_run_names_its_owner(make_plan: MakePlan) -> None:
    plan = make_plan(
        "ssh: true\nproxy: off\n", docker_file=SSH_FILE, ssh_auth_sock="/tmp/agent.sock"
    )
    assert rendered_line(plan, "user.git").startswith(
        "RUN --mount=type=ssh,uid=1234,gid=2345 git clone"
    )
    assert rendered_line(plan, "root.git") == (
        "RUN --mount=type=ssh git clone git@example.com:root.git"
    )


# --- mode: require / off ------------------------------------------------------------------


def test_required_proxy_that_cannot_serve_fails(make_plan: MakePlan) -> None:
    with pytest.raises(ProxyUnavailable) as info:
        make_plan("proxy: require\n", proxy=DOWN)
    assert info.value.exit_code == ExitCode.PROXY_UNAVAILABLE
    assert "'app' requires the proxy" in info.value.message
    assert DOWN.reason in info.value.message


def test_required_proxy_with_no_proxy_option_is_bad_input(make_plan: MakePlan) -> None:
    with pytest.raises(BadInput) as info:
        make_plan("proxy: require\n", options=BuildOptions(no_proxy=True))
    assert "app.yaml: field 'proxy.mode' is require" in info.value.message


def test_proxy_off_wires_nothing(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: off\n")
    assert plan.mode == "off"
    assert plan.index_url is None
    assert plan.build_env == {}
    assert not has_host_network(plan)
    assert plan.rendered_path is None


# --- external proxies and container builders ----------------------------------------------


def test_external_proxy_url_is_used_as_given(make_plan: MakePlan) -> None:
    url = "http://devpi.example:3141/root/pypi/+simple/"
    plan = make_plan(f"proxy: {{url: '{url}'}}\n")
    assert plan.index_url == url
    assert plan.build_env["PIP_INDEX_URL"] == url
    assert plan.build_env["PIP_TRUSTED_HOST"] == "devpi.example"
    assert decision(plan, "proxy address").reason == "an external proxy, used as given"
    assert not has_host_network(plan)


def test_external_proxy_on_loopback_uses_host_network(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {url: 'http://localhost:3141/simple/'}\n")
    assert plan.index_url == "http://localhost:3141/simple/"
    assert has_host_network(plan)


ON_PROXY_NETWORK = BuilderFacts(driver="docker-container", name="ci", network="orchestrator")
ON_HOST = BuilderFacts(driver="docker-container", name="ci", network="host")
OWN_NETWORK = BuilderFacts(driver="docker-container", name="ci")
ADDRESSED = ProxyFacts(healthy=True, reason="ok", address="172.18.0.5")
CREATE_ON_HOST = (
    "docker",
    "buildx",
    "create",
    "--name",
    "orchestrator",
    "--driver",
    "docker-container",
    "--driver-opt",
    "network=host",
)


def test_a_container_builder_on_the_proxy_network_reaches_its_ip(make_plan: MakePlan) -> None:
    plan = make_plan(builder=ON_PROXY_NETWORK, proxy=ADDRESSED)
    assert plan.mode == "proxy"
    assert plan.index_url == "http://172.18.0.5:5000/index/"
    assert "--network" not in plan.argv
    assert decision(plan, "network").choice == "builder's"
    assert plan.prepare == ()
    assert "--builder" not in plan.argv, "the builder the user chose is the one used"


def test_a_container_builder_on_the_host_network_reaches_the_loopback(
    make_plan: MakePlan,
) -> None:
    """docker/setup-buildx-action with `driver-opts: network=host`: RUN steps share the
    builder's network, the engine host's (docker/buildx#2255)."""
    plan = make_plan(builder=ON_HOST, proxy=HEALTHY)
    assert plan.mode == "proxy"
    assert plan.index_url == "http://127.0.0.1:5000/index/"
    assert "network=host" in decision(plan, "proxy address").reason
    assert plan.prepare == ()


def test_a_container_builder_that_reaches_nothing_falls_back_and_says_what_to_create(
    make_plan: MakePlan,
) -> None:
    plan = make_plan(builder=OWN_NETWORK, proxy=ADDRESSED)
    assert plan.mode == "cache-mount"
    assert "builder 'ci' runs on a network of its own" in plan.mode_reason
    assert plan.prepare == (CREATE_ON_HOST,)
    assert "builder: orchestrator" in decision(plan, "builder network").reason
    with pytest.raises(ProxyUnavailable, match="builder 'ci' runs on a network of its own"):
        make_plan("proxy: require\n", builder=OWN_NETWORK, proxy=ADDRESSED)


def test_any_container_builder_reaches_an_external_proxy_by_address(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {url: 'http://10.1.2.3:5000/index/'}\n", builder=OWN_NETWORK)
    assert plan.mode == "proxy"
    assert plan.index_url == "http://10.1.2.3:5000/index/"
    assert plan.prepare == ()


def test_the_builder_s_network_is_read_from_buildx_s_own_words() -> None:
    """As `docker buildx inspect` (buildx 0.13.1) printed it for a builder created with
    `--driver-opt network=host` (seen here, 2026-12-07)."""
    printed = (
        "Name:          orch-probe-net\nDriver:        docker-container\n\nNodes:\n"
        "Name:                  orch-probe-net0\n"
        "Endpoint:              unix:///var/run/docker.sock\n"
        'Driver Options:        image="moby/buildkit:v0.20.1" network="host"\n'
        "Status:                inactive\n"
    )
    assert network_option(printed) == "host"
    assert network_option(printed.replace(' network="host"', "")) is None
    assert network_option("Name: default\nDriver: docker\n") is None


def test_the_frontend_s_capabilities_are_decisions(make_plan: MakePlan) -> None:
    assert decision(make_plan(), "frontend").choice == (
        "heredocs no, variables in --mount no, secrets as env no"
    )
    assert decision(make_plan(builder=NEW), "frontend").choice == (
        "heredocs yes, variables in --mount yes, secrets as env yes"
    )


def test_builder_decision_names_its_versions_and_unchecked_facts(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert decision(plan, "builder").choice == (
        "default (docker driver; buildx 0.13.1, BuildKit v0.8.2)"
    )
    unchecked = make_plan(builder=BuilderFacts(checked=False))
    assert "not checked" in decision(unchecked, "builder").reason


# --- bake targets -------------------------------------------------------------------------


def test_bake_target_gets_host_networking_through_the_override(make_plan: MakePlan) -> None:
    plan = make_plan(options=BuildOptions(bake=True))
    assert plan.mode == "proxy"
    assert plan.network == "host"
    assert "--network" not in plan.argv  # bake's override carries it


def test_bake_without_host_network_needs_the_bridge(make_plan: MakePlan) -> None:
    plan = make_plan("network: default\n", options=BuildOptions(bake=True))
    assert plan.mode == "cache-mount"


# --- the build user -----------------------------------------------------------------------


def build_args(plan: BuildPlan) -> dict[str, str]:
    return dict(value.split("=", 1) for value in option_values(plan, "--build-arg"))


def test_host_user_becomes_the_build_user(make_plan: MakePlan) -> None:
    args = build_args(make_plan())
    assert args == {"USER_NAME": "alice", "USER_ID": "1234", "GROUP_ID": "2345"}


def test_user_args_only_for_args_the_dockerfile_declares(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file="FROM python\nARG USER_ID\nRUN id\n")
    assert build_args(plan) == {"USER_ID": "1234"}


def test_root_host_user_maps_to_uid_1000_named_builder(make_plan: MakePlan) -> None:
    plan = make_plan(uid=0, gid=0, user_name="root", proxy=DOWN)
    assert build_args(plan) == {"USER_NAME": "builder", "USER_ID": "1000", "GROUP_ID": "1000"}
    assert "uid=1000,gid=1000,sharing=shared" in rendered_line(plan, "pip install")


def test_user_off_passes_no_user_args(make_plan: MakePlan) -> None:
    plan = make_plan("user: off\n")
    assert build_args(plan) == {}
    assert decision(plan, "build user").choice == "off"


def test_explicit_user_mapping(make_plan: MakePlan) -> None:
    plan = make_plan("user: {name: ci, uid: 2000, gid: 3000}\n", proxy=DOWN)
    assert build_args(plan) == {"USER_NAME": "ci", "USER_ID": "2000", "GROUP_ID": "3000"}
    assert "uid=2000,gid=3000,sharing=shared" in rendered_line(plan, "pip install")


def test_profile_build_args_override_the_orchestrator(make_plan: MakePlan) -> None:
    plan = make_plan("build_args: {USER_NAME: bob, EXTRA: 1}\n")
    assert build_args(plan) == {
        "USER_NAME": "bob",
        "USER_ID": "1234",
        "GROUP_ID": "2345",
        "EXTRA": "1",
    }


# --- ssh, secrets, CA bundle --------------------------------------------------------------


def test_ssh_without_agent_is_bad_input_naming_the_field(make_plan: MakePlan) -> None:
    with pytest.raises(BadInput) as info:
        make_plan("ssh: true\n", ssh_auth_sock=None)
    assert "app.yaml: field 'ssh'" in info.value.message


def test_ssh_forwards_the_agent_socket(make_plan: MakePlan) -> None:
    plan = make_plan("ssh: true\n", ssh_auth_sock="/tmp/agent.sock")
    assert option_values(plan, "--ssh") == ["default=/tmp/agent.sock"]
    assert "/tmp/agent.sock" in plan.read_paths()


def test_secrets_from_file_and_env(make_plan: MakePlan, profiles_dir: Path) -> None:
    (profiles_dir / "netrc.txt").write_text("machine example.com password TOPSECRET\n")
    plan = make_plan(
        "secrets: {token: {env: API_TOKEN}, netrc: {file: netrc.txt}}\n",
        env_names=frozenset({"API_TOKEN"}),
    )
    secrets = option_values(plan, "--secret")
    assert "id=token,env=API_TOKEN" in secrets
    assert f"id=netrc,src={profiles_dir / 'netrc.txt'}" in secrets
    assert "TOPSECRET" not in " ".join(plan.argv)
    assert str(profiles_dir / "netrc.txt") in plan.read_paths()


def test_secret_from_unset_env_is_bad_input(make_plan: MakePlan) -> None:
    with pytest.raises(BadInput) as info:
        make_plan("secrets: {token: {env: API_TOKEN}}\n", env_names=frozenset({"HOME"}))
    assert "field 'secrets.token.env'" in info.value.message


def test_ca_bundle_is_a_secret_never_a_build_arg(make_plan: MakePlan, profiles_dir: Path) -> None:
    bundle = profiles_dir / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nCA-CONTENT\n-----END CERTIFICATE-----\n")
    plan = make_plan(ca_bundle="ca.pem")
    assert f"id=orchestrator-ca,src={bundle}" in option_values(plan, "--secret")
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        assert plan.build_env[name] == "/run/secrets/orchestrator-ca"
    assert "CA-CONTENT" not in " ".join(plan.argv)
    assert "--mount=type=secret,id=orchestrator-ca,mode=0444" in rendered_line(plan, "echo hello")


def test_the_host_ca_bundle_is_a_fact(make_plan: MakePlan, tmp_path: Path) -> None:
    bundle = tmp_path / "host-ca.pem"
    plan = make_plan(ca_bundle="auto", host_ca_bundle=bundle)
    assert f"id=orchestrator-ca,src={bundle}" in option_values(plan, "--secret")
    assert decision(make_plan(ca_bundle="auto"), "CA bundle").choice == "none"


def test_argv_carries_no_secret_values(make_plan: MakePlan, profiles_dir: Path) -> None:
    (profiles_dir / "tok").write_text("FILE-SECRET-VALUE\n")
    plan = make_plan(
        f"proxy: {{url: '{CREDENTIAL_URL}'}}\nsecrets: {{a: {{file: tok}}, b: {{env: B}}}}\n",
        env_names=frozenset({"B"}),
    )
    joined = " ".join(plan.argv)
    assert PASSWORD not in joined
    assert "FILE-SECRET-VALUE" not in joined
    assert "proxy.example" not in joined  # the index travels in the settings secret only


# --- fresh ------------------------------------------------------------------------------------


def test_fresh_declares_a_fresh_arg_in_every_stage(make_plan: MakePlan) -> None:
    plan = make_plan(options=BuildOptions(fresh=True))
    assert plan.rendered_text is not None
    lines = plan.rendered_text.splitlines()
    froms = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(froms) == 2
    assert all(lines[i + 1] == "ARG ORCHESTRATE_FRESH" for i in froms)
    assert "ORCHESTRATE_FRESH=tok123" in option_values(plan, "--build-arg")
    assert not any(arg.startswith("--no-cache") for arg in plan.argv)


def test_fresh_alone_renders_even_with_nothing_to_wire(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: off\n", docker_file="FROM scratch\n", options=BuildOptions(fresh=True))
    assert plan.rendered_text == "FROM scratch\nARG ORCHESTRATE_FRESH\n"


def test_fresh_token_does_not_change_the_rendered_file(make_plan: MakePlan) -> None:
    first = make_plan(options=BuildOptions(fresh=True), fresh_token="a")
    second = make_plan(options=BuildOptions(fresh=True), fresh_token="b")
    assert first.rendered_path == second.rendered_path
    assert first.argv != second.argv


# --- the rendered file --------------------------------------------------------------------


def test_rendered_file_is_used_and_lives_in_the_render_dir(
    make_plan: MakePlan, tmp_path: Path
) -> None:
    plan = make_plan()
    assert plan.rendered_path is not None
    assert plan.rendered_path.parent == tmp_path / "rendered"
    assert plan.rendered_path.name.startswith("app-")
    assert option_values(plan, "--file") == [str(plan.rendered_path)]
    assert plan.dockerfile == tmp_path / "ctx" / "Dockerfile"


def test_rendered_text_parses_again(make_plan: MakePlan, tmp_path: Path) -> None:
    plan = make_plan(proxy=DOWN, options=BuildOptions(fresh=True))
    again = dockerfile.parse_text(tmp_path / "again", plan.rendered_text or "")
    assert [s.name for s in again.stages] == ["base", "test"]
    assert len(again.runs) == 4
    assert "ORCHESTRATE_FRESH" in again.args
    pip = next(r for r in again.runs if "pip install" in r.command)
    assert sum(flag.startswith("--mount=type=cache") for flag in pip.flags) == 1


def test_nothing_to_wire_builds_the_original_file(make_plan: MakePlan, tmp_path: Path) -> None:
    plan = make_plan("proxy: off\n", docker_file="FROM python\nRUN echo hi\nCOPY . /src\n")
    assert plan.rendered_path is None
    assert plan.secret_env == {}
    assert option_values(plan, "--file") == [str(tmp_path / "ctx" / "Dockerfile")]
    assert "--secret" not in plan.argv
    assert decision(plan, "Dockerfile").choice == "used as is"


# --- output and argv shape ----------------------------------------------------------------


def test_argv_shape(make_plan: MakePlan, tmp_path: Path) -> None:
    plan = make_plan("tags: [app:1, app:latest]\ntarget: test\nlabels: {team: x}\n")
    assert plan.argv[:3] == ("docker", "buildx", "build")
    assert plan.argv[-1] == str(tmp_path / "ctx")
    assert option_values(plan, "--tag") == ["app:1", "app:latest"]
    assert option_values(plan, "--target") == ["test"]
    assert option_values(plan, "--label") == ["team=x", "io.orchestrator.profile=app"]
    assert "--load" in plan.argv
    assert plan.command_line == shlex.join(plan.argv)


def test_multi_platform_is_not_loaded(make_plan: MakePlan) -> None:
    plan = make_plan("platforms: [linux/amd64, linux/arm64]\n")
    assert option_values(plan, "--platform") == ["linux/amd64,linux/arm64"]
    assert "--load" not in plan.argv


def test_plan_is_frozen(make_plan: MakePlan) -> None:
    plan = make_plan()
    with pytest.raises(AttributeError):
        plan.mode = "off"  # type: ignore[misc]


# --- renderings and redaction -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CREDENTIAL_URL, "http://***@proxy.example/simple/"),
        ("see https://a:b@h:1/x and http://c:d@i/", "see https://***@h:1/x and http://***@i/"),
        ("http://proxy.example/simple/", "http://proxy.example/simple/"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_as_dict_never_contains_an_index_password(make_plan: MakePlan) -> None:
    data = render.as_dict(make_plan(f"proxy: {{url: '{CREDENTIAL_URL}'}}\n"))
    assert data["index_url"] == "http://***@proxy.example/simple/"
    assert data["build_env"]["PIP_INDEX_URL"] == "http://***@proxy.example/simple/"
    assert PASSWORD not in json.dumps(data)


def test_render_text_never_contains_an_index_password(make_plan: MakePlan) -> None:
    assert PASSWORD not in render.text(make_plan(f"proxy: {{url: '{CREDENTIAL_URL}'}}\n"))


def test_render_text_shows_mode_decisions_and_command(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=DOWN)
    text = render.text(plan)
    assert "mode:       cache-mount" in text
    assert f"rendered:   {plan.rendered_path}" in text
    assert f"ORCHESTRATE_BUILD_ENV=... {plan.command_line}" in text


REQUIREMENTS_STEP = (
    "FROM python:3.12\nWORKDIR /app\nCOPY requirements.txt .\n"
    "RUN pip install -r requirements.txt\n"
    "RUN --mount=type=bind,source=requirements.txt,target=/tmp/r.txt uv pip install -r /tmp/r.txt\n"
)
COMPILED = (
    "# generated by pip-compile\n--index-url https://user:token@corp.example/simple\n"
    "--extra-index-url https://extra.example/simple\nx==1\n"
)


def test_index_lines_inside_requirement_files_are_told_per_installer(make_plan: MakePlan) -> None:
    """pip-compile writes the index it used into its output; pip takes that file's
    --index-url over PIP_INDEX_URL, uv does not (astral-sh/uv#6407): the plan says which."""
    plan = make_plan(docker_file=REQUIREMENTS_STEP, context_files={"requirements.txt": COMPILED})
    pip = decisions(plan, "RUN line 4")
    assert pip[0].startswith(
        "left as written: requirements.txt:2 --index-url https://***@corp.example/simple: "
        "pip takes a requirement file's --index-url over PIP_INDEX_URL: this install asks"
    ), pip
    assert pip[1].startswith("left as written: requirements.txt:3 --extra-index-url https://")
    uv = decisions(plan, "RUN line 5")
    assert uv[0].startswith("index kept over requirements.txt:2 --index-url"), uv
    assert "astral-sh/uv#6407" in uv[0]
    assert "token" not in render.text(plan)


def test_requirement_files_without_index_lines_or_unread_add_nothing(make_plan: MakePlan) -> None:
    plain = make_plan(docker_file=REQUIREMENTS_STEP, context_files={"requirements.txt": "x\n"})
    unread = make_plan(docker_file=REQUIREMENTS_STEP)
    for plan in (plain, unread):
        assert not [d for d in plan.decisions if "requirements.txt" in d.choice]


# --- steps that bypass the proxy, said by the build itself ------------------------------------


def test_every_step_that_bypasses_the_proxy_is_a_bypass_of_the_plan(
    make_plan: MakePlan, tmp_path: Path
) -> None:
    """Issue 21: a command's own index, poetry without the mirror plugin, an exec-form
    pipenv and a pip-compile step were told in --dry-run only, or not at all."""
    text = (
        "FROM python\n"
        "RUN pip install --index-url https://example.org/simple/ a\n"
        "RUN poetry install --no-root\n"
        'RUN ["pipenv", "install", "--deploy"]\n'
        "RUN pip-compile -o requirements.txt requirements.in && pip install -r requirements.txt\n"
        "RUN pip install b\n"
    )
    plan = make_plan(docker_file=text)
    assert plan.mode == "proxy"
    assert [(b.line, b.why) for b in plan.bypasses] == [
        (2, "the command names its own index"),
        (3, "poetry: no step installs poetry-plugin-pypi-mirror"),
        (4, "pipenv without a shell to load the proxy's variables"),
        (5, "pip-compile writes its index into its output"),
    ]
    compile_line = rendered_line(plan, "pip-compile")
    assert "unset PIP_INDEX_URL PIP_TRUSTED_HOST PIP_CONFIG_FILE" in compile_line
    assert "unset" not in rendered_line(plan, "pip install b")
    assert "not through the proxy:\n  RUN line 2: left as written" in render.text(plan)
    assert render.as_dict(plan)["bypasses"][0]["line"] == 2


def test_poetry_with_its_mirror_plugin_and_pipenv_in_a_shell_go_through_the_proxy(
    make_plan: MakePlan,
) -> None:
    text = (
        "FROM python\n"
        "RUN pip install poetry poetry-plugin-pypi-mirror pipenv\n"
        "RUN poetry install --no-root && pipenv install --deploy\n"
    )
    plan = make_plan(docker_file=text)
    assert plan.bypasses == ()
    assert plan.build_env["PIPENV_PYPI_MIRROR"] == plan.index_url
    assert plan.build_env["POETRY_PYPI_MIRROR_URL"] == plan.index_url


def test_the_fallback_has_no_bypasses_to_report(make_plan: MakePlan) -> None:
    plan = make_plan(
        docker_file="FROM python\nRUN pip install -i https://example.org/simple/ a\n", proxy=DOWN
    )
    assert plan.mode == "cache-mount"
    assert plan.bypasses == ()
    assert "left as written: -i https://example.org/simple/" in decisions(plan, "RUN line 2")[0]


def test_an_exec_form_step_under_an_index_env_bypasses_the_proxy_and_says_so(
    make_plan: MakePlan,
) -> None:
    """An organisation's base image (or the Dockerfile) sets PIP_INDEX_URL: it beats the
    pip.conf an exec-form step gets; a shell-form step loads the proxy's after it."""
    text = (
        "FROM python\nENV PIP_INDEX_URL=http://org.example/simple/\n"
        'RUN ["pip", "install", "a"]\nRUN pip install b\n'
    )
    plan = make_plan(docker_file=text)
    assert [(b.line, b.what) for b in plan.bypasses] == [(3, "left on ENV PIP_INDEX_URL")]
