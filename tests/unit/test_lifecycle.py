"""The proxy's lifecycle against a fake engine with state: what `ensure` finds, starts,
creates, replaces or refuses, in which order it asks Docker, what it removes when the
proxy it made never serves; what `predict`, `status`, `down` and `logs` say and do.

The front is a real HTTP server on 127.0.0.1 (``front``), so readiness is decided by
pages actually served, as on a real proxy.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.errors import Conflict, ExitCode, ProxyUnavailable
from orchestrator.profiles import ProxySettings
from orchestrator.proxy import lifecycle, locking, reach, removal, state
from orchestrator.proxy.spec import (
    CONFIG_LABEL,
    OWNER,
    OWNER_LABEL,
    PROFILE_LABEL,
    front_volume,
)
from tests.support.engine import Call, FakeEngine, absent, container, refused
from tests.support.front import Front, Fronts, closed_port
from tests.support.world import World

IMAGES = {"epicwink/proxpi:1.4.0a1", "nginx:1.27-alpine"}
FRONT = "orchestrator-proxpi"
BACKEND = "orchestrator-proxpi-backend"


pytestmark = pytest.mark.usefixtures("private_state")  # tests/support/state.py


def settings(port: int, **changes: Any) -> ProxySettings:
    return ProxySettings(port=port, ca_bundle="off", health_project="demo", **changes)


def ours(
    name: str,
    config: ProxySettings,
    *,
    digest: str | None = None,
    profile: str | None = "",
    running: bool = True,
    paused: bool = False,
) -> SimpleNamespace:
    """A proxy container orchestrator made; with the wanted settings unless ``digest``."""
    labels = {OWNER_LABEL: OWNER, CONFIG_LABEL: digest or state.wanted_spec(config).digest}
    if profile is not None:
        labels[PROFILE_LABEL] = profile
    return container(
        f"id-{name}",
        name=name,
        labels=labels,
        running=running,
        paused=paused,
        networks={config.network: "172.20.0.2"},
        published=config.port if name == config.name else None,
    )


def both(config: ProxySettings, **options: Any) -> list[SimpleNamespace]:
    return [ours(BACKEND, config, **options), ours(FRONT, config, **options)]


def changes(calls: list[Any]) -> list[str]:
    """The calls that change the engine, as 'verb target', in order."""
    verbs = ("create", "start", "remove")
    return [
        f"{c.verb} {c.kwargs.get('name') or c.args[0]}"
        for c in calls
        if c.verb.endswith(verbs) and c.verb != "stream"
    ]


# --- ensure: created ------------------------------------------------------------------------


def test_an_absent_proxy_is_created_backend_first_each_container_started_by_id(
    front: Fronts,
) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    world = World(images=IMAGES)
    fake = world.engine()
    clock = lifecycle.Clock()
    with using(fake):
        found = lifecycle.ensure(config, budget=0.85, clock=clock)
    assert (found.state, found.healthy, found.backend) == ("running", True, "running")
    assert changes(fake.calls) == [
        "network.create orchestrator",
        "volume.create orchestrator-proxpi-cache",
        "volume.create orchestrator-proxpi-cache-front",
        f"container.create {BACKEND}",
        f"container.start id-{BACKEND}",
        f"container.create {FRONT}",
        f"container.start id-{FRONT}",
    ]
    assert world.volumes[config.cache_volume].labels[OWNER_LABEL] == OWNER
    assert engine_side(fake), "waited for from the engine's side"
    assert served.asked[-1] == "/_orchestrator/id", "then this machine's loopback is asked"
    assert "/_orchestrator/backend" in served.asked, "a proxy just made is waited for whole"
    assert clock.creating > 0, "the wait for a proxy this run made is counted as exempt"


def decided_local(config: ProxySettings, served: Front) -> None:
    """What a first build on this engine leaves: its front is this machine's loopback's."""
    served.identifies(state.wanted_spec(config).digest, host=f"id-{FRONT}"[:12])
    with using(World().engine()):
        assert reach.decide(config, f"id-{FRONT}", f"id-{BACKEND}").local


def test_a_created_proxy_that_never_serves_is_removed_with_what_this_run_made(
    front: Fronts,
) -> None:
    """The undo runs in reverse and by id; the cache volume that was there is kept."""
    served = front({})  # every page 404
    config = settings(served.port, startup_timeout=0.3)
    world = World(images=IMAGES, volumes={config.cache_volume: {OWNER_LABEL: OWNER}})
    fake = world.engine()
    with using(fake), pytest.raises(ProxyUnavailable) as info:
        lifecycle.ensure(config)
    assert info.value.message.startswith(f"proxy '{FRONT}' (created) did not serve within 0.3 s")
    assert "orchestrate proxy logs" in info.value.message
    assert [c for c in changes(fake.calls) if "remove" in c] == [
        f"container.remove id-{FRONT}",
        f"container.remove id-{BACKEND}",
        f"volume.remove {front_volume(config)}",
        "network.remove net-orchestrator",
    ]
    assert (world.containers, list(world.volumes), world.networks) == (
        {},
        [config.cache_volume],
        {},
    )


def test_an_undo_step_that_fails_does_not_stop_the_others(front: Fronts) -> None:
    served = front({})
    config = settings(served.port, startup_timeout=0.1)
    world = World(images=IMAGES)
    fake = world.engine({"volume.remove": refused("volume is in use")})
    with using(fake), pytest.raises(ProxyUnavailable, match="did not serve"):
        lifecycle.ensure(config)
    assert world.containers == {}
    assert world.networks == {}, "the network is removed after the volumes failed to be"
    assert len(fake.made("volume.remove")) == 2


# --- ensure: found, started, replaced -------------------------------------------------------


def test_a_running_proxy_with_our_settings_is_used_as_found(front: Fronts) -> None:
    served = front({})
    served.serves(backend=False)
    config = settings(served.port)
    served.identifies(state.wanted_spec(config).digest, host=f"id-{FRONT}"[:12])
    fake = World(containers=both(config)).engine()
    with using(fake):
        found = lifecycle.ensure(config, budget=0.85)
    assert set(fake.verbs()) == {"container.inspect"}, "the front answers here: no exec"
    assert changes(fake.calls) == []
    assert found.reached is not None
    assert found.reached.endswith(f"is answered by the engine's front ({f'id-{FRONT}'[:12]})")
    assert (found.healthy, found.container_id, found.address) == (
        True,
        f"id-{FRONT}"[:12],
        "172.20.0.2",
    )
    assert "/_orchestrator/backend" not in served.asked


def test_a_front_that_says_our_digest_is_used_without_asking_docker(front: Fronts) -> None:
    """Once this engine's front was found on this machine's loopback: the same container
    answering there with our settings needs no Docker call."""
    served = front({})
    config = settings(served.port)
    served.serves()
    decided_local(config, served)
    fake = World().engine()
    with using(fake):
        found = lifecycle.ensure(config, budget=0.85)
    assert (found.healthy, found.state) == (True, "running")
    assert fake.calls == []


def test_a_look_alike_front_is_not_taken_for_the_engine_s(front: Fronts) -> None:
    """Another container on this machine's loopback, with the same settings (a proxy of
    the same profile beside a remote engine): the engine is asked which front is ours,
    and the questions go to it from the engine's side (issue 20)."""
    served = front({})
    config = settings(served.port)
    served.serves()
    decided_local(config, served)
    served.identifies(state.wanted_spec(config).digest, host="0ther0ne0000")
    world = World(containers=both(config))
    fake = world.engine()
    with using(fake):
        found = lifecycle.ensure(config, budget=0.85)
    assert found.healthy
    assert found.reached is not None
    assert found.reached.startswith("the engine is elsewhere")
    assert "another container (0ther0ne0000)" in found.reached
    assert fake.made("container.inspect"), "the engine was asked"
    assert engine_side(fake), "and the front asked from its side"
    remembered = reach.recalled(config)
    assert remembered is not None
    assert not remembered.local, "decided again, from the evidence"


def test_a_stopped_proxy_is_started_beside_a_build_one_container_at_a_time(front: Fronts) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    fake = World(containers=both(config, running=False)).engine()
    with using(fake):
        found = lifecycle.ensure(config, budget=0.85)
    assert sorted(c.args for c in fake.made("container.start")) == [
        (f"id-{FRONT}",),
        (f"id-{BACKEND}",),
    ]
    assert (found.state, found.healthy) == ("running", True)
    assert not fake.made("container.create")


def test_proxy_up_starts_a_stopped_proxy_in_one_call_and_waits_for_proxpi(front: Fronts) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    fake = World(containers=both(config, running=False)).engine()
    with using(fake):
        lifecycle.ensure(config, patient=True)
    [start] = fake.made("container.start")
    assert sorted(start.args[0]) == [f"id-{FRONT}", f"id-{BACKEND}"]
    assert "/_orchestrator/backend" in served.asked


def test_a_build_does_not_wait_for_a_stopped_proxy_past_its_budget(front: Fronts) -> None:
    served = front({})  # started, but serves nothing yet
    config = settings(served.port)
    world = World(containers=both(config, running=False))
    with using(world.engine()), pytest.raises(ProxyUnavailable) as info:
        lifecycle.ensure(config, budget=0.5)
    assert info.value.message.startswith(
        f"proxy '{FRONT}' was stopped: it is started, and serves the next build; "
        "this one does not wait for it ("
    )
    assert sorted(world.containers) == [FRONT, BACKEND], "never removed: not made here"
    assert all(c.state.running for c in world.containers.values())


def test_a_start_slower_than_the_budget_goes_on_beside_the_build(front: Fronts) -> None:
    config = settings(front({}).port)
    world = World(containers=both(config, running=False))
    release = threading.Event()

    def slow_start(ident: str) -> None:
        release.wait(5)
        world.start(ident)

    try:
        with (
            using(world.engine({"container.start": slow_start})),
            pytest.raises(ProxyUnavailable) as info,
        ):
            lifecycle.ensure(config, budget=0.2)
        assert info.value.message == (
            f"proxy '{FRONT}' was stopped: it is starting, for the next build; "
            "this one does not wait for it"
        )
    finally:
        release.set()


def test_a_paused_proxy_is_refused_with_the_command_that_resumes_it(front: Fronts) -> None:
    config = settings(front({}).port)
    fake = World(containers=both(config, paused=True)).engine()
    with using(fake), pytest.raises(ProxyUnavailable) as info:
        lifecycle.ensure(config, budget=0.85)
    assert info.value.message == f"proxy '{FRONT}' is paused: `docker unpause {FRONT}` to use it"
    assert not fake.made("container.start")


def test_a_proxy_with_other_settings_is_removed_by_id_then_made_again(front: Fronts) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    world = World(containers=both(config, digest="0ld"), images=IMAGES)
    fake = world.engine()
    with using(fake):
        lifecycle.ensure(config, patient=True)
    assert changes(fake.calls)[:2] == [
        f"container.remove id-{BACKEND}",
        f"container.remove id-{FRONT}",
    ]
    assert [c.kwargs["name"] for c in fake.made("container.create")] == [BACKEND, FRONT]
    wanted = state.wanted_spec(config).digest
    assert {c.config.labels[CONFIG_LABEL] for c in world.containers.values()} == {wanted}


def test_only_the_half_with_other_settings_is_replaced(front: Fronts) -> None:
    """A process arriving while another creates the proxy keeps the half already made."""
    served = front({})
    served.serves()
    config = settings(served.port)
    world = World(
        containers=[ours(BACKEND, config), ours(FRONT, config, digest="0ld")], images=IMAGES
    )
    fake = world.engine()
    with using(fake):
        lifecycle.ensure(config, patient=True)
    assert [c.args[0] for c in fake.made("container.remove")] == [f"id-{FRONT}"]
    assert [c.kwargs["name"] for c in fake.made("container.create")] == [FRONT]


def test_a_build_never_replaces_the_proxy_another_profile_set_up(front: Fronts) -> None:
    config = settings(front({}).port)
    world = World(containers=both(config, digest="0ld", profile="other"), images=IMAGES)
    fake = world.engine()
    requester = lifecycle.Requester(profile="app", replace=False)
    with using(fake), pytest.raises(Conflict) as info:
        lifecycle.ensure(config, requester=requester, budget=0.85)
    assert info.value.exit_code == ExitCode.CONFLICT
    assert "runs with the settings of profile 'other', not those of profile 'app'" in (
        info.value.message
    )
    assert "orchestrate proxy up --profile app" in info.value.message
    assert changes(fake.calls) == []


def test_a_proxy_made_before_profiles_were_recorded_may_be_replaced_by_a_build(
    front: Fronts,
) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    world = World(containers=both(config, digest="0ld", profile=None), images=IMAGES)
    fake = world.engine()
    requester = lifecycle.Requester(profile="app", replace=False)
    with using(fake):
        found = lifecycle.ensure(config, requester=requester, budget=0.85)
    assert found.healthy
    assert len(fake.made("container.remove")) == 2


def test_a_container_with_our_name_that_is_not_ours_is_left_alone(front: Fronts) -> None:
    config = settings(front({}).port)
    stranger = container("beef", name=FRONT, labels={})
    world = World(containers=[stranger], images=IMAGES)
    fake = world.engine()
    with using(fake), pytest.raises(Conflict, match="was not created by orchestrator"):
        lifecycle.ensure(config, budget=0.85)
    assert changes(fake.calls) == []
    assert world.containers == {FRONT: stranger}


def test_a_part_removed_by_another_process_meanwhile_says_run_again(front: Fronts) -> None:
    config = settings(front({}).port)
    fake = World(containers=both(config, running=False)).engine(
        {"container.start": absent("container")}
    )
    with using(fake), pytest.raises(ProxyUnavailable) as info:
        lifecycle.ensure(config, patient=True)
    assert info.value.message == (
        f"proxy '{FRONT}' changed while starting it (another process removed part of it: "
        "NoSuchContainer); run again"
    )


def test_a_front_gone_once_it_serves_is_reported_as_disappeared(front: Fronts) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    world = World(containers=both(config))
    looked: list[str] = []

    def inspect(name: str) -> SimpleNamespace:
        looked.append(name)
        if name == FRONT and looked.count(FRONT) > 1:
            raise absent("container", name)
        return world.inspect(name)

    with (
        using(world.engine({"container.inspect": inspect})),
        pytest.raises(ProxyUnavailable) as info,
    ):
        lifecycle.ensure(config, budget=0.85)
    assert info.value.message == f"proxy '{FRONT}' disappeared while starting"


def test_a_build_does_not_wait_for_another_process_creating_the_proxy(front: Fronts) -> None:
    config = settings(front({}).port)
    fake = World().engine()
    with (
        using(fake),
        locking.creation_lock(config.name),
        pytest.raises(ProxyUnavailable, match="another orchestrate is creating or starting"),
    ):
        lifecycle.ensure(config, budget=0.2)
    assert fake.calls == []


# --- ensure: an external proxy ----------------------------------------------------------------


def test_an_external_proxy_is_only_probed(front: Fronts) -> None:
    served = front({"/index/demo/": (200, "application/vnd.pypi.simple.v1+json", b'{"files": []}')})
    fake = World().engine()
    with using(fake):
        found = lifecycle.ensure(settings(5000, url=served.url))
    assert (found.state, found.healthy) == ("external", True)
    assert fake.calls == []


def test_an_external_proxy_that_does_not_serve_is_unavailable() -> None:
    url = f"http://127.0.0.1:{closed_port()}/simple/"
    with using(World().engine()), pytest.raises(ProxyUnavailable) as info:
        lifecycle.ensure(settings(5000, url=url), budget=0.85)
    assert info.value.message.startswith(f"external proxy {url} does not serve: ")


# --- predict: what a dry run says --------------------------------------------------------------


def test_a_prediction_of_a_serving_proxy_asks_no_docker(front: Fronts) -> None:
    served = front({})
    config = settings(served.port)
    served.serves()
    decided_local(config, served)
    fake = World().engine()
    with using(fake):
        found = lifecycle.predict(config, lifecycle.Requester(), budget=0.85)
    assert (found.healthy, found.digest) == (True, state.wanted_spec(config).digest)
    assert fake.calls == []


@pytest.mark.parametrize(
    ("running", "paused", "healthy", "reason"),
    [
        (False, False, True, "stopped; a real run starts it first"),
        (True, True, False, "paused"),
        (True, False, False, "unreachable: [Errno 111] Connection refused"),
    ],
)
def test_a_prediction_of_our_proxy_says_what_a_real_run_would_do(
    running: bool, paused: bool, healthy: bool, reason: str
) -> None:
    config = settings(closed_port())
    fake = World(containers=both(config, running=running, paused=paused)).engine()
    with using(fake):
        found = lifecycle.predict(config, lifecycle.Requester(), budget=0.85)
    assert found.healthy == healthy
    assert found.reason.endswith(reason), found.reason
    assert changes(fake.calls) == []


def test_a_prediction_of_an_absent_proxy_says_a_real_run_creates_it() -> None:
    config = settings(closed_port())
    fake = World(images=IMAGES).engine()
    with using(fake):
        found = lifecycle.predict(config, lifecycle.Requester(), budget=0.85)
    assert (found.healthy, found.reason) == (True, "not running yet; a real run creates it first")
    assert changes(fake.calls) == []
    assert not fake.made("image.pull"), "a dry run pulls nothing"


def test_a_prediction_notices_the_port_is_taken(front: Fronts) -> None:
    busy = front({})
    config = settings(busy.port)
    decided_local(config, busy)  # the engine's loopback was found to be this machine's
    busy.routes.clear()  # the proxy is gone; something else listens on its port
    with using(World(images=IMAGES).engine()):
        found = lifecycle.predict(config, lifecycle.Requester(), budget=0.85)
    assert (found.healthy, found.reason) == (
        False,
        f"port 127.0.0.1:{busy.port} is taken: set proxy.port",
    )


def test_a_prediction_for_an_engine_elsewhere_does_not_judge_its_port_here(
    front: Fronts,
) -> None:
    """This machine's loopback is not the engine's (decided before, issue 20): what
    listens here says nothing of the engine's port."""
    busy = front({})  # a service of this machine on the proxy's port
    config = settings(busy.port)
    with using(World().engine()):
        assert not reach.decide(config, f"id-{FRONT}", f"id-{BACKEND}").local
    with using(World(images=IMAGES).engine()):
        found = lifecycle.predict(config, lifecycle.Requester(), budget=0.85)
    assert (found.healthy, found.reason) == (True, "not running yet; a real run creates it first")


def test_a_prediction_of_other_settings_says_they_are_replaced() -> None:
    config = settings(closed_port())
    fake = World(containers=both(config, digest="0ld"), images=IMAGES).engine()
    with using(fake):
        found = lifecycle.predict(config, lifecycle.Requester(), budget=0.85)
    assert found.reason == (
        "not running yet; a real run recreates it with the profile's settings first"
    )
    assert changes(fake.calls) == []


def test_a_prediction_raises_the_conflict_a_real_run_would() -> None:
    config = settings(closed_port())
    fake = World(containers=both(config, digest="0ld", profile="other")).engine()
    with using(fake), pytest.raises(Conflict, match="profile 'other'"):
        lifecycle.predict(config, lifecycle.Requester(profile="app", replace=False))


def test_a_prediction_without_images_says_to_make_them() -> None:
    config = settings(closed_port())
    with using(World().engine()), pytest.raises(ProxyUnavailable) as info:
        lifecycle.predict(config, lifecycle.Requester())
    assert "orchestrate proxy image" in info.value.message


# --- status -------------------------------------------------------------------------------------


def test_status_of_an_absent_proxy() -> None:
    config = settings(closed_port())
    with using(World().engine()):
        found = lifecycle.status(config)
    assert (found.state, found.healthy, found.reason, found.backend) == (
        "absent",
        False,
        "no proxy container",
        "absent",
    )


def test_status_of_a_stopped_proxy_asks_no_page(front: Fronts) -> None:
    served = front({})
    config = settings(served.port)
    with using(World(containers=both(config, running=False)).engine()):
        found = lifecycle.status(config)
    assert (found.state, found.healthy, found.reason) == ("exited", False, "container is exited")
    assert served.asked == []


def test_status_of_a_serving_proxy_names_its_container_and_settings(front: Fronts) -> None:
    served = front({})
    served.serves()
    config = settings(served.port)
    served.identifies(state.wanted_spec(config).digest, host=f"id-{FRONT}"[:12])
    with using(World(containers=both(config)).engine()):
        found = lifecycle.status(config)
    assert found.healthy
    assert found.as_dict() | {"reason": ""} == {
        "name": FRONT,
        "state": "running",
        "healthy": True,
        "reason": "",
        "host_url": served.url,
        "build_url": served.url,
        "upstream": "https://pypi.org/simple/",
        "network": "orchestrator",
        "cache_volume": "orchestrator-proxpi-cache",
        "container_id": f"id-{FRONT}"[:12],
        "image": "img",
        "address": "172.20.0.2",
        "bake_url": None,
        "backend": "running",
        "digest": state.wanted_spec(config).digest,
        "reached": f"{served.url} is answered by the engine's front ({f'id-{FRONT}'[:12]})",
    }


# --- down and logs --------------------------------------------------------------------------------


def test_down_removes_both_containers_and_keeps_the_cache() -> None:
    config = settings(5000)
    world = World(containers=both(config), volumes={config.cache_volume: {OWNER_LABEL: OWNER}})
    fake = world.engine()
    with using(fake):
        done = removal.down(config)
    assert done == [f"removed container {FRONT}", f"removed container {BACKEND}"]
    assert [c.args[0] for c in fake.made("container.remove")] == [f"id-{FRONT}", f"id-{BACKEND}"]
    assert list(world.volumes) == [config.cache_volume]


def test_down_purge_removes_only_what_carries_our_label() -> None:
    config = settings(5000)
    world = World(
        containers=both(config),
        volumes={config.cache_volume: {OWNER_LABEL: OWNER}, front_volume(config): {}},
        networks={config.network: {OWNER_LABEL: OWNER}},
    )
    with using(world.engine()):
        done = removal.down(config, purge=True)
    assert done[2:] == [f"removed volume {config.cache_volume}", "removed network orchestrator"]
    assert list(world.volumes) == [front_volume(config)], "a volume not ours is left alone"


def test_down_purge_keeps_a_network_other_containers_still_use() -> None:
    config = settings(5000)
    world = World(networks={config.network: {OWNER_LABEL: OWNER}})
    world.networks[config.network].containers = {"app": object()}
    with using(world.engine()):
        assert removal.down(config, purge=True) == []
    assert config.network in world.networks


def test_down_skips_what_another_process_removed_meanwhile() -> None:
    config = settings(5000)
    fake = World(containers=both(config)).engine({"container.remove": absent("container")})
    with using(fake):
        assert removal.down(config) == []
    assert len(fake.made("container.remove")) == 2


def test_logs_are_proxpi_s_then_the_front_s() -> None:
    config = settings(5000)
    world = World(containers=both(config))
    world.logs = {BACKEND: "proxpi says\n", FRONT: "nginx says\n"}
    fake = world.engine()
    with using(fake):
        text = state.logs(config, tail=5)
    assert text == f"== {BACKEND}\nproxpi says\n== {FRONT}\nnginx says\n"
    assert [c.kwargs for c in fake.made("container.logs")] == [{"tail": 5}, {"tail": 5}]


def test_logs_of_no_proxy_say_so() -> None:
    with using(World().engine()), pytest.raises(ProxyUnavailable) as info:
        state.logs(settings(5000))
    assert info.value.message == f"no proxy container named '{FRONT}'"


def engine_side(fake: FakeEngine) -> list[Call]:
    """The questions asked from the engine's side: `docker exec` of the client (reach)."""
    return [c for c in fake.made("capture") if c.args[:2] == ("docker", "exec")]
