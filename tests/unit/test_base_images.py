"""A base image's ENV, USER and WORKDIR decide where a RUN step's installers keep their
caches: asked of the engine (``facts/image.py``, the fake engine here), seeded into each
stage before the Dockerfile's own lines, and part of what a remembered plan is checked by."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from orchestrator.builds.gather import planned
from orchestrator.dockerfile.parse import mount_options
from orchestrator.engine.api import using
from orchestrator.facts.image import base_images, image_facts
from orchestrator.facts.model import ImageFacts
from orchestrator.plan.model import BuildOptions, BuildPlan
from orchestrator.profiles import ProfileStore
from tests.conftest import write_profile
from tests.support.engine import FakeEngine, inspected, not_inspected
from tests.support.world import buildx

# --- asking the engine --------------------------------------------------------------------------


def test_an_image_s_configuration_is_read_from_docker_image_inspect() -> None:
    fake = FakeEngine(
        captured=inspected(
            "poetry:1",
            env={"PATH": "/usr/bin", "POETRY_CACHE_DIR": "/opt/poetry/cache", "EMPTY": ""},
            user="1000:1000",
            workdir="/app",
            ident="sha256:abc",
        )
    )
    with using(fake):
        found = image_facts("poetry:1")
    assert found == ImageFacts(
        present=True,
        env={"PATH": "/usr/bin", "POETRY_CACHE_DIR": "/opt/poetry/cache", "EMPTY": ""},
        user="1000:1000",
        workdir="/app",
        id="sha256:abc",
    )


def test_an_image_the_engine_does_not_show_is_not_present() -> None:
    with using(FakeEngine(captured=not_inspected("gone:1"))):
        assert image_facts("gone:1") == ImageFacts(present=False)


def test_an_answer_that_is_not_an_image_reads_as_not_shown() -> None:
    for printed in ("[]", "not json", '[{"Id": "sha256:x", "Config": null}]', "[1]"):
        with using(FakeEngine(captured={"docker image inspect x": printed})):
            found = image_facts("x")
        assert found.present == printed.startswith('[{"Id"'), printed


def test_several_base_images_are_asked_at_once_each_once_in_from_order() -> None:
    started: list[str] = []
    both = threading.Barrier(2, timeout=5)  # each waits for the other: they run together

    def answer(image: str) -> Callable[[], str]:
        def printed() -> str:
            started.append(image)
            both.wait()
            return inspected(image, ident=f"sha256:{image}")[f"docker image inspect {image}"]

        return printed

    fake = FakeEngine(captured={f"docker image inspect {i}": answer(i) for i in ("b:1", "a:1")})
    with using(fake):
        found = base_images(["b:1", None, "a:1", "b:1"])
    assert list(found) == ["b:1", "a:1"]
    assert [f.id for f in found.values()] == ["sha256:b:1", "sha256:a:1"]
    assert sorted(started) == ["a:1", "b:1"]


# --- planning with them ---------------------------------------------------------------------

POETRY = "ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\nRUN poetry install --no-root\n"
PROFILE = "context: ../ctx\nca_bundle: off\nproxy: {mode: auto}\n"
IMAGE = "orchestrator-test/poetry:1"


def fallback_plan(
    profiles_dir: Path,
    docker_file: str,
    captured: Mapping[str, object],
    profile: str = PROFILE + f"build_args: {{BASE_IMAGE: '{IMAGE}'}}\n",
) -> tuple[BuildPlan, FakeEngine]:
    """The fallback's plan of ``docker_file`` (facts gathered, the proxy not asked), and
    the engine that answered."""
    (profiles_dir.parent / "ctx" / "Dockerfile").write_text(docker_file)
    write_profile(profiles_dir, "app", profile)
    fake = FakeEngine(buildx(), captured=dict(captured))
    with using(fake):
        made = planned(ProfileStore(profiles_dir), "app", BuildOptions(no_proxy=True), dry_run=True)
    assert made.plan.mode == "cache-mount"
    return made.plan, fake


def mounts(plan: BuildPlan, command: str) -> list[dict[str, str]]:
    """The cache mounts of the rendered steps running ``command``, each as its options."""
    assert plan.rendered_text is not None
    found = []
    for line in plan.rendered_text.splitlines():
        if command in line:
            flags = [word for word in line.split() if word.startswith("--mount=type=cache")]
            found += [mount_options(flag) for flag in flags]
    return found


def decided(plan: BuildPlan, topic: str) -> str:
    (found,) = [f"{d.choice} ({d.reason})" for d in plan.decisions if d.topic == topic]
    return found


def test_a_poetry_base_image_s_cache_dir_is_where_the_poetry_cache_is_mounted(
    profiles_dir: Path,
) -> None:
    """The case of issue 21: the fallback mounted /root/.cache/pypoetry/artifacts, which
    poetry never used, and every build fetched every package again."""
    base = inspected(IMAGE, env={"POETRY_CACHE_DIR": "/opt/poetry/cache"}, ident="sha256:ab")
    plan, fake = fallback_plan(profiles_dir, POETRY, base)
    [poetry] = mounts(plan, "poetry install")
    assert poetry["target"] == "/opt/poetry/cache/artifacts"
    assert (poetry["uid"], poetry["id"]) == ("0", "orchestrator-poetry-0")
    assert decided(plan, "FROM line 2").startswith(
        f"{IMAGE}: POETRY_CACHE_DIR=/opt/poetry/cache (its ENV, USER and WORKDIR as the "
        "engine holds the image, sha256:ab:"
    )
    assert [call.args for call in fake.made("capture")] == [
        ("docker", "image", "inspect", IMAGE)  # FROM ${BASE_IMAGE}, with the profile's arg
    ]


def test_the_dockerfile_s_own_env_comes_after_the_base_image_s(profiles_dir: Path) -> None:
    text = POETRY + "ENV POETRY_CACHE_DIR=$POETRY_CACHE_DIR/mine\nRUN poetry install\n"
    base = inspected(IMAGE, env={"POETRY_CACHE_DIR": "/opt/poetry/cache"})
    plan, _ = fallback_plan(profiles_dir, text, base)
    assert [m["target"] for m in mounts(plan, "poetry install")] == [
        "/opt/poetry/cache/artifacts",
        "/opt/poetry/cache/mine/artifacts",  # expanded with the image's value
    ]


def test_a_stage_from_a_stage_inherits_its_base_image_s_environment(profiles_dir: Path) -> None:
    text = POETRY.replace("}\n", "} AS deps\n", 1) + "FROM deps AS app\nRUN poetry install\n"
    base = inspected(IMAGE, env={"POETRY_CACHE_DIR": "/opt/poetry/cache"})
    plan, fake = fallback_plan(profiles_dir, text, base)
    assert [m["target"] for m in mounts(plan, "poetry install")] == [
        "/opt/poetry/cache/artifacts"
    ] * 2
    assert len(fake.made("capture")) == 1, "deps is a stage, not an image"


def test_pip_s_cache_dir_in_the_base_image_places_an_exec_form_step_s_cache(
    profiles_dir: Path,
) -> None:
    """A shell-form step is pointed at orchestrator's own mount; an exec-form step cannot
    be, so its mount goes where pip looks: the image's PIP_CACHE_DIR. A step that mounts a
    cache there itself keeps its own."""
    text = (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        'RUN ["pip", "install", "requests"]\n'
        "RUN --mount=type=cache,target=/var/pip pip install httpx\n"
    )
    plan, _ = fallback_plan(profiles_dir, text, inspected(IMAGE, env={"PIP_CACHE_DIR": "/var/pip"}))
    assert [m["target"] for m in mounts(plan, '"pip", "install"')] == ["/var/pip"]
    assert [m["target"] for m in mounts(plan, "pip install httpx")] == ["/var/pip"]


def test_xdg_cache_home_in_the_base_image_moves_every_default_cache(profiles_dir: Path) -> None:
    base = inspected(IMAGE, env={"XDG_CACHE_HOME": "/cache"})
    plan, _ = fallback_plan(profiles_dir, POETRY, base)
    assert [m["target"] for m in mounts(plan, "poetry install")] == ["/cache/pypoetry/artifacts"]


def test_the_base_image_s_user_and_home_own_and_place_the_cache(profiles_dir: Path) -> None:
    base = inspected(IMAGE, env={"HOME": "/home/app"}, user="1001:1002", workdir="/srv")
    text = POETRY + "ENV POETRY_CACHE_DIR=cache\nRUN poetry install\n"
    plan, _ = fallback_plan(profiles_dir, text, base)
    first, relative = mounts(plan, "poetry install")
    assert (first["target"], first["uid"], first["gid"]) == (
        "/home/app/.cache/pypoetry/artifacts",
        "1001",
        "1002",
    )
    assert first["id"] == "orchestrator-poetry-1001"
    assert relative["target"] == "/srv/cache/artifacts"  # relative to the image's WORKDIR
    assert decided(plan, "FROM line 2").startswith(
        f"{IMAGE}: USER 1001:1002, WORKDIR /srv, HOME=/home/app ("
    )


def test_a_base_image_s_named_user_is_the_step_s_user(profiles_dir: Path) -> None:
    """Not root, as the Dockerfile alone would say: its uid is not known, so its poetry
    cache has no known home (the mount would have been root's /root/.cache, unused)."""
    plan, _ = fallback_plan(profiles_dir, POETRY, inspected(IMAGE, user="app"))
    assert mounts(plan, "poetry install") == []
    assert [d.choice for d in plan.decisions if d.topic == "RUN line 3"] == [
        "cache owned by root",
        "no poetry cache mount",
        "poetry on its own index",  # no step installs its mirror plugin
    ]


def test_a_base_image_the_engine_does_not_show_is_unknown_and_changes_nothing(
    profiles_dir: Path,
) -> None:
    plan, _ = fallback_plan(profiles_dir, POETRY, not_inspected(IMAGE))
    assert [m["target"] for m in mounts(plan, "poetry install")] == [
        "/root/.cache/pypoetry/artifacts"  # as before base images were asked
    ]
    assert decided(plan, "FROM line 2").startswith(
        f"{IMAGE}: ENV, USER and WORKDIR unknown (the engine shows no image by that name"
    )


def test_a_from_whose_variable_has_no_value_is_unknown_and_not_asked(profiles_dir: Path) -> None:
    text = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN poetry install --no-root\n"
    plan, fake = fallback_plan(profiles_dir, text, {}, profile=PROFILE)
    assert fake.made("capture") == []
    assert decided(plan, "FROM line 2").startswith(
        "${BASE_IMAGE}: ENV, USER and WORKDIR unknown (a variable in it has no value here"
    )
