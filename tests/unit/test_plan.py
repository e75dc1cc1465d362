"""Planning: a profile, its Dockerfile and host facts become the exact build to run."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from orchestrator import dockerfile, engine
from orchestrator.errors import BadInput, ExitCode, ProxyUnavailable
from orchestrator.plan import (
    BuildOptions,
    BuildPlan,
    HostFacts,
    ProxyFacts,
    plan_build,
    redact,
    render_text,
)
from orchestrator.profiles import ProfileStore
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
PASSWORD = "s3cret"
CREDENTIAL_URL = f"http://user:{PASSWORD}@proxy.example/simple/"

MakePlan = Callable[..., BuildPlan]


@pytest.fixture
def make_plan(profiles_dir: Path, tmp_path: Path) -> MakePlan:
    """Write profile 'app' and its Dockerfile, then plan; facts default to a healthy proxy,
    the docker driver and host user alice (1234:2345)."""

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
            "render_dir": tmp_path / "rendered",
            "fresh_token": "tok123",
            **facts,
        }
        return plan_build(resolved, parsed, HostFacts(**fields), options)  # type: ignore[arg-type]

    return make


def rendered_line(plan: BuildPlan, start: str) -> str:
    """The one rendered line that starts with ``start`` (after its RUN flags)."""
    assert plan.rendered_text is not None
    found = [line for line in plan.rendered_text.splitlines() if start in line]
    assert len(found) == 1, found
    return found[0]


def option_values(plan: BuildPlan, option: str) -> list[str]:
    return [plan.argv[i + 1] for i, word in enumerate(plan.argv) if word == option]


def decision(plan: BuildPlan, topic: str):
    (found,) = [d for d in plan.decisions if d.topic == topic]
    return found


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
    assert env["UV_INDEX_URL"] == LOOPBACK_INDEX
    assert env["PIP_TRUSTED_HOST"] == "127.0.0.1"
    assert env["UV_INSECURE_HOST"] == "127.0.0.1:5000"
    assert env["PIP_CONFIG_FILE"] == "/dev/null"


def test_no_extra_index_url_reaches_the_build(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {extra_indexes: ['https://private.example/simple/']}\n")
    settings = " ".join([*plan.build_env, *plan.build_env.values(), plan.rendered_text or ""])
    assert not any("EXTRA_INDEX" in key.upper() for key in plan.build_env)
    for text in (settings, " ".join(plan.argv)):
        assert "extra-index-url" not in text.lower()
        assert "private.example" not in text


def test_proxy_mode_wires_every_shell_run_with_the_settings_secret(make_plan: MakePlan) -> None:
    plan = make_plan()
    prefix = "set -a; . /run/secrets/orchestrator-env; set +a; "
    mount = "--mount=type=secret,id=orchestrator-env,mode=0444"
    for command in ("groupadd", "pip install", "echo hello"):
        line = rendered_line(plan, command)
        assert mount in line
        assert prefix in line
    assert "type=cache" not in (plan.rendered_text or "")
    assert plan.argv[-3:-1] == ("--secret", "id=orchestrator-env,env=ORCHESTRATE_BUILD_ENV")


def test_secret_env_carries_the_build_env_shell_quoted(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert set(plan.secret_env) == {"ORCHESTRATE_BUILD_ENV"}
    blob = plan.secret_env["ORCHESTRATE_BUILD_ENV"]
    lines = blob.splitlines()
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


def test_profile_network_default_overrides_auto(make_plan: MakePlan) -> None:
    plan = make_plan("network: default\n")
    assert not has_host_network(plan)
    assert decision(plan, "network").reason == "set by the profile"


# --- mode: cache-mount -------------------------------------------------------------------------


def test_unhealthy_proxy_falls_back_to_cache_mounts(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=DOWN)
    assert plan.mode == "cache-mount"
    assert DOWN.reason in decision(plan, "mode").reason
    assert plan.index_url == "https://pypi.org/simple/"
    assert "PIP_CONFIG_FILE" not in plan.build_env
    assert "PIP_TRUSTED_HOST" not in plan.build_env  # https needs no trust
    assert not has_host_network(plan)


def test_unchecked_proxy_falls_back_to_cache_mounts(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=None)
    assert plan.mode == "cache-mount"
    assert "not checked" in decision(plan, "mode").reason


def test_cache_mounts_only_on_package_installing_runs(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=DOWN)
    assert "type=cache" in rendered_line(plan, "pip install")
    assert "type=cache" not in rendered_line(plan, "groupadd")
    assert "type=cache" not in rendered_line(plan, "echo hello")


def test_cache_mounts_use_literal_ids_of_the_expanded_build_user(make_plan: MakePlan) -> None:
    line = rendered_line(make_plan(proxy=DOWN), "pip install")
    for tool in ("pip", "uv", "poetry"):
        assert (
            f"--mount=type=cache,id=orchestrator-{tool}-1234,"
            f"target=/var/cache/orchestrator/{tool},uid=1234,gid=2345,sharing=locked"
        ) in line
    assert "${" not in line.split(" set -a;")[0]  # no variable in any flag


def test_cache_mounts_export_the_cache_dirs(make_plan: MakePlan) -> None:
    line = rendered_line(make_plan(proxy=DOWN), "pip install")
    assert (
        "export PIP_CACHE_DIR=/var/cache/orchestrator/pip "
        "UV_CACHE_DIR=/var/cache/orchestrator/uv "
        "POETRY_CACHE_DIR=/var/cache/orchestrator/poetry; pip install --user requests"
    ) in line


def test_root_run_that_installs_gets_root_owned_cache(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file="FROM python\nRUN pip install x\n", proxy=DOWN)
    assert "uid=0,gid=0,sharing=locked" in rendered_line(plan, "pip install")


def test_unknown_run_user_gets_root_cache_and_a_decision(make_plan: MakePlan) -> None:
    text = "FROM python\nUSER someone\nRUN pip install x\n"
    plan = make_plan(docker_file=text, proxy=DOWN)
    assert "id=orchestrator-pip-0,target" in rendered_line(plan, "pip install")
    assert decision(plan, "RUN line 3").choice == "cache owned by root"


def test_no_cache_dir_is_reported_as_defeating_the_cache(make_plan: MakePlan) -> None:
    text = "FROM python\nRUN pip install --no-cache-dir x\n"
    plan = make_plan(docker_file=text, proxy=DOWN)
    assert decision(plan, "RUN line 2").choice == "cache defeated"


def test_no_proxy_option_forces_cache_mounts(make_plan: MakePlan) -> None:
    plan = make_plan(options=BuildOptions(no_proxy=True))
    assert plan.mode == "cache-mount"
    assert decision(plan, "mode").reason == "--no-proxy forces the fallback"


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
    assert "--no-proxy" in info.value.message


def test_proxy_off_wires_nothing(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: off\n")
    assert plan.mode == "off"
    assert plan.index_url is None
    assert not any("INDEX" in key for key in plan.build_env)
    assert not has_host_network(plan)
    assert decision(plan, "mode").choice == "off"


# --- external proxies and container builders ----------------------------------------------


def test_external_proxy_url_is_used_as_given(make_plan: MakePlan) -> None:
    url = "http://devpi.example:3141/root/pypi/+simple/"
    plan = make_plan(f"proxy: {{url: '{url}'}}\n")
    assert plan.index_url == url
    assert plan.build_env["PIP_INDEX_URL"] == url
    assert plan.build_env["PIP_TRUSTED_HOST"] == "devpi.example"
    assert decision(plan, "proxy address").reason == "an external proxy, used as given"
    assert not has_host_network(plan)
    assert decision(plan, "network").choice == "default"


def test_external_proxy_on_loopback_uses_host_network(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {url: 'http://localhost:3141/simple/'}\n")
    assert plan.index_url == "http://localhost:3141/simple/"
    assert has_host_network(plan)


def test_external_proxy_needs_no_builder_preparation(make_plan: MakePlan) -> None:
    plan = make_plan(
        "proxy: {url: 'https://proxy.example/simple/'}\n", builder_driver="docker-container"
    )
    assert plan.index_url == "https://proxy.example/simple/"
    assert plan.prepare == ()


def test_trusted_host_of_an_ipv6_index_without_port(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: {url: 'http://[fd00::1]/simple/'}\n")
    assert plan.build_env["PIP_TRUSTED_HOST"] in ("[fd00::1]", "fd00::1")


CONTAINER_FACTS = {
    "builder_driver": "docker-container",
    "proxy": ProxyFacts(healthy=True, reason="ok", address="172.18.0.5"),
}


def test_container_builder_reaches_the_proxy_by_its_network_ip(make_plan: MakePlan) -> None:
    plan = make_plan(**CONTAINER_FACTS)
    assert plan.mode == "proxy"
    assert plan.index_url == "http://172.18.0.5:5000/index/"
    assert plan.build_env["PIP_TRUSTED_HOST"] == "172.18.0.5"
    assert "--network" not in plan.argv
    assert decision(plan, "network").choice == "builder's"


def test_container_builder_must_be_created_on_the_proxy_network(make_plan: MakePlan) -> None:
    plan = make_plan(**CONTAINER_FACTS)
    assert plan.prepare == (
        (
            "docker",
            "buildx",
            "create",
            "--name",
            "orchestrator",
            "--driver",
            "docker-container",
            "--driver-opt",
            "network=orchestrator",
        ),
    )


def test_named_container_builder_is_used_and_prepared(make_plan: MakePlan) -> None:
    plan = make_plan("builder: ci\nproxy: {network: builds}\n", **CONTAINER_FACTS)
    assert option_values(plan, "--builder") == ["ci"]
    (create,) = plan.prepare
    assert create[create.index("--name") + 1] == "ci"
    assert create[-1] == "network=builds"


def test_prepared_builder_is_the_one_that_builds(make_plan: MakePlan) -> None:
    plan = make_plan(**CONTAINER_FACTS)
    (create,) = plan.prepare
    name = create[create.index("--name") + 1]
    assert option_values(plan, "--builder") == [name] or "--use" in create


def test_container_builder_without_proxy_address_fails_when_required(
    make_plan: MakePlan,
) -> None:
    facts = {**CONTAINER_FACTS, "proxy": HEALTHY}
    with pytest.raises(ProxyUnavailable, match="no address on network 'orchestrator'"):
        make_plan("proxy: require\n", **facts)


def test_container_builder_without_proxy_address_falls_back_in_auto(
    make_plan: MakePlan,
) -> None:
    plan = make_plan(**{**CONTAINER_FACTS, "proxy": HEALTHY})
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
    assert decision(plan, "build user").choice == "USER_ID=1234"


def test_dockerfile_without_user_args_gets_none(make_plan: MakePlan) -> None:
    plan = make_plan(docker_file="FROM python\nRUN id\n")
    assert build_args(plan) == {}
    assert decision(plan, "build user").choice == "none declared by the Dockerfile"


def test_root_host_user_maps_to_uid_1000_named_builder(make_plan: MakePlan) -> None:
    plan = make_plan(uid=0, gid=0, user_name="root", proxy=DOWN)
    assert build_args(plan) == {"USER_NAME": "builder", "USER_ID": "1000", "GROUP_ID": "1000"}
    assert "uid=1000,gid=1000,sharing=locked" in rendered_line(plan, "pip install")


def test_user_off_passes_no_user_args(make_plan: MakePlan) -> None:
    plan = make_plan("user: off\n")
    assert build_args(plan) == {}
    assert decision(plan, "build user").choice == "off"


def test_explicit_user_mapping(make_plan: MakePlan) -> None:
    plan = make_plan("user: {name: ci, uid: 2000, gid: 3000}\n", proxy=DOWN)
    assert build_args(plan) == {"USER_NAME": "ci", "USER_ID": "2000", "GROUP_ID": "3000"}
    assert "uid=2000,gid=3000,sharing=locked" in rendered_line(plan, "pip install")


def test_profile_build_args_override_the_orchestrator(make_plan: MakePlan) -> None:
    plan = make_plan("build_args: {USER_NAME: bob, EXTRA: 1}\n")
    assert build_args(plan) == {
        "USER_NAME": "bob",
        "USER_ID": "1234",
        "GROUP_ID": "2345",
        "EXTRA": "1",
    }
    assert len(option_values(plan, "--build-arg")) == 4


def test_numeric_user_owns_its_cache(make_plan: MakePlan) -> None:
    text = "FROM python\nUSER 4242:4343\nRUN pip install x\n"
    line = rendered_line(make_plan(docker_file=text, proxy=DOWN), "pip install")
    assert "uid=4242,gid=4343,sharing=locked" in line


# --- ssh, secrets, CA bundle --------------------------------------------------------------

SSH_FILE = """\
FROM python
ARG USER_NAME
RUN --mount=type=ssh git clone git@example.com:root.git
USER ${USER_NAME}
RUN --mount=type=ssh git clone git@example.com:user.git
"""


def test_ssh_without_agent_is_bad_input_naming_the_field(make_plan: MakePlan) -> None:
    with pytest.raises(BadInput) as info:
        make_plan("ssh: true\n", ssh_auth_sock=None)
    assert "app.yaml: field 'ssh'" in info.value.message
    assert "SSH_AUTH_SOCK" in info.value.message


def test_ssh_forwards_the_agent_socket(make_plan: MakePlan) -> None:
    plan = make_plan("ssh: true\n", ssh_auth_sock="/tmp/agent.sock")
    assert option_values(plan, "--ssh") == ["default=/tmp/agent.sock"]


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
    assert decision(plan, "secrets").choice == "token, netrc"


def test_secret_from_unset_env_is_bad_input(make_plan: MakePlan) -> None:
    with pytest.raises(BadInput) as info:
        make_plan("secrets: {token: {env: API_TOKEN}}\n", env_names=frozenset({"HOME"}))
    assert "field 'secrets.token.env'" in info.value.message
    assert "API_TOKEN is not set" in info.value.message


def test_ca_bundle_is_a_secret_never_a_build_arg(make_plan: MakePlan, profiles_dir: Path) -> None:
    bundle = profiles_dir / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nCA-CONTENT\n-----END CERTIFICATE-----\n")
    plan = make_plan(ca_bundle="ca.pem")
    assert f"id=orchestrator-ca,src={bundle}" in option_values(plan, "--secret")
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        assert plan.build_env[name] == "/run/secrets/orchestrator-ca"
    assert not any(str(bundle) in arg for arg in option_values(plan, "--build-arg"))
    assert "CA-CONTENT" not in " ".join(plan.argv)
    assert "--mount=type=secret,id=orchestrator-ca,mode=0444" in rendered_line(plan, "echo hello")


def test_ca_bundle_alone_still_renders_with_proxy_off(
    make_plan: MakePlan, profiles_dir: Path
) -> None:
    (profiles_dir / "ca.pem").write_text("x\n")
    plan = make_plan("proxy: off\n", ca_bundle="ca.pem")
    assert plan.rendered_path is not None
    assert "PIP_INDEX_URL" not in plan.build_env
    assert plan.build_env["PIP_CERT"] == "/run/secrets/orchestrator-ca"


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
    assert plan.build_env["PIP_INDEX_URL"] == CREDENTIAL_URL


# --- fresh, exec form ---------------------------------------------------------------------


def test_fresh_declares_a_fresh_arg_in_every_stage(make_plan: MakePlan) -> None:
    plan = make_plan(options=BuildOptions(fresh=True))
    assert plan.rendered_text is not None
    lines = plan.rendered_text.splitlines()
    froms = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(froms) == 2
    assert all(lines[i + 1] == "ARG ORCHESTRATE_FRESH" for i in froms)
    assert lines.count("ARG ORCHESTRATE_FRESH") == 2
    assert "ORCHESTRATE_FRESH=tok123" in option_values(plan, "--build-arg")


def test_fresh_never_uses_no_cache(make_plan: MakePlan) -> None:
    plan = make_plan(options=BuildOptions(fresh=True), proxy=DOWN)
    assert not any(arg.startswith("--no-cache") for arg in plan.argv)
    assert decision(plan, "fresh").choice == "every RUN step rebuilt"


def test_fresh_alone_renders_even_with_nothing_to_wire(make_plan: MakePlan) -> None:
    plan = make_plan("proxy: off\n", docker_file="FROM scratch\n", options=BuildOptions(fresh=True))
    assert plan.rendered_text == "FROM scratch\nARG ORCHESTRATE_FRESH\n"


def test_fresh_token_does_not_change_the_rendered_file(make_plan: MakePlan) -> None:
    first = make_plan(options=BuildOptions(fresh=True), fresh_token="a")
    second = make_plan(options=BuildOptions(fresh=True), fresh_token="b")
    assert first.rendered_path == second.rendered_path
    assert first.argv != second.argv


def test_exec_form_run_is_left_alone_with_a_decision(make_plan: MakePlan) -> None:
    plan = make_plan()
    assert rendered_line(plan, '"print(1)"') == 'RUN ["python", "-c", "print(1)"]'
    found = decision(plan, f"RUN line {EXEC_RUN}")
    assert found.choice == "not wired"
    assert "shell form" in found.reason


# --- the rendered file --------------------------------------------------------------------


def test_rendered_file_is_used_and_lives_in_the_render_dir(
    make_plan: MakePlan, tmp_path: Path
) -> None:
    plan = make_plan()
    assert plan.rendered_path is not None
    assert plan.rendered_path.parent == tmp_path / "rendered"
    assert plan.rendered_path.name.startswith("app-")
    assert option_values(plan, "--file") == [str(plan.rendered_path)]
    assert plan.dockerfile == tmp_path / "ctx" / "Dockerfile"  # the user's file, reported


def test_rendered_path_is_deterministic(make_plan: MakePlan) -> None:
    assert make_plan().rendered_path == make_plan().rendered_path


def test_rendered_path_changes_with_the_content(make_plan: MakePlan) -> None:
    first = make_plan()
    second = make_plan(docker_file=DOCKERFILE.replace("echo hello", "echo bye"))
    assert first.rendered_path != second.rendered_path
    assert first.rendered_path.parent == second.rendered_path.parent  # type: ignore[union-attr]


def test_rendered_text_parses_again(make_plan: MakePlan, tmp_path: Path) -> None:
    plan = make_plan(proxy=DOWN, options=BuildOptions(fresh=True))
    path = tmp_path / "again.Dockerfile"
    path.write_text(plan.rendered_text or "")
    again = dockerfile.parse(path)
    assert [s.name for s in again.stages] == ["base", "test"]
    assert len(again.runs) == 4
    assert "ORCHESTRATE_FRESH" in again.args
    pip = next(r for r in again.runs if "pip install" in r.command)
    assert sum(flag.startswith("--mount=type=cache") for flag in pip.flags) == 3


def test_nothing_to_wire_builds_the_original_file(make_plan: MakePlan, tmp_path: Path) -> None:
    plan = make_plan("proxy: off\n", docker_file="FROM python\nRUN echo hi\nCOPY . /src\n")
    assert plan.rendered_path is None
    assert plan.rendered_text is None
    assert plan.build_env == {}
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


# --- redaction ----------------------------------------------------------------------------


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


def test_as_dict_redacts_index_and_build_env(make_plan: MakePlan) -> None:
    data = make_plan(f"proxy: {{url: '{CREDENTIAL_URL}'}}\n").as_dict()
    assert data["index_url"] == "http://***@proxy.example/simple/"
    assert data["build_env"]["PIP_INDEX_URL"] == "http://***@proxy.example/simple/"
    assert PASSWORD not in json.dumps(data["build_env"])
    assert PASSWORD not in data["command"]


def test_as_dict_never_contains_an_index_password(make_plan: MakePlan) -> None:
    data = make_plan(f"proxy: {{url: '{CREDENTIAL_URL}'}}\n").as_dict()
    assert PASSWORD not in json.dumps(data)


def test_render_text_never_contains_an_index_password(make_plan: MakePlan) -> None:
    assert PASSWORD not in render_text(make_plan(f"proxy: {{url: '{CREDENTIAL_URL}'}}\n"))


def test_render_text_shows_mode_decisions_and_command(make_plan: MakePlan) -> None:
    plan = make_plan(proxy=DOWN)
    text = render_text(plan)
    assert "mode:       cache-mount" in text
    assert f"rendered:   {plan.rendered_path}" in text
    assert f"ORCHESTRATE_BUILD_ENV=... {plan.command_line}" in text
    assert "  PIP_INDEX_URL=https://pypi.org/simple/" in text


# --- the command python-on-whales runs ------------------------------------------------------------


def test_run_streaming_swaps_docker_for_the_client_command(
    make_plan: MakePlan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No daemon: the client is only configured, and the process runner is recorded."""
    binary = tmp_path / "bin" / "docker-like"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    client = DockerClient(client_call=[str(binary)], config="/tmp/docker-config")
    monkeypatch.setattr(engine, "_client", client)
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(full: list[str], **kwargs: object) -> None:
        calls.append((full, kwargs["env"]))  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "run", fake_run)
    plan = make_plan()
    engine.run_streaming(plan.argv, env=plan.secret_env)
    ((full, env),) = calls
    assert full == [str(binary), "--config", "/tmp/docker-config", *plan.argv[1:]]
    assert env == plan.secret_env
