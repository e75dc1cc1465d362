"""Fixtures every unit test may ask for, kept in tests/support/, and one every unit test
gets: a cache and lock directory of its own, so nothing a test decides (a builder's
facts, where the engine is, a remembered plan) reaches another test or the user's."""

import pytest

from tests.support.front import front  # noqa: F401 - the fixture, offered to every unit test
from tests.support.state import files_shared_here, private_state  # noqa: F401 - likewise


@pytest.fixture(autouse=True)
def private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path_factory.mktemp("own")
    monkeypatch.setenv("XDG_CACHE_HOME", str(own / "cache"))
    monkeypatch.setenv("ORCHESTRATE_LOCK_DIR", str(own / "locks"))
    files_shared_here()
