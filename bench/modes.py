"""The measured modes: each rebuilds only the install layer of the reference image.

Every timed command is a whole build command (``docker buildx build ...`` or
``orchestrate build ...``) whose every other layer is cached: a new ``bust.txt`` in the
context, copied right before the install step, is the only thing that changes between
runs. The orchestrated modes rebuild profiles built before, so their plans are remembered
(the fast path a user's repeated builds take), except the first build of a new cache
namespace, which is a first build by nature.
"""

from __future__ import annotations

from pathlib import Path

from bench import engine
from bench.fixtures import bust
from bench.model import MODES, ModeResult
from bench.session import Session

PROXY_PROFILE = "proxy"


def results() -> dict[str, ModeResult]:
    return {key: ModeResult(key, description) for key, description in MODES.items()}


def warm_up(session: Session) -> None:
    """Build the layers below the install step once, for raw and orchestrated builds, and
    build the proxy's profile once, so that its plan is remembered from the first round."""
    fixtures = session.fixtures
    for context in (fixtures.floor_context, fixtures.app_context):
        _check(session.raw_build(context, f"warmup-{context.name}", target="base"), "warm-up")
    # The floor's first full build sends the wheels in its context to BuildKit; later
    # builds send only what changed (bust.txt), as a user's repeated builds would.
    bust(fixtures.floor_context)
    _check(session.raw_build(fixtures.floor_context, "warmup-full"), "warm-up of the floor")
    unused = session.proxy_settings("unused")
    session.profile("warmup", proxy=unused, target="base")
    _check(session.orchestrated("warmup", "--no-proxy", "warmup"), "orchestrated warm-up")
    session.profile(PROXY_PROFILE, proxy=session.proxy_settings("main"))
    session.proxy_up(PROXY_PROFILE)
    bust(fixtures.app_context)
    _check(session.orchestrated("warmup-proxy", PROXY_PROFILE), "warm-up through the proxy")
    session.proxy_down(PROXY_PROFILE)


def one_round(session: Session, index: int, modes: dict[str, ModeResult]) -> None:
    """One run of every mode, in the order of the table, so that a slow minute of the
    machine weighs on all modes alike. The proxy is left up, warm, for the overhead."""
    fixtures, i = session.fixtures, index
    _timed(session, modes["floor"], f"floor-{i}", fixtures.floor_context)
    _timed(session, modes["direct"], f"direct-{i}", fixtures.app_context)
    # The same proxy (and profile) every round, its cache volume removed in between and
    # pip's cache mount emptied: the first build after `proxy up` is cold, the second warm
    # (pip keeps the files it fetched), both on the remembered plan.
    session.proxy_up(PROXY_PROFILE)
    session.empty_installer_caches(PROXY_PROFILE)
    for kind in ("cold", "warm"):
        bust(fixtures.app_context)
        session.mark()
        name = f"proxy-{kind}-{i}"
        modes[f"proxy {kind}"].samples.append(
            session.measured(name, session.orchestrated(name, PROXY_PROFILE))
        )
    _line(session, modes["proxy warm line"], f"proxy-line-{i}", PROXY_PROFILE)
    # A new runner: the proxy (the cache host's) holds every file, the runner's installer
    # caches are empty and the install layer is not cached (issue 22).
    session.empty_installer_caches(PROXY_PROFILE)
    bust(fixtures.app_context)
    session.mark()
    name = f"proxy-fresh-runner-{i}"
    modes["proxy fresh runner"].samples.append(
        session.measured(name, session.orchestrated(name, PROXY_PROFILE))
    )
    # A cache namespace never used before: the first build fills it, the second uses it.
    profile = session.profile(
        f"fallback-{i}", proxy=session.proxy_settings("unused"), namespace=f"{session.prefix}-fb{i}"
    )
    for kind in ("cold", "warm"):
        bust(fixtures.app_context)
        session.mark()
        name = f"fallback-{kind}-{i}"
        modes[f"fallback {kind}"].samples.append(
            session.measured(name, session.orchestrated(name, "--no-proxy", profile))
        )
    _line(session, modes["fallback warm line"], f"fallback-line-{i}", "--no-proxy", profile)


def layers(session: Session, modes: dict[str, ModeResult], last: int) -> None:
    """The install layer's size in each mode's last image."""
    names = {
        "floor": f"floor-{last}",
        "direct": f"direct-{last}",
        "proxy cold": PROXY_PROFILE,
        "proxy warm": PROXY_PROFILE,
        "fallback cold": f"fallback-{last}",
        "fallback warm": f"fallback-{last}",
        "proxy warm line": PROXY_PROFILE,
        "proxy fresh runner": PROXY_PROFILE,
        "fallback warm line": f"fallback-{last}",
    }
    for key, mode in modes.items():
        mode.layer_bytes = engine.last_layer_bytes(session.tag(names[key]))


def _timed(session: Session, mode: ModeResult, name: str, context: Path) -> None:
    bust(context)
    session.mark()
    mode.samples.append(session.measured(name, session.raw_build(context, name)))


def _line(session: Session, mode: ModeResult, name: str, *args: str) -> None:
    """The warm build again, as its bare buildx line: the part of the warm build's time
    that is BuildKit's and pip's, not orchestrator's."""
    bust(session.fixtures.app_context)
    session.mark()
    mode.samples.append(session.measured(name, session.buildx_line(name, *args)))


def _check(build: engine.BuildRun, what: str) -> None:
    if not build.ok:
        raise RuntimeError(f"bench: {what} failed:\n{build.output[-3000:]}")
