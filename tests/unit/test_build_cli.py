"""`orchestrate build` and `orchestrate bake` run in process against the fake engine: the
command streamed, the lines that say what the build did and what the cache served, the
one line a failure ends with (through the proxy: the packages it could not serve), and
what a dry run and `bake --print` write."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds import execute
from orchestrator.profiles import ProfileStore
from tests.conftest import write_profile
from tests.support.cli import Ran, run_cli
from tests.support.engine import FakeEngine, inspected, refused
from tests.support.front import Front, Fronts, record
from tests.support.world import buildx

PIP = "FROM python\nRUN pip install demo\n"
PYTHON = inspected("python")  # PIP's base image, as the engine shows it
OFF = "context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\nproxy: off\n"
Interrupt = Callable[[], None] | None


pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py


def orchestrate(profiles_dir: Path, *args: str, engine: FakeEngine) -> Ran:
    return run_cli(
        "--profiles-dir", str(profiles_dir), "--log-format", "console", *args, engine=engine
    )


# --- build ------------------------------------------------------------------------------------


def test_a_build_streams_its_command_and_says_what_it_did(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    fake = FakeEngine(buildx())
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert ran.code == 0, ran.stderr
    context = profiles_dir.parent / "ctx"
    assert fake.streamed == [
        (
            "docker",
            "buildx",
            "build",
            "--file",
            str(context / "Dockerfile"),
            "--label",
            "io.orchestrator.profile=app",
            "--tag",
            "demo/app:1",
            "--load",
            str(context),
        )
    ]
    assert ran.lines == [
        "orchestrate: built app (off: the profile sets proxy: off; package installs are not wired)",
        "orchestrate: cache: none used (proxy: off)",
    ]


def test_a_build_with_json_prints_its_result(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    ran = orchestrate(profiles_dir, "build", "app", "--json", engine=FakeEngine(buildx()))
    assert json.loads(ran.stdout) == {
        "profile": "app",
        "mode": "off",
        "tags": ["demo/app:1"],
        "bypasses": [],
        "cache": {"mode": "off", "source": "none", "note": "none used (proxy: off)"},
    }


def test_a_failed_build_is_one_line_and_exit_4(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    fake = FakeEngine(buildx(), exit_codes=[1])
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert (ran.code, ran.lines) == (
        4,
        [
            "orchestrate: error: the build of profile 'app' failed (docker exited with 1); "
            "its output above says why"
        ],
    )


def test_a_build_with_the_engine_stopped_is_exit_3(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    fake = FakeEngine({"version": refused("Cannot connect to the Docker daemon", "version")})
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert ran.code == 3
    assert fake.streamed == []


def test_a_dry_run_prints_the_plan_and_writes_the_rendered_dockerfile(
    profiles_dir: Path, tmp_path: Path
) -> None:
    (profiles_dir.parent / "ctx" / "Dockerfile").write_text(PIP)
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: {mode: auto}\n")
    # the proxy is not asked: no container call is scripted
    fake = FakeEngine(buildx(), captured=dict(PYTHON))
    ran = orchestrate(
        profiles_dir, "build", "app", "--dry-run", "--no-proxy", "--json", engine=fake
    )
    assert ran.code == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert shown["mode"] == "cache-mount"
    rendered = Path(shown["rendered_dockerfile"])
    assert rendered.is_file()
    assert "--mount=type=cache" in rendered.read_text()
    assert fake.streamed == []


def test_a_dry_run_for_people_shows_the_command(profiles_dir: Path) -> None:
    write_profile(profiles_dir, "app", OFF)
    ran = orchestrate(profiles_dir, "build", "app", "--dry-run", engine=FakeEngine(buildx()))
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("  docker buildx build --file ")


# --- through the proxy: what it could not serve --------------------------------------------------


def through_proxy(profiles_dir: Path, front: Fronts, more: str = "") -> tuple[Front, Front]:
    """Profile 'app' (`pip install demo`) through a serving proxy whose upstream answers;
    ``more``: more of the proxy's settings, as lines of YAML."""
    (profiles_dir.parent / "ctx" / "Dockerfile").write_text(PIP)
    proxy, upstream = front({}), front({"/simple/": (200, "text/html", b"")})
    write_profile(
        profiles_dir,
        "app",
        "context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\nproxy:\n"
        f"  port: {proxy.port}\n  health_project: demo\n  ca_bundle: off\n"
        f"  index: http://127.0.0.1:{upstream.port}/simple/\n  index_ttl: 0\n{more}",
    )
    settings = ProfileStore(profiles_dir).resolve("app").profile.proxy
    proxy.is_the_engines(settings)
    proxy.serves()
    proxy.logs(record("/index/old/", at=1.0))  # before this build: never counted
    return proxy, upstream


def serving(proxy: Front, *records: dict[str, Any]) -> Callable[[tuple[str, ...], Interrupt], None]:
    """While the build runs, the front logs ``records`` after what it had."""
    before = proxy.routes["/_orchestrator/access.log"][2]

    def build(argv: tuple[str, ...], on_interrupt: Interrupt) -> None:
        text = before + "".join(json.dumps(r) + "\n" for r in records).encode()
        proxy.routes["/_orchestrator/access.log"] = (200, "text/plain", text)

    return build


def test_a_build_through_the_proxy_reports_what_the_cache_served(
    profiles_dir: Path, front: Fronts
) -> None:
    proxy, _ = through_proxy(profiles_dir, front)
    fake = FakeEngine(buildx(), captured=dict(PYTHON))
    fake.while_streaming = serving(
        proxy,
        record("/index/demo/"),
        record("/index/demo/demo-1.0-py3-none-any.whl", size=2048),
        record("/index/dep/dep-2.0.tar.gz", cache="MISS", size=1024),
    )
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert ran.code == 0, ran.stderr
    assert ran.lines[-2].startswith("orchestrate: built app (proxy: ")
    assert ran.lines[-1] == (
        "orchestrate: cache: 1 file (2.0 kB) served from the cache, 1 file (1.0 kB) fetched "
        "from the upstream (pip 1 cached/1 fetched)"
    )
    [env] = [c.kwargs["env"] for c in fake.made("stream")]
    assert "ORCHESTRATE_BUILD_ENV" in env, "the installers' settings go as a secret"
    assert f"http://127.0.0.1:{proxy.port}/index/" in env["ORCHESTRATE_BUILD_ENV"]


def test_a_build_says_which_steps_bypassed_the_proxy_beside_its_cache_line(
    profiles_dir: Path, front: Fronts
) -> None:
    """Issue 21: poetry without its mirror plugin went to PyPI while the only line said
    "nothing asked of the proxy"; a step's own --index-url was told in --dry-run only."""
    proxy, _ = through_proxy(profiles_dir, front)
    (profiles_dir.parent / "ctx" / "Dockerfile").write_text(
        "FROM python\nRUN poetry install --no-root\n"
        "RUN pip install -i https://x.example/simple/ a\n"
    )
    fake = FakeEngine(buildx(), captured=dict(PYTHON))
    fake.while_streaming = serving(proxy)
    ran = orchestrate(profiles_dir, "build", "app", "--json", engine=fake)
    assert ran.code == 0, ran.stderr
    assert ran.lines[-3].startswith("orchestrate: built app (proxy: ")
    assert ran.lines[-2] == (
        "orchestrate: not through the proxy: RUN line 2: poetry on its own index (poetry: no "
        "step installs poetry-plugin-pypi-mirror); RUN line 3: left as written: -i "
        "https://x.example/simple/ (the command names its own index)"
    )
    assert ran.lines[-1] == "orchestrate: cache: nothing asked of the proxy"
    result = json.loads(ran.stdout)
    assert [(b["line"], b["why"]) for b in result["bypasses"]] == [
        (2, "poetry: no step installs poetry-plugin-pypi-mirror"),
        (3, "the command names its own index"),
    ]


def test_a_build_through_a_proxy_published_beyond_loopback_warns_of_it(
    profiles_dir: Path, front: Fronts
) -> None:
    """A legitimate setting (one cache for a team's machines), never a silent one."""
    proxy, _ = through_proxy(profiles_dir, front, "  bind: 0.0.0.0\n")
    fake = FakeEngine(buildx(), captured=dict(PYTHON))
    fake.while_streaming = serving(proxy, record("/index/demo/"))
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert ran.code == 0, ran.stderr
    assert ran.lines[0] == (
        f"orchestrate: warning: the proxy's port is published on 0.0.0.0:{proxy.port}: "
        "every machine that reaches this host can use (and fill) the proxy's cache; "
        "proxy.bind: 127.0.0.1 keeps it to this machine"
    )
    assert ran.lines[1].startswith("orchestrate: built app (proxy: ")


def test_a_build_through_a_loopback_proxy_warns_of_nothing(
    profiles_dir: Path, front: Fronts
) -> None:
    proxy, _ = through_proxy(profiles_dir, front)
    fake = FakeEngine(buildx(), captured=dict(PYTHON))
    fake.while_streaming = serving(proxy, record("/index/demo/"))
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert ran.code == 0, ran.stderr
    assert "warning" not in ran.stderr


def test_a_failed_build_names_the_packages_the_proxy_could_not_serve(
    profiles_dir: Path, front: Fronts
) -> None:
    proxy, _ = through_proxy(profiles_dir, front)
    fake = FakeEngine(buildx(), captured=dict(PYTHON), exit_codes=[1])
    fake.while_streaming = serving(
        proxy,
        record("/index/demo/", status=502, cache="MISS"),
        record("/index/demo/", status=504, cache="MISS"),
        record("/index/fine/"),
    )
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert (ran.code, ran.lines[-1]) == (
        4,
        "orchestrate: error: the build of profile 'app' failed: the proxy could not serve "
        "demo (answered 502/504): see `orchestrate proxy logs`",
    )


def test_a_failed_offline_build_says_the_package_is_not_cached_and_why(
    profiles_dir: Path, front: Fronts
) -> None:
    proxy, upstream = through_proxy(profiles_dir, front)
    upstream.routes["/simple/"] = (503, "text/plain", b"")
    fake = FakeEngine(buildx(), captured=dict(PYTHON), exit_codes=[1])
    fake.while_streaming = serving(proxy, record("/offline/index/demo/", status=404, cache="MISS"))
    ran = orchestrate(profiles_dir, "build", "app", engine=fake)
    assert ran.code == 4
    assert ran.lines[-1].startswith(
        "orchestrate: error: the build of profile 'app' failed: demo is not in the proxy's "
        "cache, and the upstream is down (offline mode: "
    )
    assert "answered 503" in ran.lines[-1]


# --- writing the plan's files ---------------------------------------------------------------------


def test_an_unchanged_file_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "rendered" / "Dockerfile"
    execute.write_file(path, "FROM scratch\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    first = path.stat().st_ino
    execute.write_file(path, "FROM scratch\n")
    assert path.stat().st_ino == first
    execute.write_file(path, "FROM python\n")
    assert (path.read_text(), path.stat().st_ino != first) == ("FROM python\n", True)
    assert [p.name for p in path.parent.iterdir()] == ["Dockerfile"], "no temporary file left"


# --- bake -------------------------------------------------------------------------------------


def definition(targets: dict[str, Any]) -> Callable[..., Any]:
    """`buildx bake --print`: the builder's probe as buildx 0.29 prints it, else ``targets``."""
    probe = buildx()["buildx.bake"]

    def bake(names: list[str], *, files: list[Path], print: bool) -> Any:
        return probe(names, files, print) if names == ["probe"] else {"target": targets}

    return bake


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a bake file and a target's context."""
    work = tmp_path / "work"
    (work / "app").mkdir(parents=True)
    (work / "app" / "Dockerfile").write_text(PIP)
    (work / "docker-bake.hcl").write_text('target "app" {}\n')
    monkeypatch.chdir(work)
    return work


def bake_engine(targets: dict[str, Any] | None = None, **extra: Any) -> FakeEngine:
    chosen = targets if targets is not None else {"app": {"context": "app", "tags": ["demo/app:1"]}}
    return FakeEngine(
        {**buildx(), "buildx.bake": definition(chosen)}, captured=dict(PYTHON), **extra
    )


def test_bake_streams_bake_with_the_override_of_every_target(
    profiles_dir: Path, workdir: Path
) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: off\n")
    fake = bake_engine()
    ran = orchestrate(profiles_dir, "bake", "-p", "app", "app", engine=fake)
    assert ran.code == 0, ran.stderr
    [argv] = fake.streamed
    assert argv[:5] == ("docker", "buildx", "bake", "--file", "docker-bake.hcl")
    assert (argv[5], argv[-1]) == ("--file", "app")
    target = json.loads(Path(argv[6]).read_text())["target"]["app"]
    assert (target["output"], Path(target["dockerfile"]).is_file()) == (["type=docker"], True)
    assert ran.lines[-1] == "orchestrate: cache: none used (proxy: off)"


def test_a_bake_through_a_proxy_published_beyond_loopback_warns_once(
    profiles_dir: Path, workdir: Path, front: Fronts
) -> None:
    proxy, _ = through_proxy(profiles_dir, front, "  bind: 0.0.0.0\n")
    (workdir / "api").mkdir()
    (workdir / "api" / "Dockerfile").write_text(PIP)
    fake = bake_engine({"app": {"context": "app"}, "api": {"context": "api"}})
    ran = orchestrate(profiles_dir, "bake", "-p", "app", "app", "api", engine=fake)
    assert ran.code == 0, ran.stderr
    warned = [line for line in ran.lines if "warning" in line]
    assert warned == [
        f"orchestrate: warning: the proxy's port is published on 0.0.0.0:{proxy.port}: "
        "every machine that reaches this host can use (and fill) the proxy's cache; "
        "proxy.bind: 127.0.0.1 keeps it to this machine"
    ]


def test_a_failed_bake_is_one_line_and_exit_4(profiles_dir: Path, workdir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: off\n")
    ran = orchestrate(profiles_dir, "bake", "-p", "app", engine=bake_engine(exit_codes=[2]))
    assert (ran.code, ran.lines[-1]) == (
        4,
        "orchestrate: error: bake failed (docker exited with 2); its output above says why",
    )


def test_bake_dry_run_prints_each_target_and_the_command(profiles_dir: Path, workdir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: off\n")
    fake = bake_engine()
    ran = orchestrate(profiles_dir, "bake", "-p", "app", "--dry-run", engine=fake)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("== target app\n")
    assert "bake network: default: no target needs host networking" in ran.stdout
    assert ran.stdout.rstrip().endswith(
        "docker buildx bake --file docker-bake.hcl --file OVERRIDE.json"
    )
    assert fake.streamed == []


def test_bake_print_writes_the_settings_to_a_private_file(
    profiles_dir: Path, workdir: Path, front: Fronts
) -> None:
    proxy, _ = through_proxy(profiles_dir, front)
    ran = orchestrate(profiles_dir, "bake", "-p", "app", "--print", "--json", engine=bake_engine())
    assert ran.code == 0, ran.stderr
    exported = json.loads(ran.stdout)
    [secret] = [s for s in exported["override"]["target"]["app"]["secret"] if "pip-lock" not in s]
    settings = Path(secret.partition(",src=")[2])
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert f"127.0.0.1:{proxy.port}" in settings.read_text()
    assert f"--allow=fs.read={settings}" in exported["argv"]
    assert exported["command"].startswith("docker buildx bake --file docker-bake.hcl --file ")


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (
            refused("ERROR: failed to parse docker-bake.hcl: bad block", "buildx", "bake"),
            "bake could not read docker-bake.hcl: docker refused to read the bake definition: "
            "ERROR: failed to parse docker-bake.hcl: bad block",
        ),
        ("not a definition", "bake printed no definition"),
    ],
)
def test_a_bake_file_bake_cannot_read_is_one_line_and_exit_2(
    profiles_dir: Path, workdir: Path, answer: Any, line: str
) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: off\n")
    fake = FakeEngine({**buildx(), "buildx.bake": answer})
    ran = orchestrate(profiles_dir, "bake", "-p", "app", engine=fake)
    assert (ran.code, ran.lines[-1]) == (2, f"orchestrate: error: {line}")


@pytest.mark.parametrize(
    ("targets", "line"),
    [
        ({}, "no bake targets selected from docker-bake.hcl"),
        ({"web": {"context": "web"}}, "bake target 'web': Dockerfile "),
    ],
)
def test_bake_targets_that_cannot_be_planned_are_one_line_and_exit_2(
    profiles_dir: Path, workdir: Path, targets: dict[str, Any], line: str
) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: off\n")
    ran = orchestrate(profiles_dir, "bake", "-p", "app", engine=bake_engine(targets))
    assert ran.code == 2
    assert ran.lines[-1].startswith(f"orchestrate: error: {line}")


def test_a_missing_bake_file_is_one_line_and_exit_2(profiles_dir: Path, workdir: Path) -> None:
    write_profile(profiles_dir, "app", "context: ../ctx\nca_bundle: off\nproxy: off\n")
    ran = orchestrate(profiles_dir, "bake", "-p", "app", "-f", "nope.hcl", engine=bake_engine())
    assert (ran.code, ran.lines[-1]) == (2, "orchestrate: error: nope.hcl: bake file not found")
