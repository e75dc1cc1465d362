"""Whether the engine sees this machine's files (facts/container.py): from evidence, a
token written here and read back through a container of the engine, kept per endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.api import using
from orchestrator.facts.container import files_memo, files_shared
from tests.support.engine import FakeEngine, absent, refused

IMAGES = ["orchestrator/proxpi:1.4.0a1", "demo/app:1"]


@pytest.fixture(autouse=True)
def never_asked() -> None:
    """This engine was never asked (every unit test else starts as if it was)."""
    files_memo().unlink(missing_ok=True)


def reads_here(image: str, command: list[str], **options: Any) -> str:
    """A container whose bind mount shows this machine's directory: a local engine."""
    ((source, target, mode),) = options["volumes"]
    assert (target, mode, options["networks"], options["pull"]) == (
        "/probe",
        "ro",
        ["none"],
        "never",
    )
    return (Path(source) / "token").read_text()


def test_a_token_read_back_is_a_shared_file_system_and_is_kept() -> None:
    fake = FakeEngine({"container.run": reads_here})
    with using(fake):
        assert files_shared(IMAGES) is True
        assert files_shared(IMAGES) is True
    assert fake.verbs() == ["container.run"], "asked once, then kept for this engine"


def test_an_empty_mount_is_an_engine_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    with using(FakeEngine({"container.run": "none\n"})):
        assert files_shared(IMAGES) is False
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.251.0.2:2375")
    with using(FakeEngine({"container.run": reads_here})):
        assert files_shared(IMAGES) is True, "kept per engine endpoint, never across"


def test_when_no_image_can_tell_nothing_is_assumed_or_kept() -> None:
    tries = iter([absent("image", IMAGES[0]), refused("exec: sh: not found", "run")])

    def cannot(image: str, command: list[str], **options: Any) -> str:
        raise next(tries)

    fake = FakeEngine({"container.run": cannot, "version": "28.5"})
    with using(fake):
        assert files_shared(IMAGES) is None
    assert [c.args[0] for c in fake.calls if c.verb == "container.run"] == IMAGES
    with using(FakeEngine({"container.run": reads_here})):
        assert files_shared(IMAGES) is True, "an unknown answer was not kept"


def test_a_dry_run_asks_nothing() -> None:
    fake = FakeEngine()
    with using(fake):
        assert files_shared(IMAGES, ask=False) is None
    assert fake.calls == []
