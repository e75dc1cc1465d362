"""The project's one fake engine: scripted answers, recorded calls.

Handed to the entry point (``cli.main(argv, engine=fake)``) or held with
``orchestrator.engine.api.using(fake)``, it stands where ``DockerEngine`` does, so nothing
is patched. python-on-whales' calls are named by noun and verb (``"container.inspect"``,
``"version"`` for the client's own method); an answer is a value, an exception (raised),
or a function of the call's arguments. A call nobody scripted fails the test, so a test
says exactly which Docker calls it expects.

    fake = FakeEngine({"version": "28.5", "container.inspect": absent("container")})
    with using(fake):
        ...
    assert fake.verbs() == ["container.inspect"]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from python_on_whales.exceptions import (
    DockerException,
    NoSuchContainer,
    NoSuchImage,
    NoSuchNetwork,
    NoSuchVolume,
)

from orchestrator.errors import DockerRefused

_ABSENT: dict[str, type[DockerException]] = {
    "container": NoSuchContainer,
    "image": NoSuchImage,
    "network": NoSuchNetwork,
    "volume": NoSuchVolume,
}


def absent(noun: str, name: str = "x") -> DockerException:
    """python-on-whales' own error for an object of ``noun`` that does not exist."""
    message = f"Error: No such {noun}: {name}".encode()
    return _ABSENT[noun](["docker", noun, "inspect", name], 1, b"", message)


def refused(message: str, *argv: str) -> DockerException:
    """Docker saying no (exit 125 or 1), with its words on stderr."""
    return DockerException(["docker", *argv], 1, b"", message.encode())


def inspected(
    image: str,
    *,
    env: Mapping[str, str] | None = None,
    user: str = "",
    workdir: str = "",
    ident: str = "",
) -> dict[str, str]:
    """``captured`` for an image the engine holds: `docker image inspect IMAGE` printing
    its configuration, as ``facts/image.py`` asks it."""
    config = {
        "Env": [f"{key}={value}" for key, value in (env or {}).items()],
        "User": user,
        "WorkingDir": workdir,
    }
    found = {"Id": ident or f"sha256:{image}", "Config": config}
    return {f"docker image inspect {image}": json.dumps([found])}


def not_inspected(image: str) -> dict[str, Exception]:
    """``captured`` for an image the engine does not show: the command fails."""
    failed = DockerRefused(f"docker refused to inspect image {image}: exit status 1")
    return {f"docker image inspect {image}": failed}


def container(
    ident: str,
    *,
    name: str = "",
    labels: Mapping[str, str] | None = None,
    running: bool = True,
    paused: bool = False,
    image: str = "img",
    networks: Mapping[str, str] | None = None,
    started_at: datetime | None = None,
    published: int | None = None,
) -> SimpleNamespace:
    """A container as python-on-whales' inspect gives it, with the attributes we read;
    ``published``: the port it is published on, on this machine's loopback (for the fake
    engine's world, not an attribute Docker has)."""
    endpoints = {net: SimpleNamespace(ip_address=ip) for net, ip in (networks or {}).items()}
    status = "paused" if paused else ("running" if running else "exited")
    return SimpleNamespace(
        id=ident,
        name=name,
        config=SimpleNamespace(labels=dict(labels or {}), image=image, env=[], user=""),
        state=SimpleNamespace(running=running, paused=paused, status=status, started_at=started_at),
        network_settings=SimpleNamespace(networks=endpoints),
        published=published,
    )


@dataclass(frozen=True)
class Call:
    """One call the code under test made."""

    verb: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class FakeEngine:
    """Stands where ``DockerEngine`` does. ``answers`` by verb (see the module docstring);
    ``exit_codes`` for ``stream`` in turn (0 when none is left); ``captured`` by the
    command's words joined with spaces, else ``capturing`` if given; ``while_streaming``,
    if given, is called with a streamed command's argv and its ``on_interrupt`` while it
    "runs" (to press Ctrl-C, send SIGTERM, or look at what exists during the command)."""

    answers: dict[str, Any] = field(default_factory=dict)
    exit_codes: list[int] = field(default_factory=list)
    captured: dict[str, Any] = field(default_factory=dict)  # text, exception or function
    calls: list[Call] = field(default_factory=list)
    streamed: list[tuple[str, ...]] = field(default_factory=list)
    while_streaming: Callable[[tuple[str, ...], Callable[[], None] | None], None] | None = None
    # answers a captured command that ``captured`` does not name: (argv, env) -> its output
    capturing: Callable[[tuple[str, ...], dict[str, str]], str] | None = None

    def client(self) -> Any:
        return _Noun(self, "")

    def stream(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        interactive: bool = False,
        on_interrupt: Callable[[], None] | None = None,
    ) -> int:
        self.streamed.append(tuple(argv))
        self.calls.append(Call("stream", tuple(argv), {"env": dict(env or {})}))
        if self.while_streaming is not None:
            self.while_streaming(tuple(argv), on_interrupt)
        return self.exit_codes.pop(0) if self.exit_codes else 0

    def capture(
        self, action: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> str:
        self.calls.append(Call("capture", tuple(argv), {"env": dict(env)} if env else {}))
        key = " ".join(argv)
        if key not in self.captured and self.capturing is not None:
            return self.capturing(tuple(argv), dict(env or {}))
        if key not in self.captured:
            raise AssertionError(f"unscripted command: {key}")
        found = self.captured[key]
        if isinstance(found, BaseException):
            raise found
        return str(found() if callable(found) else found)

    def answer(self, verb: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        self.calls.append(Call(verb, args, dict(kwargs)))
        if verb not in self.answers:
            raise AssertionError(f"unscripted docker call: {verb}{args} {dict(kwargs)}")
        found = self.answers[verb]
        if isinstance(found, BaseException):
            raise found
        if callable(found):
            return found(*args, **kwargs)
        return found

    def verbs(self) -> list[str]:
        """The calls' names, in order: what a test usually asserts."""
        return [call.verb for call in self.calls]

    def made(self, verb: str) -> list[Call]:
        return [call for call in self.calls if call.verb == verb]


class _Noun:
    """``client.container`` and the like: an attribute is a verb; calling it answers."""

    def __init__(self, engine: FakeEngine, path: str) -> None:
        self._engine = engine
        self._path = path

    def __getattr__(self, name: str) -> _Noun:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Noun(self._engine, f"{self._path}.{name}" if self._path else name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._engine.answer(self._path, args, kwargs)
