"""The proxy's images (present, pulled, or built here, and an image no registry serves
remembered per engine) and its parts created (each undone only when this run made it),
against the fake engine."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.errors import DockerRefused, ProxyUnavailable
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import create, image, state
from orchestrator.proxy.spec import CONFIG_LABEL, OWNER, OWNER_LABEL, ProxySpec
from tests.support.engine import absent, container, refused
from tests.support.front import Fronts, closed_port
from tests.support.world import World

SETTINGS = ProxySettings(ca_bundle="off")
PROXPI, FRONT = image.recipes(SETTINGS)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/test-engine.sock")


def not_pullable(name: str, quiet: bool = False) -> None:
    raise refused(f"Error response from daemon: pull access denied for {name}", "pull", name)


# --- images ---------------------------------------------------------------------------------


def test_a_configured_image_that_is_here_is_used_without_pulling() -> None:
    fake = World(images={PROXPI.configured}).engine()
    with using(fake):
        assert image.ensure_image(PROXPI) == PROXPI.configured
    assert fake.verbs() == ["image.exists"]


def test_a_configured_image_is_pulled_when_missing() -> None:
    fake = World().engine({"image.pull": None})
    with using(fake):
        assert image.ensure_image(PROXPI) == PROXPI.configured
    assert [(c.args, c.kwargs) for c in fake.made("image.pull")] == [
        ((PROXPI.configured,), {"quiet": True})
    ]


def test_an_image_no_registry_serves_is_asked_for_once_per_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = World(images={PROXPI.local}).engine({"image.pull": not_pullable})
    with using(fake):
        assert image.ensure_image(PROXPI) == PROXPI.local
        assert image.ensure_image(PROXPI) == PROXPI.local
    assert len(fake.made("image.pull")) == 1, "the failed pull is remembered"
    monkeypatch.setenv("DOCKER_HOST", "tcp://other-engine:2375")
    with using(fake):
        image.ensure_image(PROXPI)
    assert len(fake.made("image.pull")) == 2, "another engine may have a registry"
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONTEXT", "remote-ci")  # no DOCKER_HOST: still another engine
    with using(fake):
        image.ensure_image(PROXPI)
    monkeypatch.setenv("DOCKER_CONTEXT", "other-ci")
    with using(fake):
        image.ensure_image(PROXPI)
    assert len(fake.made("image.pull")) == 4, "each context is an engine of its own"


def test_a_dry_run_neither_pulls_nor_builds() -> None:
    fake = World().engine()
    with using(fake), pytest.raises(ProxyUnavailable) as info:
        image.ensure_image(PROXPI, allow_build=False, pull=False)
    assert info.value.message == (
        f"proxy image {PROXPI.configured} is not here and {PROXPI.local} is not built yet: "
        "run `orchestrate proxy image`"
    )
    assert fake.verbs() == ["image.exists", "image.exists"]
    assert fake.streamed == []


def test_a_missing_image_is_built_here_with_the_ca_bundle_as_a_secret(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    fake = World().engine({"image.pull": not_pullable})
    with using(fake):
        assert image.ensure_image(PROXPI, ca_bundle=bundle) == PROXPI.local
    [argv] = fake.streamed
    assert argv[:3] == ("docker", "buildx", "build")
    assert f"id=ca_bundle,src={bundle}" in argv
    assert "PROXPI_VERSION=1.4.0a1" in argv
    assert argv[argv.index("--tag") + 1] == PROXPI.local
    assert f"{OWNER_LABEL}={OWNER}" in argv
    assert argv[-1].endswith("resources/proxpi")


def test_the_front_s_build_gets_no_ca_bundle(tmp_path: Path) -> None:
    argv = image.build_image_argv(FRONT, tmp_path / "ca.crt")
    assert "--secret" not in argv
    assert argv[-1].endswith("resources/front")


def test_a_failed_image_build_is_unavailable_and_names_the_command() -> None:
    fake = World().engine({"image.pull": not_pullable})
    fake.exit_codes = [1]
    with using(fake), pytest.raises(ProxyUnavailable) as info:
        image.ensure_image(FRONT)
    assert info.value.message == (
        f"could not build the proxy image {FRONT.local}: see the build output above"
    )
    assert info.value.detail.startswith("docker buildx build ")


def test_both_images_are_found_proxpi_first() -> None:
    fake = World(images={PROXPI.configured, FRONT.configured}).engine()
    with using(fake):
        assert image.ensure_images(SETTINGS) == (PROXPI.configured, FRONT.configured)
    assert [c.args[0] for c in fake.made("image.exists")] == [PROXPI.configured, FRONT.configured]


# --- networks and volumes: undone only when this run made them ----------------------------


def test_a_network_this_run_created_is_undone_by_id() -> None:
    world = World()
    with using(world.engine()):
        with ExitStack() as undo:
            create.ensure_network("net", undo)
            assert world.networks["net"].labels[create.CREATED_LABEL] == create.RUN_TOKEN
        assert world.networks == {}


def test_a_network_that_was_there_is_kept() -> None:
    world = World(networks={"net": {}})
    fake = world.engine()
    with using(fake), ExitStack() as undo:
        create.ensure_network("net", undo)
    assert fake.verbs() == ["network.exists"]
    assert "net" in world.networks


def test_a_volume_another_process_made_first_is_theirs_to_keep() -> None:
    """Creating a volume that exists answers the existing one, with its maker's label."""
    world = World()
    theirs = SimpleNamespace(name="vol", labels={create.CREATED_LABEL: "another-run"})
    fake = world.engine({"volume.create": theirs})
    with using(fake), ExitStack() as undo:
        create.ensure_volume("vol", undo)
    assert not fake.made("volume.remove")


def test_a_network_created_meanwhile_by_another_process_is_used() -> None:
    exists = iter([False, True])
    fake = World().engine(
        {
            "network.exists": lambda name: next(exists),
            "network.create": refused("network with name net already exists", "network"),
        }
    )
    with using(fake), ExitStack() as undo:
        create.ensure_network("net", undo)
    assert fake.verbs() == ["network.exists", "network.create", "version", "network.exists"]
    assert not fake.made("network.remove")


def test_a_network_refused_for_another_reason_is_the_refusal() -> None:
    fake = World().engine({"network.create": refused("Error response from daemon: no subnet")})
    with using(fake), ExitStack() as undo, pytest.raises(DockerRefused) as info:
        create.ensure_network("net", undo)
    assert info.value.message == "docker refused to create network: no subnet"


# --- containers -------------------------------------------------------------------------------


def proxy() -> ProxySpec:
    return state.wanted_spec(SETTINGS, ("img", "front-img"))


def name_taken(image: str, **options: Any) -> None:
    message = f'Conflict. The container name "/{options["name"]}" is already in use'
    raise refused(message, "create")


def test_a_container_is_created_labelled_then_started_by_id() -> None:
    world = World()
    fake = world.engine()
    spec = proxy().front
    with using(fake), ExitStack() as undo:
        create.create_container(proxy(), spec, undo, "app")
        undo.pop_all()
    [made] = fake.made("container.create")
    assert made.args == ("front-img",)
    assert made.kwargs["labels"] == proxy().labels(spec, "app")
    assert (made.kwargs["restart"], made.kwargs["pull"]) == ("always", "never")
    assert made.kwargs["command"] == list(spec.command)
    assert fake.made("container.start")[0].args == (f"id-{spec.name}",)


def test_a_name_taken_meanwhile_by_a_proxy_with_our_settings_is_started_never_removed() -> None:
    spec = proxy().front
    theirs = container(
        "c0ffee",
        name=spec.name,
        labels={OWNER_LABEL: OWNER, CONFIG_LABEL: proxy().digest},
        running=False,
    )
    world = World(containers=[theirs])
    fake = world.engine({"container.create": name_taken})
    with using(fake), ExitStack() as undo:
        create.create_container(proxy(), spec, undo, "app")
    assert [c.args for c in fake.made("container.start")] == [("c0ffee",)]
    assert not fake.made("container.remove")
    assert world.containers[spec.name].state.running


def test_a_name_taken_meanwhile_with_other_settings_is_not_used() -> None:
    spec = proxy().front
    theirs = container("c0ffee", name=spec.name, labels={OWNER_LABEL: OWNER, CONFIG_LABEL: "x"})
    fake = World(containers=[theirs]).engine({"container.create": name_taken})
    with using(fake), ExitStack() as undo, pytest.raises(ProxyUnavailable) as info:
        create.create_container(proxy(), spec, undo, "app")
    assert "created proxy container 'orchestrator-proxpi' with other settings" in info.value.message
    assert not fake.made("container.remove")
    assert not fake.made("container.start")


def test_a_name_reserved_before_it_can_be_inspected_is_asked_again() -> None:
    """Docker reserves a name a moment before its container can be inspected."""
    spec = proxy().backend
    theirs = container(
        "c0ffee", name=spec.name, labels={OWNER_LABEL: OWNER, CONFIG_LABEL: proxy().digest}
    )
    answers = iter([None, theirs])

    def inspect(name: str) -> Any:
        found = next(answers)
        if found is None:
            raise absent("container", name)
        return found

    fake = World().engine({"container.create": name_taken, "container.inspect": inspect})
    with using(fake), ExitStack() as undo:
        create.create_container(proxy(), spec, undo, "")
    assert len(fake.made("container.inspect")) == 2
    assert not fake.made("container.start"), "theirs runs already"


def test_a_start_refused_for_a_taken_port_says_which_and_removes_the_container(
    front: Fronts,
) -> None:
    busy = front({})
    settings = ProxySettings(ca_bundle="off", port=busy.port)
    spec = state.wanted_spec(settings, ("img", "front-img"))
    world = World()
    fake = world.engine({"container.start": refused("port is already allocated", "start")})
    with using(fake), pytest.raises(ProxyUnavailable) as info, ExitStack() as undo:
        create.create_container(spec, spec.front, undo, "")
    assert info.value.message == (
        f"could not start the proxy: port 127.0.0.1:{busy.port} is taken: "
        "set proxy.port in the profile"
    )
    assert [c.args for c in fake.made("container.remove")] == [(f"id-{settings.name}",)]
    assert world.containers == {}


def test_a_start_refused_for_another_reason_gives_docker_s_reason() -> None:
    settings = ProxySettings(ca_bundle="off", port=closed_port())
    spec = state.wanted_spec(settings, ("img", "front-img"))
    fake = World().engine({"container.start": refused("Error: no such image layer", "start")})
    with using(fake), pytest.raises(ProxyUnavailable) as info, ExitStack() as undo:
        create.create_container(spec, spec.front, undo, "")
    assert info.value.message == (
        "could not start the proxy: docker refused to start the proxy's front: "
        "Error: no such image layer"
    )
