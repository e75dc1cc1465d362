"""Planning `orchestrate run` and `orchestrate env`: a profile and facts become the exact
`docker run`, and the same wiring for tools that start containers themselves."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from orchestrator import dockerfile
from orchestrator.errors import BadInput, ProxyUnavailable
from orchestrator.facts.model import (
    ComposeService,
    HostFacts,
    ImageFacts,
    ProxyFacts,
    RunFacts,
    TerminalFacts,
)
from orchestrator.plan.build import plan_build
from orchestrator.plan.containers import RunOptions, RunPlan
from orchestrator.plan.run import plan_run
from orchestrator.plan.wiring import plan_wiring
from orchestrator.profiles import ProfileStore, ResolvedProfile
from orchestrator.run import render
from tests.conftest import write_profile

HEALTHY = ProxyFacts(healthy=True, reason="served the pip page (200)")
DOWN = ProxyFacts(healthy=False, reason="no proxy container")
PROXY = "proxy:\n  name: pp\n  network: ci_shared\n"
SECRET_DIR = Path("/dev/shm/orchestrate-run-abc")
LOCK_DIR = Path("/opt/venv/orchestrator/resources/pipcache")
PASSWORD = "s3cret"

Resolve = Callable[[str], ResolvedProfile]
MakeRun = Callable[..., RunPlan]


@pytest.fixture
def resolve(profiles_dir: Path) -> Resolve:
    def make(profile: str = "") -> ResolvedProfile:
        ca = "" if "ca_bundle:" in profile else "ca_bundle: off\n"
        text = f"context: ../ctx\n{ca}tags: [demo/app:1, demo/app:latest]\n{profile}"
        write_profile(profiles_dir, "app", text)
        return ProfileStore(profiles_dir).resolve("app")

    return make


def facts(**changes: object) -> RunFacts:
    """Host user alice (1234:2345), a healthy proxy, no terminal."""
    host: dict[str, object] = {"uid": 1234, "gid": 2345, "user_name": "alice", "proxy": HEALTHY}
    host.update({k: v for k, v in changes.items() if k in HostFacts.__dataclass_fields__})
    run: dict[str, object] = {"secret_dir": SECRET_DIR, "token": "t0k", "pip_lock_dir": LOCK_DIR}
    run.update({k: v for k, v in changes.items() if k in RunFacts.__dataclass_fields__})
    return RunFacts(host=HostFacts(**host), **run)  # type: ignore[arg-type]


@pytest.fixture
def make_run(resolve: Resolve) -> MakeRun:
    def make(profile: str = PROXY, options: RunOptions | None = None, **changes: object) -> RunPlan:
        return plan_run(resolve(profile), facts(**changes), options or RunOptions())

    return make


def values(argv: tuple[str, ...], option: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == option]


def env_of(plan: RunPlan) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values(plan.argv, "--env"))


def decision(plan: RunPlan, topic: str) -> str:
    (found,) = [f"{d.choice}: {d.reason}" for d in plan.all_decisions if d.topic == topic]
    return found


# --- proxy mode: the proxy's network, reached by name --------------------------------------


def test_a_run_joins_the_proxy_network_and_reaches_it_by_name(make_run: MakeRun) -> None:
    plan = make_run(options=RunOptions(command=("pip", "install", "numpy")))
    assert plan.wiring.mode == "proxy"
    assert values(plan.argv, "--network") == ["ci_shared"]
    env = env_of(plan)
    assert env["PIP_INDEX_URL"] == "http://pp:5000/index/"
    assert "UV_DEFAULT_INDEX" not in env, "uv run would rewrite a mounted uv.lock"
    assert "rewrite a mounted project's uv.lock" in decision(plan, "uv")
    assert env["PIP_TRUSTED_HOST"] == "pp"
    assert env["PIP_CONFIG_FILE"] == "/dev/null", "no pip.conf can add an extra index"
    assert "PIP_CACHE_DIR" not in env
    assert plan.argv[-4:] == ("demo/app:1", "pip", "install", "numpy")


def test_a_run_through_a_proxy_published_beyond_loopback_says_so(make_run: MakeRun) -> None:
    plan = make_run(PROXY + "  bind: 0.0.0.0\n")
    assert decision(plan, "proxy exposure").startswith(
        "0.0.0.0:5000: every machine that reaches this host can use (and fill) the proxy's cache"
    )


def test_a_run_is_removed_named_and_labelled(make_run: MakeRun) -> None:
    plan = make_run()
    assert plan.argv[:3] == ("docker", "run", "--rm")
    assert values(plan.argv, "--name") == ["orchestrator-run-app-t0k"] == [plan.name]
    assert "--init" in plan.argv
    labels = values(plan.argv, "--label")
    assert "io.orchestrator.owner=orchestrator" in labels
    assert "io.orchestrator.run=app" in labels
    kept = make_run(options=RunOptions(keep=True))
    assert "--rm" not in kept.argv
    assert kept.remove is False


def test_the_image_is_the_first_tag_or_the_one_given(make_run: MakeRun) -> None:
    assert make_run().image == "demo/app:1"
    assert make_run(options=RunOptions(image="python:3.12")).image == "python:3.12"


def test_a_profile_without_tags_needs_an_image(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\n")
    resolved = ProfileStore(profiles_dir).resolve("app")
    with pytest.raises(BadInput, match="give --image"):
        plan_run(resolved, facts(), RunOptions())
    assert plan_run(resolved, facts(), RunOptions(image="x:1")).image == "x:1"


def test_offline_runs_use_the_fronts_cache_only_twin(make_run: MakeRun) -> None:
    offline = ProxyFacts(healthy=True, reason="ok", offline="upstream unreachable")
    plan = make_run(proxy=offline)
    assert plan.wiring.mode == "offline"
    assert env_of(plan)["PIP_INDEX_URL"] == "http://pp:5000/offline/index/"


def test_an_external_proxy_is_used_as_given(make_run: MakeRun) -> None:
    remote = make_run("proxy: {url: 'http://cache.internal:5000/index/'}")
    assert env_of(remote)["PIP_INDEX_URL"] == "http://cache.internal:5000/index/"
    assert values(remote.argv, "--network") == []
    local = make_run("proxy: {url: 'http://127.0.0.1:5000/index/'}")
    assert values(local.argv, "--network") == ["host"]
    offline = ProxyFacts(healthy=True, reason="ok", offline="down")
    assert make_run("proxy: {url: 'http://c.internal/i/'}", proxy=offline).wiring.mode == "proxy"


def test_credentials_in_the_index_are_hidden_from_the_printed_plan(make_run: MakeRun) -> None:
    plan = make_run(f"proxy: {{url: 'http://u:{PASSWORD}@cache.internal/simple/'}}")
    assert PASSWORD in plan.process_env["PIP_INDEX_URL"], "the container needs it"
    assert "PIP_INDEX_URL" in values(plan.argv, "--env"), "docker takes it from its environment"
    assert PASSWORD not in " ".join(plan.argv), "ps shows every local user the command line"
    assert "PIP_INDEX_URL=... " in render.run_text(plan)
    assert PASSWORD not in render.run_text(plan)
    assert PASSWORD not in json.dumps(render.run_dict(plan))


# --- the fallback: a named cache volume ------------------------------------------------------


def test_a_proxy_that_cannot_serve_gives_the_cache_volume(make_run: MakeRun) -> None:
    plan = make_run(PROXY + "user: host\n", proxy=DOWN, network_exists=True)
    wiring = plan.wiring
    assert wiring.mode == "cache-volume"
    assert "no proxy container" in wiring.mode_reason
    assert wiring.cache is not None
    assert (wiring.cache.name, wiring.cache.uid, wiring.cache.gid) == (
        "orchestrator-run-1234",
        1234,
        2345,
    )
    assert wiring.cache.image == "demo/app:1", "its root user chowns the new volume"
    mounts = values(plan.argv, "--mount")
    assert "type=volume,source=orchestrator-run-1234,target=/var/cache/orchestrator" in mounts
    env = env_of(plan)
    assert env["PIP_CACHE_DIR"] == "/var/cache/orchestrator/pip"
    assert env["UV_CACHE_DIR"] == "/var/cache/orchestrator/uv"
    assert "PIP_INDEX_URL" not in env, "the upstream is PyPI, the installers' default"
    assert values(plan.argv, "--network") == ["ci_shared"], "the same network as in proxy mode"


def test_older_pips_share_the_volume_under_a_lock(make_run: MakeRun) -> None:
    plan = make_run(PROXY + "user: host\n", proxy=DOWN)
    env = env_of(plan)
    assert env["ORCHESTRATE_PIP_LOCK"] == "/var/cache/orchestrator/pip.lock"
    assert env["PYTHONPATH"] == "/opt/orchestrator/python"
    lock_mount = f"type=bind,source={LOCK_DIR},target=/opt/orchestrator/python,readonly"
    assert lock_mount in values(plan.argv, "--mount")
    assert "pypa/pip#13540" in decision(plan, "pip cache lock")
    image = ImageFacts(present=True, env={"PYTHONPATH": "/app/src"})
    assert (
        env_of(make_run(PROXY + "user: host\n", proxy=DOWN, image=image))["PYTHONPATH"]
        == "/opt/orchestrator/python:/app/src"
    )


def test_the_fallback_network(make_run: MakeRun) -> None:
    assert values(make_run(proxy=DOWN, network_exists=False).argv, "--network") == []
    loopback = make_run(PROXY + "  index: http://127.0.0.1:8080/simple/", proxy=DOWN)
    assert values(loopback.argv, "--network") == ["host"]
    assert env_of(loopback)["PIP_INDEX_URL"] == "http://127.0.0.1:8080/simple/"
    assert "PIP_CONFIG_FILE" not in env_of(loopback), "only proxy mode ignores pip.conf"


def test_no_proxy_forces_the_fallback_and_contradicts_require(make_run: MakeRun) -> None:
    plan = make_run(options=RunOptions(no_proxy=True), proxy=None)
    assert plan.wiring.mode == "cache-volume"
    assert "--no-proxy" in plan.wiring.mode_reason
    with pytest.raises(BadInput, match="require"):
        make_run(PROXY + "  mode: require", options=RunOptions(no_proxy=True), proxy=None)


def test_require_fails_when_the_proxy_cannot_serve(make_run: MakeRun) -> None:
    with pytest.raises(ProxyUnavailable, match="requires the proxy: no proxy container"):
        make_run(PROXY + "  mode: require", proxy=DOWN)


def test_proxy_off_wires_no_index_and_no_volume(make_run: MakeRun) -> None:
    plan = make_run("proxy: off", proxy=None)
    assert plan.wiring.mode == "off"
    assert plan.wiring.cache is None
    assert not {"PIP_INDEX_URL", "PIP_CACHE_DIR"} & set(env_of(plan))


# --- the user, the same rule as builds -------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "uid", "gid", "expected"),
    [
        ("user: host\n", 1234, 2345, "1234:2345"),
        ("user: host\n", 0, 0, "1000:1000"),
        ("user: {name: app, uid: 4000, gid: 4001}\n", 1234, 2345, "4000:4001"),
        ("user: host\nbuild_args: {USER_ID: 5000, GROUP_ID: 5001}\n", 1234, 2345, "5000:5001"),
    ],
)
def test_the_run_user_is_the_build_user(
    resolve: Resolve, profile: str, uid: int, gid: int, expected: str
) -> None:
    resolved = resolve(PROXY + profile)
    plan = plan_run(resolved, facts(uid=uid, gid=gid), RunOptions())
    assert values(plan.argv, "--user") == [expected]
    (resolved.profile.context / "Dockerfile").write_text(
        "FROM scratch\nARG USER_NAME\nARG USER_ID\nARG GROUP_ID\n"
    )
    build = plan_build(
        resolved,
        dockerfile.parse(resolved.profile.dockerfile_path),
        HostFacts(uid=uid, gid=gid, user_name="alice", proxy=HEALTHY, render_dir=Path("/r")),
    )
    assert f"{build.build_args['USER_ID']}:{build.build_args['GROUP_ID']}" == expected


def test_a_profile_naming_no_user_keeps_the_image_user_in_runs_not_in_builds(
    resolve: Resolve,
) -> None:
    """uv's example image runs as root and uv fails as 1000:1000 (/.cache/uv), where plain
    docker run works: a run imposes a user only when the profile names one."""
    resolved = resolve(PROXY)
    plan = plan_run(resolved, facts(), RunOptions())
    assert values(plan.argv, "--user") == []
    assert "the profile names no user" in decision(plan, "user")
    (resolved.profile.context / "Dockerfile").write_text("FROM scratch\nARG USER_ID\n")
    build = plan_build(
        resolved,
        dockerfile.parse(resolved.profile.dockerfile_path),
        HostFacts(uid=1234, gid=2345, user_name="alice", proxy=HEALTHY, render_dir=Path("/r")),
    )
    assert build.build_args["USER_ID"] == "1234", "builds still get the invoking user's id"


def test_a_compose_service_keeps_its_own_user_and_the_fragment_says_so(resolve: Resolve) -> None:
    named = plan_wiring(resolve(PROXY + "user: host\n"), facts(), RunOptions(), "demo/app:1")
    services = (ComposeService("app", user="root"), ComposeService("worker"))
    text = render.compose(named, services)
    fragment = yaml.safe_load(text)
    assert "user" not in fragment["services"]["app"]
    assert fragment["services"]["worker"]["user"] == "1234:2345"
    assert "# app: keeps its own user 'root', not the profile's 1234:2345" in text
    unnamed = plan_wiring(resolve(PROXY), facts(), RunOptions(), "demo/app:1")
    plain = yaml.safe_load(render.compose(unnamed, services))
    assert not [s for s in plain["services"].values() if "user" in s]


def test_user_off_keeps_the_image_user_and_owns_the_volume_by_it(make_run: MakeRun) -> None:
    numeric = make_run(PROXY + "user: off\n", proxy=DOWN, image=ImageFacts(True, user="700:701"))
    assert values(numeric.argv, "--user") == []
    assert numeric.wiring.cache is not None
    assert (numeric.wiring.cache.uid, numeric.wiring.cache.gid) == (700, 701)
    root = make_run(PROXY + "user: off\n", proxy=DOWN, image=ImageFacts(True, user=""))
    assert root.wiring.cache is not None
    assert root.wiring.cache.uid == 0
    named = make_run(PROXY + "user: off\n", proxy=DOWN, image=ImageFacts(True, user="app"))
    assert named.wiring.cache is None
    assert "cannot tell the uid" in decision(named, "cache volume")


# --- an engine elsewhere: no path of this machine handed to it (issue 20) --------------------


def test_an_engine_elsewhere_gets_no_bundle_of_this_machine(
    make_run: MakeRun, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("CA")
    plan = make_run(PROXY + "ca_bundle: auto\n", host_ca_bundle=bundle, files_shared=False)
    assert not [m for m in values(plan.argv, "--mount") if str(bundle) in m]
    assert "PIP_CERT" not in env_of(plan)
    (ca,) = [d for d in plan.all_decisions if d.topic == "CA bundle"]
    assert (ca.choice, ca.reason.startswith("the engine is elsewhere")) == ("none", True)
    with pytest.raises(BadInput) as refused:
        make_run(PROXY + f"ca_bundle: {bundle}\n", files_shared=False)
    assert "field 'ca_bundle': the engine is elsewhere" in refused.value.message


@pytest.mark.parametrize(
    ("profile", "field"),
    [("ssh: true\n", "ssh"), ("secrets:\n  token: {env: MY_TOKEN}\n", "secrets")],
)
def test_what_an_engine_elsewhere_cannot_see_is_refused_in_one_line(
    make_run: MakeRun, profile: str, field: str
) -> None:
    with pytest.raises(BadInput) as refused:
        make_run(
            PROXY + profile,
            files_shared=False,
            ssh_auth_sock="/tmp/agent.sock",
            env_names=frozenset({"MY_TOKEN"}),
        )
    line = refused.value.message
    assert f"field '{field}': the engine is elsewhere and cannot see" in line
    assert "\n" not in line
    assert len(line) - len(line.partition(":")[0]) < 140, line  # the path aside


def test_the_fallback_keeps_no_shared_cache_on_an_engine_elsewhere(make_run: MakeRun) -> None:
    """The lock that keeps older pips from corrupting a shared cache is a file here."""
    plan = make_run(proxy=DOWN, files_shared=False)
    assert plan.wiring.mode == "cache-volume"
    assert plan.wiring.cache is None
    assert not [m for m in values(plan.argv, "--mount") if "pipcache" in m]
    (cache,) = [d for d in plan.all_decisions if d.topic == "cache volume"]
    assert cache.choice == "none"


# --- what else a build gets: CA bundle, ssh-agent, secrets ----------------------------------


def test_the_ca_bundle_is_mounted_read_only_and_named(make_run: MakeRun, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("CA")
    plan = make_run(PROXY + f"ca_bundle: {bundle}\n")
    target = "/etc/orchestrator/ca-bundle.crt"
    assert f"type=bind,source={bundle},target={target},readonly" in values(plan.argv, "--mount")
    env = env_of(plan)
    assert {env[n] for n in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")} == {target}


def test_the_ssh_agent_socket_is_mounted_when_forwarded(make_run: MakeRun) -> None:
    plan = make_run(PROXY + "ssh: true\n", ssh_auth_sock="/tmp/agent.sock")
    mount = "type=bind,source=/tmp/agent.sock,target=/run/orchestrator/ssh-agent.sock"
    assert mount in values(plan.argv, "--mount")
    assert env_of(plan)["SSH_AUTH_SOCK"] == "/run/orchestrator/ssh-agent.sock"
    with pytest.raises(BadInput, match="SSH_AUTH_SOCK"):
        make_run(PROXY + "ssh: true\n")


def test_secrets_are_private_files_never_variables(make_run: MakeRun, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    profile = PROXY + f"secrets:\n  token: {{env: MY_TOKEN}}\n  key: {{file: {key}}}\n"
    plan = make_run(profile, env_names=frozenset({"MY_TOKEN"}))
    assert [c.path for c in plan.copies] == [SECRET_DIR / "token", SECRET_DIR / "key"]
    assert plan.secret_dir == SECRET_DIR
    assert plan.copies[0].secret.variable == "MY_TOKEN"
    assert plan.copies[1].secret.file == key
    mounts = values(plan.argv, "--mount")
    for name in ("token", "key"):
        assert f"type=bind,source={SECRET_DIR}/{name},target=/run/secrets/{name},readonly" in mounts
    assert not [word for word in plan.argv if "MY_TOKEN" in word]
    with pytest.raises(BadInput, match="MY_TOKEN is not set"):
        make_run(profile)


@pytest.mark.parametrize(
    ("host_uid", "profile", "owner", "mode"),
    [
        (0, "user: host\n", (1000, 1000), 0o400),  # root gives the file to the run's user
        (1234, "user: host\n", None, 0o400),  # the host user runs as itself: its own file
        (1234, "", None, 0o444),  # the image's user, whoever that is
        (1234, "user: {name: app, uid: 4000, gid: 4000}\n", None, 0o444),
        (1234, "user: off\n", None, 0o444),
    ],
)
def test_secret_copies_are_readable_by_the_run_user(
    make_run: MakeRun, host_uid: int, profile: str, owner: tuple[int, int] | None, mode: int
) -> None:
    text = PROXY + profile + "secrets:\n  token: {env: MY_TOKEN}\n"
    plan = make_run(
        text, uid=host_uid, gid=2345 if host_uid else 0, env_names=frozenset({"MY_TOKEN"})
    )
    (copy,) = plan.copies
    assert (copy.owner, copy.mode) == (owner, mode)


# --- the terminal and extra options ---------------------------------------------------------


@pytest.mark.parametrize(
    ("terminal", "flags"),
    [
        (TerminalFacts(stdin_tty=True, stdout_tty=True), ["--interactive", "--tty"]),
        (TerminalFacts(stdin_tty=True, stdout_tty=False), ["--interactive"]),
        (TerminalFacts(stdin_readable=True), []),  # a loop's input is not swallowed
        (TerminalFacts(), []),
    ],
)
def test_interactive_and_tty_follow_the_terminal(
    make_run: MakeRun, terminal: TerminalFacts, flags: list[str]
) -> None:
    argv = make_run(terminal=terminal).argv
    assert [w for w in argv if w in ("--interactive", "--tty")] == flags


def test_docker_options_come_before_the_image_split_as_a_shell_would(make_run: MakeRun) -> None:
    options = RunOptions(docker_opts=("--memory=1g", "-e 'A=b c'"), command=("true",))
    argv = make_run(options=options).argv
    assert argv[-5:] == ("--memory=1g", "-e", "A=b c", "demo/app:1", "true")


@pytest.mark.parametrize("option", ["--name=x", "--name x", "-d", "--detach"])
def test_options_orchestrate_relies_on_are_refused(make_run: MakeRun, option: str) -> None:
    with pytest.raises(BadInput, match="leave out --name and --detach"):
        make_run(options=RunOptions(docker_opts=(option,)))


def test_the_dry_run_text_says_what_and_why(make_run: MakeRun) -> None:
    plan = make_run(options=RunOptions(command=("sh", "-c", "exit 3")))
    text = render.run_text(plan)
    assert "mode:       proxy" in text
    assert "network: ci_shared (the proxy's network" in text
    assert text.endswith(shlex.join(plan.argv))
    data = render.run_dict(plan)
    assert data["argv"] == list(plan.argv)
    assert data["container"] == plan.name


# --- env renderings -------------------------------------------------------------------------


def test_compose_fragment_keeps_default_and_adds_the_proxy_network(resolve: Resolve) -> None:
    wiring = plan_wiring(resolve(PROXY + "user: host\n"), facts(), RunOptions(), "demo/app:1")
    services = (
        ComposeService("app"),
        ComposeService("worker", networks=True),
        ComposeService("host", network_mode="host"),
    )
    fragment = yaml.safe_load(render.compose(wiring, services))
    app = fragment["services"]["app"]
    assert app["networks"] == {"default": {}, "orchestrator-proxy": {}}
    assert fragment["services"]["worker"]["networks"] == {"orchestrator-proxy": {}}
    assert "networks" not in fragment["services"]["host"]
    assert fragment["networks"] == {"orchestrator-proxy": {"name": "ci_shared", "external": True}}
    assert app["environment"]["PIP_INDEX_URL"] == "http://pp:5000/index/"
    assert app["user"] == "1234:2345"


def test_compose_fragment_of_the_fallback_and_secrets(resolve: Resolve, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    profile = PROXY + f"user: host\nsecrets:\n  token: {{env: MY_TOKEN}}\n  key: {{file: {key}}}\n"
    changes = {"proxy": DOWN, "env_names": frozenset({"MY_TOKEN"})}
    wiring = plan_wiring(resolve(profile), facts(**changes), RunOptions(), "demo/app:1")
    fragment = yaml.safe_load(render.compose(wiring, (ComposeService("app"),)))
    assert fragment["volumes"] == {
        "orchestrator-cache": {"name": "orchestrator-run-1234", "external": True}
    }
    app = fragment["services"]["app"]
    assert {
        "type": "volume",
        "source": "orchestrator-cache",
        "target": "/var/cache/orchestrator",
        "read_only": False,
    } in app["volumes"]
    assert app["secrets"] == [
        {"source": "orchestrator-token", "target": "token"},
        {"source": "orchestrator-key", "target": "key"},
    ]
    assert fragment["secrets"] == {
        "orchestrator-token": {"environment": "MY_TOKEN"},
        "orchestrator-key": {"file": str(key)},
    }


def test_compose_escapes_dollars(resolve: Resolve) -> None:
    wiring = plan_wiring(
        resolve("proxy: {url: 'http://u:p$w@c.internal/i/'}"), facts(), RunOptions()
    )
    app = yaml.safe_load(render.compose(wiring, (ComposeService("app"),)))["services"]["app"]
    assert app["environment"]["PIP_INDEX_URL"] == "http://u:p$$w@c.internal/i/"


def test_shell_and_docker_formats(resolve: Resolve, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k")
    profile = PROXY + f"secrets:\n  token: {{env: MY_TOKEN}}\n  key: {{file: {key}}}\n"
    wiring = plan_wiring(resolve(profile), facts(env_names=frozenset({"MY_TOKEN"})), RunOptions())
    exports = dict(
        shlex.split(line)[1].split("=", 1)
        for line in render.shell(wiring).splitlines()
        if line.startswith("export ")
    )
    assert exports == dict(wiring.env)
    words = shlex.split(render.docker_line(wiring))
    assert values(tuple(words), "--network") == ["ci_shared"]
    assert f"type=bind,source={key},target=/run/secrets/key,readonly" in words
    assert [s.id for s in render.unmountable(wiring)] == ["token"]
    data = render.wiring_dict(wiring)
    assert data["docker_args"] == words
    assert json.loads(json.dumps(data)) == data
