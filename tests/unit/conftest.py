"""Fixtures every unit test may ask for, kept in tests/support/."""

from tests.support.front import front  # noqa: F401 - the fixture, offered to every unit test
from tests.support.state import private_state  # noqa: F401 - likewise
