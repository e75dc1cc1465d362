"""What the buildx builder can do, asked of buildx through the fake engine and remembered
per engine and builder until the engine restarts or the builder changes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.errors import BadInput, DockerRefused, EngineUnavailable
from orchestrator.facts import builder
from orchestrator.facts.model import BuilderFacts
from tests.support.engine import FakeEngine, refused

INSPECTED = SimpleNamespace(
    name="default", driver="docker", nodes=[SimpleNamespace(version="v0.20.1")]
)


@pytest.fixture
def socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An engine socket, client configuration and user cache of the test's own."""
    path = tmp_path / "docker.sock"
    path.touch()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("DOCKER_CONTEXT", "BUILDX_CONFIG", "BUILDX_BUILDER"):
        monkeypatch.delenv(name, raising=False)
    return path


def frontend(refuses: tuple[str, ...] = ()) -> Any:
    """`buildx build` of a probe file: refused when its text has any of ``refuses``."""

    def build(directory: str, *, file: Path, **options: Any) -> None:
        text = Path(file).read_text()
        if any(word in text for word in refuses):
            raise refused("failed to solve: dockerfile parse error", "buildx", "build")

    return build


def bake(printed: Any) -> Any:
    return lambda targets, files, print: printed


def engine(**overrides: Any) -> FakeEngine:
    """buildx 0.29 on BuildKit 0.20: every probe accepted, bake knows `network`."""
    answers: dict[str, Any] = {
        "version": "28.5",
        "buildx.inspect": INSPECTED,
        "buildx.version": "github.com/docker/buildx v0.29.1 a1b2c3",
        "buildx.build": frontend(),
        "buildx.bake": bake({"target": {"probe": {"context": ".", "network": "host"}}}),
    }
    return FakeEngine({**answers, **overrides})


def test_versions_and_features_come_from_buildx(socket: Path) -> None:
    fake = engine()
    with using(fake):
        found = builder.detect(None)
    assert found == BuilderFacts(
        name="default",
        driver="docker",
        buildx_version="0.29.1",
        buildkit_version="v0.20.1",
        heredocs=True,
        mount_variables=True,
        secret_env=True,
        bake_network=True,
        bake_fs_entitlements=True,
    )
    assert len(fake.made("buildx.build")) == len(builder.PROBES)
    assert fake.made("buildx.inspect")[0].args == (None,)


def test_a_refused_probe_is_a_missing_feature(socket: Path) -> None:
    old_bake = bake({"target": {"probe": {"context": "."}}})  # `network` silently dropped
    fake = engine(
        **{
            "buildx.build": frontend(refuses=("<<EOF", "env=P")),
            "buildx.bake": old_bake,
            "buildx.version": "github.com/docker/buildx v0.13.1 1234",
        }
    )
    with using(fake):
        found = builder.detect(None)
    assert (found.heredocs, found.mount_variables, found.secret_env) == (False, True, False)
    assert (found.bake_network, found.bake_fs_entitlements) == (False, False)


def test_a_bake_that_refuses_the_probe_knows_no_network(socket: Path) -> None:
    fake = engine(**{"buildx.bake": refused("unknown attribute network", "buildx", "bake")})
    with using(fake):
        assert builder.detect(None).bake_network is False


def test_the_answer_is_remembered_until_the_engine_restarts(socket: Path) -> None:
    with using(engine()):
        first = builder.detect(None)
    nothing = FakeEngine()  # any call fails the test
    with using(nothing):
        assert builder.detect(None) == first
    assert nothing.calls == []
    socket.unlink()
    socket.touch()  # the daemon recreates its socket when it starts
    again = engine()
    with using(again):
        builder.detect(None)
    assert again.made("buildx.inspect")


def test_another_builder_or_a_changed_buildx_configuration_is_asked_again(
    socket: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with using(engine()):
        builder.detect(None)
    other = engine()
    with using(other):
        builder.detect("ci")
    assert other.made("buildx.inspect")[0].args == ("ci",)
    assert {c.kwargs["builder"] for c in other.made("buildx.build")} == {"ci"}
    current = tmp_path / "docker-config" / "buildx" / "current"
    current.parent.mkdir(parents=True)
    current.write_text('{"Key": "unix:///x", "Name": "other"}')  # `docker buildx use other`
    used = engine()
    with using(used):
        builder.detect(None)
    assert used.made("buildx.inspect")


def test_a_damaged_cache_file_is_asked_again(socket: Path) -> None:
    with using(engine()):
        builder.detect(None)
    for path in (socket.parent / "cache" / "orchestrator" / "facts").glob("builder-*"):
        path.write_text('{"stamp": "x"')
    again = engine()
    with using(again):
        builder.detect(None)
    assert again.made("buildx.inspect")


def test_an_unreachable_engine_is_not_read_as_missing_features(socket: Path) -> None:
    fake = FakeEngine({"version": refused("Cannot connect to the Docker daemon", "version")})
    with using(fake), pytest.raises(EngineUnavailable, match="cannot reach the Docker engine"):
        builder.detect(None)
    assert fake.verbs() == ["version"]
    assert not list((socket.parent / "cache").rglob("builder-*")), "nothing remembered"


def test_a_profile_s_builder_that_cannot_be_used_says_how_to_make_it(socket: Path) -> None:
    fake = engine(**{"buildx.inspect": refused('no builder "ci" found', "buildx", "inspect")})
    with using(fake), pytest.raises(BadInput) as info:
        builder.detect("ci")
    assert info.value.message == (
        "buildx builder 'ci' cannot be used: create it with `docker buildx create --name ci` "
        "or remove 'builder' from the profile"
    )


def test_the_default_builder_refused_is_docker_s_refusal(socket: Path) -> None:
    fake = engine(**{"buildx.inspect": refused("Error: buildx is broken", "buildx", "inspect")})
    with using(fake), pytest.raises(DockerRefused):
        builder.detect(None)


def test_a_remote_engine_is_remembered_too(socket: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-host:2375")
    first = engine()
    with using(first):
        builder.detect(None)
    nothing = FakeEngine()
    with using(nothing):
        builder.detect(None)
    assert nothing.calls == []


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("github.com/docker/buildx v0.13.1 abc", (0, 13, 1)), ("v0.8", (0, 8, 0)), ("none", ())],
)
def test_versions_are_read_from_buildx_s_words(text: str, parsed: tuple[int, ...]) -> None:
    assert builder.version_tuple(text) == parsed


def test_a_container_builder_s_network_is_read_from_its_driver_options(socket: Path) -> None:
    """python-on-whales does not read driver options: they come from `buildx inspect`."""
    container = SimpleNamespace(name="ci", driver="docker-container", nodes=[])
    fake = engine(**{"buildx.inspect": container})
    fake.captured["docker buildx inspect ci"] = (
        'Name: ci\nDriver: docker-container\nNodes:\nDriver Options: network="host"\n'
    )
    with using(fake):
        found = builder.detect("ci")
    assert (found.driver, found.network) == ("docker-container", "host")
    assert [c.args for c in fake.made("capture")] == [("docker", "buildx", "inspect", "ci")]


def test_the_docker_driver_has_no_network_of_its_own_to_read(socket: Path) -> None:
    fake = engine()
    with using(fake):
        assert builder.detect(None).network is None
    assert fake.made("capture") == []
