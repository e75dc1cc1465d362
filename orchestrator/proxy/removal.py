"""Removing the proxy (`orchestrate proxy down`): its two containers, and with ``purge``
its cache volumes and network, each only when it carries our ownership label. Under the
creation lock, so that a build never finds half a proxy being removed."""

from __future__ import annotations

from orchestrator.engine import client as engine
from orchestrator.profiles import ProxySettings
from orchestrator.proxy.locking import creation_lock
from orchestrator.proxy.spec import OWNER, OWNER_LABEL, backend_name, front_volume
from orchestrator.proxy.state import find


def down(settings: ProxySettings, *, purge: bool = False) -> list[str]:
    """Stop and remove the proxy; with purge, its cache volumes and network too.

    What another process removed meanwhile is simply gone (absence, as a type)."""
    engine.ensure_engine()
    docker = engine.client()
    done: list[str] = []
    with creation_lock(settings.name):
        for name in (settings.name, backend_name(settings)):
            container = find(name)
            if container is None:
                continue
            try:
                engine.call(
                    "remove proxy container", docker.container.remove, container.id, force=True
                )
            except engine.absent_errors():
                continue
            done.append(f"removed container {name}")
        if purge:
            done += _purge(settings)
    return done


def _purge(settings: ProxySettings) -> list[str]:
    """Our volumes and network (by their ownership label), each asked about once."""
    docker = engine.client()
    done = []
    for name in (settings.cache_volume, front_volume(settings)):
        try:
            volume = engine.call("inspect volume", docker.volume.inspect, name)
            if (volume.labels or {}).get(OWNER_LABEL) == OWNER:
                engine.call("remove cache volume", docker.volume.remove, volume.name)
                done.append(f"removed volume {name}")
        except engine.absent_errors():
            continue
    try:
        network = engine.call("inspect network", docker.network.inspect, settings.network)
        if (network.labels or {}).get(OWNER_LABEL) == OWNER and not network.containers:
            engine.call("remove network", docker.network.remove, network.id)
            done.append(f"removed network {settings.network}")
    except engine.absent_errors():
        pass
    return done
