"""The remembered plan (the fast path of a repeated build): used as stored while nothing it
depends on changed, made again when something did, and only kept when there is a way to
check it next time. The proxy's front and the upstream are real HTTP servers; Docker is
the fake engine."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds import remembered, store
from orchestrator.engine.api import using
from orchestrator.facts.host import engine_endpoint
from orchestrator.plan.model import FRESH_ARG, BuildOptions, BuildPlan
from orchestrator.profiles import ProfileStore
from orchestrator.proxy import state
from tests.conftest import write_profile
from tests.support.engine import Call, FakeEngine, inspected, not_inspected
from tests.support.front import Front, Fronts
from tests.support.world import World, buildx

PIP = "FROM python\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
PYTHON = inspected("python", env={"PATH": "/usr/local/bin:/usr/bin"}, ident="sha256:1")
BASE_ASKED = [Call("capture", ("docker", "image", "inspect", "python"))]
OPTIONS = BuildOptions()


pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py


@pytest.fixture
def context(profiles_dir: Path) -> Path:
    directory = profiles_dir.parent / "ctx"
    (directory / "Dockerfile").write_text(PIP)
    (directory / "requirements.txt").write_text("requests\n")
    return directory


def off_profile(profiles_dir: Path) -> None:
    write_profile(
        profiles_dir, "app", "context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\nproxy: off\n"
    )


def entry_file(profiles_dir: Path, options: BuildOptions = OPTIONS) -> Path:
    return store.entry_path(profiles_dir, "app", options, engine_endpoint())


def plan(profiles_dir: Path, fake: FakeEngine, options: BuildOptions = OPTIONS) -> BuildPlan:
    """The plan of a build; the Dockerfile's base image is on the engine unless ``fake``
    says otherwise."""
    fake.captured = {**PYTHON, **fake.captured}
    with using(fake):
        return remembered.plan(profiles_dir, "app", options)


# --- without a proxy ------------------------------------------------------------------------


def test_a_plan_is_remembered_and_used_as_stored_while_nothing_changed(
    profiles_dir: Path, context: Path
) -> None:
    off_profile(profiles_dir)
    made = plan(profiles_dir, FakeEngine(buildx()))
    path = entry_file(profiles_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "it may hold credentials"
    data = json.loads(path.read_text())
    data["plan"]["argv"] = [*data["plan"]["argv"], "--remembered"]
    path.write_text(json.dumps(data))
    nothing = FakeEngine()  # the builder's facts are remembered too: only the base image
    again = plan(profiles_dir, nothing)
    assert again.argv == (*made.argv, "--remembered")
    assert nothing.calls == BASE_ASKED


def test_a_remembered_plan_is_the_plan_it_was_made_as(profiles_dir: Path, context: Path) -> None:
    off_profile(profiles_dir)
    made = plan(profiles_dir, FakeEngine(buildx()))
    assert store.plan_from_dict(store.plan_to_dict(made)) == made


def test_an_edited_profile_makes_the_plan_again(profiles_dir: Path, context: Path) -> None:
    off_profile(profiles_dir)
    plan(profiles_dir, FakeEngine(buildx()))
    write_profile(
        profiles_dir, "app", "context: ../ctx\nca_bundle: off\ntags: [demo/app:2]\nproxy: off\n"
    )
    assert plan(profiles_dir, FakeEngine()).tags == ("demo/app:2",)


def test_an_edited_context_file_makes_the_plan_again(profiles_dir: Path, context: Path) -> None:
    off_profile(profiles_dir)
    plan(profiles_dir, FakeEngine(buildx()))
    (context / "requirements.txt").write_text("--index-url https://example.org/simple/\nrequests\n")
    plan(profiles_dir, FakeEngine())
    assert json.loads(entry_file(profiles_dir).read_text())["facts"]["context_files"] == {
        "requirements.txt": "--index-url https://example.org/simple/\nrequests\n"
    }


def test_a_changed_fact_makes_the_plan_again_and_replaces_the_entry(
    profiles_dir: Path, context: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off_profile(profiles_dir)
    plan(profiles_dir, FakeEngine(buildx()))
    before = entry_file(profiles_dir).read_text()
    monkeypatch.setenv("ORCH_TEST_NEW_VARIABLE", "1")  # the environment's names are facts
    plan(profiles_dir, FakeEngine())
    saved = json.loads(entry_file(profiles_dir).read_text())
    assert saved != json.loads(before)
    assert "ORCH_TEST_NEW_VARIABLE" in saved["facts"]["env_names"]


def test_a_base_image_rebuilt_under_its_name_makes_the_plan_again(
    profiles_dir: Path, context: Path
) -> None:
    off_profile(profiles_dir)
    plan(profiles_dir, FakeEngine(buildx()))
    rebuilt = inspected("python", env={"PIP_CACHE_DIR": "/opt/pip"}, ident="sha256:2")
    again = FakeEngine(captured=rebuilt)
    plan(profiles_dir, again)
    assert again.calls == BASE_ASKED * 2, "asked by the check, then by planning"
    saved = json.loads(entry_file(profiles_dir).read_text())
    assert saved["base_images"] == ["python"]
    assert saved["facts"]["base_images"]["python"]["id"] == "sha256:2"
    assert saved["facts"]["base_images"]["python"]["env"] == {"PIP_CACHE_DIR": "/opt/pip"}


def test_a_base_image_the_engine_still_does_not_show_keeps_the_plan(
    profiles_dir: Path, context: Path
) -> None:
    off_profile(profiles_dir)
    made = plan(profiles_dir, FakeEngine(buildx(), captured=not_inspected("python")))
    again = FakeEngine(captured=not_inspected("python"))
    assert plan(profiles_dir, again) == made
    assert again.calls == BASE_ASKED
    pulled = FakeEngine(captured=PYTHON)
    plan(profiles_dir, pulled)
    assert pulled.calls == BASE_ASKED * 2, "pulled since: planned again"


def test_a_remembered_fresh_build_gets_a_new_token_each_time(
    profiles_dir: Path, context: Path
) -> None:
    off_profile(profiles_dir)
    fresh = BuildOptions(fresh=True)
    first = plan(profiles_dir, FakeEngine(buildx()), fresh)
    second = plan(profiles_dir, FakeEngine(), fresh)
    token = second.build_args[FRESH_ARG]
    assert token != first.build_args[FRESH_ARG]
    assert f"{FRESH_ARG}={token}" in second.argv
    assert (
        second.argv[: second.argv.index(f"{FRESH_ARG}={token}")]
        == first.argv[: first.argv.index(f"{FRESH_ARG}={first.build_args[FRESH_ARG]}")]
    )


def test_an_entry_another_format_wrote_is_not_used(profiles_dir: Path, context: Path) -> None:
    off_profile(profiles_dir)
    plan(profiles_dir, FakeEngine(buildx()))
    path = entry_file(profiles_dir)
    data = json.loads(path.read_text())
    assert store.load(path) is not None
    path.write_text(json.dumps({**data, "format": store.FORMAT + 1}))
    assert store.load(path) is None
    path.write_text("{not json")
    assert store.load(path) is None


def test_an_entry_that_cannot_be_written_only_costs_speed(
    profiles_dir: Path, context: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off_profile(profiles_dir)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    with using(FakeEngine(buildx(), captured=PYTHON)):
        made = remembered.plan(profiles_dir, "app", OPTIONS)
    assert made.profile == "app"
    assert not list(tmp_path.rglob("plans"))


# --- through the managed proxy ----------------------------------------------------------------


def proxy_profile(profiles_dir: Path, proxy: Front, upstream: Front, extra: str = "") -> str:
    """Profile 'app' through the proxy ``proxy`` mirroring ``upstream``; its digest."""
    write_profile(
        profiles_dir,
        "app",
        "context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\nproxy:\n"
        f"  port: {proxy.port}\n  health_project: demo\n  ca_bundle: off\n"
        f"  index: http://127.0.0.1:{upstream.port}/simple/\n  index_ttl: 0\n{extra}",
    )
    settings = ProfileStore(profiles_dir).resolve("app").profile.proxy
    proxy.is_the_engines(settings)
    return state.wanted_spec(settings).digest


@pytest.fixture
def proxied(front: Fronts, profiles_dir: Path, context: Path) -> tuple[Front, Front]:
    """A front serving with the profile's settings, and an upstream that answers."""
    proxy, upstream = front({}), front({"/simple/": (200, "text/html", b"")})
    proxy_profile(profiles_dir, proxy, upstream, "  startup_timeout: 0.2\n")
    proxy.serves()
    return proxy, upstream


def test_a_remembered_proxy_plan_asks_only_the_front(
    profiles_dir: Path, proxied: tuple[Front, Front]
) -> None:
    proxy, _ = proxied
    first = plan(profiles_dir, FakeEngine(buildx()))
    assert first.mode == "proxy"
    asked = len(proxy.asked)
    nothing = FakeEngine()
    again = plan(profiles_dir, nothing)
    assert again == first
    assert nothing.calls == BASE_ASKED
    assert proxy.asked[asked:].count("/_orchestrator/id") == 1


def test_an_upstream_gone_down_makes_the_plan_again_offline_without_asking_twice(
    profiles_dir: Path, proxied: tuple[Front, Front]
) -> None:
    proxy, upstream = proxied
    plan(profiles_dir, FakeEngine(buildx()))
    upstream.routes["/simple/"] = (503, "text/plain", b"")
    asked = len(proxy.asked)
    again = plan(profiles_dir, FakeEngine())
    assert again.mode == "offline"
    assert proxy.asked[asked:].count("/_orchestrator/id") == 1, "the check's facts are used"


def test_a_proxy_gone_is_found_the_slow_way_and_a_plan_without_it_is_not_kept(
    profiles_dir: Path, proxied: tuple[Front, Front]
) -> None:
    proxy, _ = proxied
    plan(profiles_dir, FakeEngine(buildx()))
    kept = entry_file(profiles_dir).read_text()
    proxy.server.shutdown()
    proxy.server.server_close()
    world = World(images={"epicwink/proxpi:1.4.0a1", "nginx:1.27-alpine"})
    fake = world.engine()
    again = plan(profiles_dir, fake)
    assert again.mode == "cache-mount"
    assert len(fake.made("container.create")) == 2, "the slow way made the proxy"
    assert world.containers == {}, "and removed it when it did not serve"
    assert entry_file(profiles_dir).read_text() == kept, "nothing to check a fallback plan by"


def test_an_external_proxy_s_plan_is_not_remembered(
    profiles_dir: Path, context: Path, front: Fronts
) -> None:
    index = front({"/simple/demo/": (200, "application/vnd.pypi.simple.v1+json", b'{"files": []}')})
    write_profile(
        profiles_dir,
        "app",
        f"context: ../ctx\nca_bundle: off\ntags: [demo/app:1]\nproxy:\n"
        f"  url: http://127.0.0.1:{index.port}/simple/\n  health_project: demo\n",
    )
    made = plan(profiles_dir, FakeEngine(buildx()))
    assert made.mode == "proxy"
    assert not entry_file(profiles_dir).exists()


def test_differences_name_the_facts_that_changed() -> None:
    old: dict[str, Any] = {"uid": 1, "proxy": {"healthy": True}, "gone": 1}
    new: dict[str, Any] = {"uid": 1, "proxy": {"healthy": False}, "added": os.sep}
    assert store.differences(old, new) == ["added", "gone", "proxy"]
