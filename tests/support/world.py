"""A Docker engine with state, for the fake engine to answer from: containers, networks,
volumes and images by name, changed by the calls that change them (create, start,
remove), as the engine would. A test builds the world it needs, hands
``world.engine()`` to the code, and asserts on the fake's calls and on what is left.

    world = World(images={"nginx:1.27-alpine"})
    fake = world.engine({"container.start": refused("port is already allocated")})
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator.errors import DockerRefused
from tests.support.engine import FakeEngine, absent, container


class World:
    """What the engine holds; ``answers`` are its verbs for ``FakeEngine``."""

    def __init__(
        self,
        *,
        containers: Iterable[SimpleNamespace] = (),
        images: Iterable[str] = (),
        networks: Mapping[str, Mapping[str, str]] | None = None,
        volumes: Mapping[str, Mapping[str, str]] | None = None,
        published: Mapping[str, int] | None = None,
    ) -> None:
        self.containers = {c.name: c for c in containers}
        self.images = set(images)
        self.networks = {
            name: SimpleNamespace(id=f"net-{name}", name=name, labels=dict(labels), containers={})
            for name, labels in (networks or {}).items()
        }
        self.volumes = {
            name: SimpleNamespace(name=name, labels=dict(labels))
            for name, labels in (volumes or {}).items()
        }
        self.logs: dict[str, str] = {}
        # Where each container's published port is on this machine's loopback: what the
        # engine-side client (`docker exec` of python3, ``capture``) reaches by the name.
        self.published: dict[str, int] = dict(published or {})
        for found in self.containers.values():
            if getattr(found, "published", None) is not None:
                self.published.setdefault(found.name, int(found.published))

    def engine(self, overrides: Mapping[str, Any] | None = None) -> FakeEngine:
        """A fake engine answering from this world; ``overrides`` replace verbs."""
        return FakeEngine({**self.answers(), **(overrides or {})}, capturing=self.capture)

    def capture(self, argv: tuple[str, ...], env: dict[str, str]) -> str:
        """`docker exec -e NAME... ID COMMAND` (``engine.run_in``), run as ``execute``."""
        assert argv[:2] == ("docker", "exec"), f"unscripted command: {argv}"
        rest, names = list(argv[2:]), []
        while rest[0] == "-e":
            names.append(rest[1])
            rest = rest[2:]
        if not any(found.id == rest[0] for found in self.containers.values()):
            raise DockerRefused(  # as process.capture says the docker CLI's exit 1
                "docker refused to exec: exit status 1",
                detail=f"Error: No such container: {rest[0]}",
            )
        return self.execute(rest[0], rest[1:], {name: env[name] for name in names})

    def answers(self) -> dict[str, Any]:
        return {
            "version": "28.5",
            "buildx.is_installed": True,
            "container.inspect": self.inspect,
            "container.create": self.create,
            "container.start": self.start,
            "container.remove": self.remove,
            "container.logs": lambda ident, tail=None: self.logs.get(self._by_id(ident).name, ""),
            "image.exists": lambda name: name in self.images,
            "network.exists": lambda name: name in self.networks,
            "network.create": self.create_network,
            "network.inspect": lambda name: self._get(self.networks, "network", name),
            "network.remove": self.remove_network,
            "volume.exists": lambda name: name in self.volumes,
            "volume.create": self.create_volume,
            "volume.inspect": lambda name: self._get(self.volumes, "volume", name),
            "volume.remove": self.remove_volume,
        }

    # --- containers ---------------------------------------------------------------------

    def inspect(self, name: str) -> SimpleNamespace:
        return self._get(self.containers, "container", name)

    def create(
        self,
        image: str,
        *,
        name: str,
        labels: Mapping[str, str],
        publish: Iterable[tuple[str, int]] = (),
        **_: Any,
    ) -> Any:
        made = container(f"id-{name}", name=name, labels=labels, running=False, image=image)
        self.containers[name] = made
        for address, _port in publish:
            self.published.setdefault(name, int(address.rpartition(":")[2]))
        return made

    def execute(self, ident: str, command: list[str], env: Mapping[str, str] | None = None) -> str:
        """The engine-side client (``proxy/reach.py``) run here, its URLs' container names
        mapped to where those containers are published on this machine's loopback."""
        self._by_id(ident)
        python, flag, script, variable = command
        assert (python, flag) == ("python3", "-c"), command
        mapped = []
        for method, url, headers, timeout in json.loads((env or {})[variable]):
            parts = urlsplit(url)
            port = self.published.get(parts.hostname or "")
            here = urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}")) if port else url
            mapped.append([method, here, headers, timeout])
        done = subprocess.run(
            [sys.executable, "-c", script, variable],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env={**os.environ, variable: json.dumps(mapped)},
        )
        return done.stdout

    def start(self, idents: str | list[str]) -> None:
        for ident in [idents] if isinstance(idents, str) else idents:
            found = self._by_id(ident)
            found.state.running, found.state.status = True, "running"

    def remove(self, ident: str, force: bool = False) -> None:
        del self.containers[self._by_id(ident).name]

    def _by_id(self, ident: str) -> SimpleNamespace:
        for found in self.containers.values():
            if found.id == ident:
                return found
        raise absent("container", ident)

    # --- networks and volumes -------------------------------------------------------------

    def create_network(self, name: str, *, labels: Mapping[str, str]) -> SimpleNamespace:
        made = SimpleNamespace(id=f"net-{name}", name=name, labels=dict(labels), containers={})
        self.networks[name] = made
        return made

    def remove_network(self, ident: str) -> None:
        for name, network in list(self.networks.items()):
            if network.id == ident:
                del self.networks[name]
                return
        raise absent("network", ident)

    def create_volume(self, name: str, *, labels: Mapping[str, str]) -> SimpleNamespace:
        return self.volumes.setdefault(name, SimpleNamespace(name=name, labels=dict(labels)))

    def remove_volume(self, name: str) -> None:
        self._get(self.volumes, "volume", name)
        del self.volumes[name]

    @staticmethod
    def _get(objects: Mapping[str, SimpleNamespace], noun: str, name: str) -> SimpleNamespace:
        if name not in objects:
            raise absent(noun, name)
        return objects[name]


def buildx(version: str = "v0.29.1") -> dict[str, Any]:
    """The fake engine's answers for detecting the builder (``facts/builder.py``): the
    default docker builder, buildx ``version``, every frontend probe accepted, and bake
    that knows a target's `network`."""
    printed = {"target": {"probe": {"context": ".", "network": "host"}}}
    return {
        "version": "28.5",
        "buildx.inspect": SimpleNamespace(
            name="default", driver="docker", nodes=[SimpleNamespace(version="v0.20.1")]
        ),
        "buildx.version": f"github.com/docker/buildx {version} a1b2c3",
        "buildx.build": lambda directory, **options: None,
        "buildx.bake": lambda targets, files, print: printed,
    }
