"""`orchestrate proxy up|status|down|logs|image|stats|prune` as a user types them, run in
process against the fake engine: what each prints, its exit code, and the one line it
ends with when it cannot do its work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.proxy.front import CACHE_PATH
from orchestrator.proxy.spec import OWNER, OWNER_LABEL
from tests.conftest import write_profile
from tests.support.cli import Ran, run_cli
from tests.support.engine import FakeEngine, container, refused
from tests.support.front import JSON_TYPE, PAGE, Fronts, closed_port
from tests.support.world import World

IMAGES = {"epicwink/proxpi:1.4.0a1", "nginx:1.27-alpine"}
FRONT = "orchestrator-proxpi"
BACKEND = "orchestrator-proxpi-backend"
UNREACHABLE = (
    "orchestrate: error: cannot reach the Docker engine (start dockerd, or run scripts/setup)"
)


pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py


def orchestrate(profiles_dir: Path, *args: str, engine: FakeEngine) -> Ran:
    return run_cli(
        "--profiles-dir", str(profiles_dir), "--log-format", "console", *args, engine=engine
    )


def profile(profiles_dir: Path, port: int, extra: str = "") -> None:
    """Profile 'app' with its proxy on ``port``, checked by the page of project 'demo'."""
    text = f"context: ../ctx\nproxy:\n  port: {port}\n  health_project: demo\n  ca_bundle: off\n"
    write_profile(profiles_dir, "app", text + extra)


def fields(stdout: str) -> dict[str, str]:
    """`proxy status` for people: one 'key: value' a line."""
    return {k: v.strip() for k, _, v in (line.partition(":") for line in stdout.splitlines())}


def silent() -> FakeEngine:
    return FakeEngine({"version": refused("Cannot connect to the Docker daemon", "version")})


# --- up and status ----------------------------------------------------------------------------


def test_proxy_up_creates_the_proxy_and_prints_its_status(
    profiles_dir: Path, front: Fronts
) -> None:
    served = front({})
    served.serves()
    profile(profiles_dir, served.port)
    world = World(images=IMAGES)
    ran = orchestrate(profiles_dir, "proxy", "up", "--profile", "app", engine=world.engine())
    assert ran.code == 0, ran.stderr
    shown = fields(ran.stdout)
    assert (shown["name"], shown["state"], shown["healthy"]) == (FRONT, "running", "True")
    assert sorted(world.containers) == [FRONT, BACKEND]
    assert world.containers[FRONT].config.labels["io.orchestrator.proxy-profile"] == "app"


def test_proxy_up_with_the_engine_stopped_is_one_line_and_exit_3(profiles_dir: Path) -> None:
    fake = silent()
    ran = orchestrate(profiles_dir, "proxy", "up", engine=fake)
    assert (ran.code, ran.stdout, ran.lines) == (3, "", [UNREACHABLE])
    assert fake.verbs() == ["version"]


def test_proxy_status_of_an_absent_proxy_exits_5(profiles_dir: Path) -> None:
    ran = orchestrate(profiles_dir, "proxy", "status", engine=World().engine())
    assert ran.code == 5
    assert (fields(ran.stdout)["state"], fields(ran.stdout)["reason"]) == (
        "absent",
        "no proxy container",
    )


def test_proxy_status_as_json_of_a_serving_proxy_exits_0(profiles_dir: Path, front: Fronts) -> None:
    served = front({})
    served.serves()
    profile(profiles_dir, served.port)
    world = World(images=IMAGES)
    orchestrate(profiles_dir, "proxy", "up", "--profile", "app", engine=world.engine())
    ran = orchestrate(
        profiles_dir, "proxy", "status", "--profile", "app", "--json", engine=world.engine()
    )
    assert ran.code == 0, ran.stderr
    status = json.loads(ran.stdout)
    assert (status["state"], status["healthy"], status["backend"]) == ("running", True, "running")


def test_proxy_status_of_an_external_proxy_asks_no_engine(
    profiles_dir: Path, front: Fronts
) -> None:
    served = front({"/simple/demo/": (200, JSON_TYPE, PAGE)})
    url = f"http://127.0.0.1:{served.port}/simple/"
    write_profile(
        profiles_dir, "app", f"context: ../ctx\nproxy:\n  url: {url}\n  health_project: demo\n"
    )
    fake = FakeEngine()
    ran = orchestrate(profiles_dir, "proxy", "status", "--profile", "app", engine=fake)
    assert ran.code == 0, ran.stderr
    assert fields(ran.stdout)["state"] == "external"
    assert fake.calls == []


# --- down and logs ----------------------------------------------------------------------------


def ours(name: str) -> Any:
    return container(f"id-{name}", name=name, labels={OWNER_LABEL: OWNER})


def test_proxy_down_says_what_it_removed(profiles_dir: Path) -> None:
    world = World(containers=[ours(FRONT), ours(BACKEND)])
    ran = orchestrate(profiles_dir, "proxy", "down", engine=world.engine())
    assert (ran.code, ran.stdout.splitlines()) == (
        0,
        [f"removed container {FRONT}", f"removed container {BACKEND}"],
    )
    assert world.containers == {}


def test_proxy_down_with_nothing_there_says_so(profiles_dir: Path) -> None:
    ran = orchestrate(profiles_dir, "proxy", "down", "--purge", engine=World().engine())
    assert (ran.code, ran.stdout) == (0, "nothing to remove\n")


def test_proxy_logs_prints_both_containers_logs(profiles_dir: Path) -> None:
    world = World(containers=[ours(FRONT), ours(BACKEND)])
    world.logs = {FRONT: "GET /index/\n", BACKEND: "proxpi up\n"}
    fake = world.engine()
    ran = orchestrate(profiles_dir, "proxy", "logs", "--tail", "3", engine=fake)
    assert (ran.code, ran.stdout) == (0, f"== {BACKEND}\nproxpi up\n== {FRONT}\nGET /index/\n")
    assert {c.kwargs["tail"] for c in fake.made("container.logs")} == {3}


def test_proxy_logs_of_no_proxy_is_one_line_and_exit_5(profiles_dir: Path) -> None:
    ran = orchestrate(profiles_dir, "proxy", "logs", engine=World().engine())
    assert (ran.code, ran.lines) == (5, [f"orchestrate: error: no proxy container named '{FRONT}'"])


# --- image ------------------------------------------------------------------------------------


def test_proxy_image_prints_the_images_the_proxy_runs(profiles_dir: Path) -> None:
    ran = orchestrate(profiles_dir, "proxy", "image", engine=World(images=IMAGES).engine())
    assert (ran.code, ran.stdout.split()) == (0, ["epicwink/proxpi:1.4.0a1", "nginx:1.27-alpine"])


def test_proxy_image_builds_on_the_base_image_given(profiles_dir: Path) -> None:
    fake = World().engine({"image.pull": refused("pull access denied", "pull")})
    ran = orchestrate(profiles_dir, "proxy", "image", "--base-image", "debian:local", engine=fake)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.split() == ["orchestrator/proxpi:1.4.0a1", "orchestrator/proxy-front:1"]
    assert [argv[argv.index("--build-arg") + 1] for argv in fake.streamed] == [
        "BASE_IMAGE=debian:local",
        "BASE_IMAGE=debian:local",
    ]


# --- stats and prune --------------------------------------------------------------------------


LISTING = f"1 1 5000 {CACHE_PATH}/a/bc/{'2' * 32} /index/demo/demo-1.0.tar.gz|file\n"


def cache_engine() -> FakeEngine:
    found = {FRONT: ours(FRONT), BACKEND: ours(BACKEND)}

    def execute(ident: str, command: list[str]) -> str:
        if command[0] == "rm":
            return ""
        return LISTING if ident == f"id-{FRONT}" else "5000\n"

    return World(containers=found.values()).engine({"container.execute": execute})


def test_proxy_stats_prints_the_caches_for_people_and_as_json(profiles_dir: Path) -> None:
    profile(profiles_dir, closed_port())
    ran = orchestrate(profiles_dir, "proxy", "stats", "--profile", "app", engine=cache_engine())
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines()[:2] == [
        "front cache:   1 files and 0 pages, 5.0 kB",
        "proxpi cache:  1 files, 5.0 kB",
    ]
    as_json = orchestrate(
        profiles_dir, "proxy", "stats", "--profile", "app", "--json", engine=cache_engine()
    )
    assert json.loads(as_json.stdout)["backend"] == {"files": 1, "bytes": 5000}


def test_proxy_stats_of_an_external_proxy_is_bad_input_before_the_engine(
    profiles_dir: Path,
) -> None:
    write_profile(
        profiles_dir, "app", "context: ../ctx\nproxy:\n  url: http://pypi.example/simple/\n"
    )
    fake = FakeEngine()
    ran = orchestrate(profiles_dir, "proxy", "stats", "--profile", "app", engine=fake)
    assert ran.code == 2
    assert ran.lines[-1].endswith("its cache is not ours to read or prune")
    assert fake.calls == []


def test_proxy_prune_removes_what_is_old_and_says_so(profiles_dir: Path) -> None:
    fake = cache_engine()
    ran = orchestrate(profiles_dir, "proxy", "prune", "--older-than", "1h", engine=fake)
    assert (ran.code, ran.stdout) == (
        0,
        "removed 1 files (5.0 kB) from the front's cache; 0 entries (0 B) kept\n",
    )
    assert fake.made("container.execute")[-1].args == (
        f"id-{FRONT}",
        ["rm", "-f", f"{CACHE_PATH}/a/bc/{'2' * 32}"],
    )


def test_proxy_prune_dry_run_as_json_removes_nothing(profiles_dir: Path) -> None:
    fake = cache_engine()
    ran = orchestrate(
        profiles_dir, "proxy", "prune", "--max-size", "1K", "--dry-run", "--json", engine=fake
    )
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout) | {"kept_bytes": 0} == {
        "dry_run": True,
        "removed_files": 1,
        "removed_bytes": 5000,
        "kept_entries": 0,
        "kept_bytes": 0,
        "removed_projects": ["demo"],
    }
    assert all(c.args[1][0] == "sh" for c in fake.made("container.execute"))


def test_proxy_prune_with_the_engine_stopped_is_exit_3(profiles_dir: Path) -> None:
    ran = orchestrate(profiles_dir, "proxy", "prune", "--older-than", "7d", engine=silent())
    assert (ran.code, ran.lines) == (3, [UNREACHABLE])
