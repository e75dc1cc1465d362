"""The mode a profile or the command line settles before anything is checked.

Builds and runs share the rule: `proxy: off` wires nothing, and `--no-proxy` forces the
fallback (the cache mounts of a build, the cache volume of a run), which a profile that
requires the proxy contradicts.
"""

from __future__ import annotations

from typing import NamedTuple

from orchestrator.errors import BadInput
from orchestrator.profiles import ResolvedProfile


class Preset(NamedTuple):
    """Off (``off``), or the caller's fallback, and why."""

    off: bool
    reason: str


def preset(resolved: ResolvedProfile, *, no_proxy: bool) -> Preset | None:
    """What the profile or ``--no-proxy`` settles, else None: the proxy is to be checked."""
    settings = resolved.profile.proxy
    if settings.mode == "off":
        return Preset(True, "the profile sets proxy: off; package installs are not wired")
    if not no_proxy:
        return None
    if settings.mode == "require":
        raise BadInput(
            f"{resolved.sources[0]}: field 'proxy.mode' is require, which --no-proxy contradicts"
        )
    return Preset(False, "--no-proxy forces the fallback")
