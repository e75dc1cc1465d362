"""A base image's ENV, USER and WORKDIR decide where a RUN step's installers keep their
caches: asked of the engine (``facts/image.py``, the fake engine here), seeded into each
stage before the Dockerfile's own lines, and part of what a remembered plan is checked by."""

from __future__ import annotations

from orchestrator.engine.api import using
from orchestrator.facts.image import image_facts
from orchestrator.facts.model import ImageFacts
from tests.support.engine import FakeEngine, inspected, not_inspected

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
