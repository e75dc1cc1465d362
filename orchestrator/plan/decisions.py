"""The decisions every command makes the same way, written once.

A build's RUN steps, a bake target's, a `docker run` container and the wiring `orchestrate
env` prints all get the same answer to: does the proxy serve (the mode), which index do
installers use and with what settings, which CA bundle, which user, which ssh-agent, which
secrets. Where the answer depends on what reaches the proxy (a RUN step cannot join a
network, moby/buildkit#978; a container can), both rules stand side by side here
(``steps_*`` and ``container_*``), so a change to how the proxy is reached is made in one
place. Each command only renders the result: build args and secrets, mounts, variables.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Literal, Protocol, overload

from orchestrator import inputs
from orchestrator.errors import ProxyUnavailable
from orchestrator.facts.model import HostFacts, ProxyFacts
from orchestrator.plan import modes
from orchestrator.plan.containers import RunMode
from orchestrator.plan.model import EXPOSURE, Mode
from orchestrator.plan.settings import installer_settings
from orchestrator.profiles import BuildUser, Profile, ProxySettings, ResolvedProfile
from orchestrator.proxy.spec import CONTAINER_PORT
from orchestrator.urls import is_loopback, offline_url

# Where installers and tools look for a CA bundle: every one of them is pointed at ours.
CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
FALLBACK_UID = 1000  # the build user when the invoking user is root
PROXY_ONLY = (
    "pip and uv use only the proxy: pip's config files are ignored so no "
    "extra-index-url can bypass it (pip gives indexes no priority)"
)


class Decider(Protocol):
    """What a plan in the making records its decisions in."""

    def decide(self, topic: str, choice: str, reason: str) -> None: ...


# --- the mode ---------------------------------------------------------------------------------


@overload
def choose_mode(
    out: Decider,
    resolved: ResolvedProfile,
    proxy: ProxyFacts | None,
    *,
    no_proxy: bool,
    fallback: Literal["cache-mount"],
    keeps: str,
    unreachable: str | None = None,
) -> Mode: ...
@overload
def choose_mode(
    out: Decider,
    resolved: ResolvedProfile,
    proxy: ProxyFacts | None,
    *,
    no_proxy: bool,
    fallback: Literal["cache-volume"],
    keeps: str,
    unreachable: str | None = None,
) -> RunMode: ...
def choose_mode(
    out: Decider,
    resolved: ResolvedProfile,
    proxy: ProxyFacts | None,
    *,
    no_proxy: bool,
    fallback: Literal["cache-mount", "cache-volume"],
    keeps: str,
    unreachable: str | None = None,
) -> Mode | RunMode:
    """``proxy``, ``offline``, ``off`` or the caller's ``fallback``, recorded with its reason.

    ``keeps`` says what the fallback keeps (cache mounts, a cache volume); ``unreachable``
    why the caller's consumer could not reach a proxy that serves, if it could not.
    """
    settled = modes.preset(resolved, no_proxy=no_proxy)
    if settled is not None:
        mode: Mode | RunMode = "off" if settled.off else fallback
        out.decide("mode", mode, settled.reason)
        return mode
    why = _why_not(proxy, unreachable)
    if why is None and proxy is not None:
        mode = _serving(out, resolved.profile.proxy, proxy)
    elif resolved.profile.proxy.mode == "require":
        raise ProxyUnavailable(f"profile '{resolved.name}' requires the proxy: {why}")
    else:
        out.decide("mode", fallback, f"the proxy cannot serve ({why}); {keeps}")
        mode = fallback
    _exposure(out, resolved.profile.proxy)
    return mode


def _why_not(proxy: ProxyFacts | None, unreachable: str | None) -> str | None:
    if proxy is None:
        return "the proxy was not checked"
    if not proxy.healthy:
        return proxy.reason
    return unreachable


def _serving(
    out: Decider, settings: ProxySettings, proxy: ProxyFacts
) -> Literal["proxy", "offline"]:
    if proxy.offline and not settings.url:
        out.decide(
            "mode",
            "offline",
            f"the upstream is down ({proxy.offline}): the proxy serves only what it "
            "has cached, and asks the upstream nothing",
        )
        return "offline"
    out.decide("mode", "proxy", f"the proxy serves: {proxy.reason}")
    return "proxy"


_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - reading a setting, not binding


def _exposure(out: Decider, settings: ProxySettings) -> None:
    """A managed proxy published beyond loopback is a choice a team may make (one cache
    for its machines), never one to make silently: whoever reaches the port uses the
    cache and fills it. Said whenever the profile's proxy is in play, whether it serves
    this time or not: it is the profile's setting."""
    if settings.url or (settings.bind and ip_address(settings.bind).is_loopback):
        return
    bind = settings.bind
    host = f"[{bind}]" if ":" in bind else bind or "*"
    who = "this host" if bind in _WILDCARDS else bind
    out.decide(
        EXPOSURE,
        f"{host}:{settings.port}",
        f"every machine that reaches {who} can use (and fill) the proxy's cache; "
        "proxy.bind: 127.0.0.1 keeps it to this machine",
    )


# --- the index --------------------------------------------------------------------------------


def choose_index(
    out: Decider, settings: ProxySettings, mode: str, proxy_url: str | None
) -> tuple[str, dict[str, str]]:
    """The index installers use and the variables that point them there (none when it is
    PyPI, their default), for any mode but ``off``."""
    if mode in ("proxy", "offline"):
        assert proxy_url is not None, "a proxy mode always has the proxy's address"
        url = offline_url(proxy_url) if mode == "offline" else proxy_url
        out.decide("package index", url, PROXY_ONLY)
        return url, installer_settings(url, proxy=True)
    if settings.index_is_pypi:
        out.decide(
            "package index", "installers' own", "the upstream is PyPI, the installers' default"
        )
        return settings.index, {}
    out.decide("package index", settings.index, "the proxy's upstream, reached directly")
    return settings.index, installer_settings(settings.index, proxy=False)


# --- how RUN steps reach the proxy --------------------------------------------------------------


def steps_network(out: Decider, profile: Profile, mode: str) -> str:
    """``host`` or ``default``: one network in every mode, since the network is part of
    every RUN step's cache key and a switch between the proxy and the fallback must keep it."""
    if profile.network != "auto":
        out.decide("network", profile.network, "set by the profile")
        return profile.network
    choice, reason = _auto_steps_network(profile.proxy, mode)
    out.decide("network", choice, reason)
    return choice


def _auto_steps_network(settings: ProxySettings, mode: str) -> tuple[str, str]:
    if mode == "off":
        return "default", "the proxy is off"
    url = settings.url or settings.host_url
    if is_loopback(url):
        return "host", (
            f"the proxy ({url}) is published on the engine's loopback; host networking in "
            "every mode, so a switch to the fallback and back keeps the layer cache"
        )
    if is_loopback(settings.index):
        return "host", f"the upstream index ({settings.index}) is on loopback"
    return "default", "the proxy and the index are reached by address, not loopback"


def steps_proxy_url(
    out: Decider, settings: ProxySettings, facts: HostFacts, *, host_network: bool
) -> str:
    """The proxy's index URL as a RUN step of the docker driver sees it."""
    if settings.url:
        out.decide("proxy address", settings.url, "an external proxy, used as given")
        return settings.url
    if host_network:
        out.decide(
            "proxy address",
            settings.host_url,
            "the docker driver cannot join a custom network (moby/buildkit#978); "
            "with host networking the loopback-published port is reachable",
        )
        return settings.host_url
    if not is_loopback(settings.host_url):
        out.decide(
            "proxy address",
            settings.host_url,
            "published on a routable address (proxy.bind), which RUN steps reach from the "
            "default network",
        )
        return settings.host_url
    assert facts.bridge_gateway, "only a proxy published on the bridge is reached this way"
    url = f"http://{facts.bridge_gateway}:{settings.port}/index/"
    out.decide("proxy address", url, "the proxy is also published on the default bridge's gateway")
    return url


def builder_proxy_url(out: Decider, address: str) -> str:
    """The proxy's index URL as a RUN step of a container builder on its network sees it."""
    url = f"http://{address}:{CONTAINER_PORT}/index/"
    out.decide(
        "proxy address",
        url,
        "container names do not resolve inside RUN steps of a "
        "container builder (docker/buildx#2306); its IP on the shared network does",
    )
    return url


# --- how a container reaches the proxy ------------------------------------------------------


def container_proxy(out: Decider, settings: ProxySettings) -> tuple[str | None, str]:
    """The network a container joins (None: the engine's default) and the proxy's index
    URL from there: by name on the proxy's network, which a container, unlike a RUN step,
    can join."""
    if settings.url:
        if is_loopback(settings.url):
            out.decide(
                "network",
                "host",
                "the external proxy is on this machine's loopback, which "
                "only host networking reaches",
            )
            return "host", settings.url
        out.decide("network", "engine default", "the external proxy is reached by address")
        return None, settings.url
    out.decide(
        "network",
        settings.network,
        f"the proxy's network, where its container name '{settings.name}' resolves "
        "(containers, unlike RUN steps, can join it)",
    )
    return settings.network, f"http://{settings.name}:{CONTAINER_PORT}/index/"


def container_fallback_network(
    out: Decider, settings: ProxySettings, network_exists: bool | None
) -> str | None:
    """Without the proxy: what the container joins so it reaches the same services."""
    if is_loopback(settings.index):
        out.decide("network", "host", "the upstream index is on this machine's loopback")
        return "host"
    if not settings.url and network_exists:
        out.decide(
            "network",
            settings.network,
            "the proxy's network, as in proxy mode, so the container reaches the same "
            "services whichever mode it runs in",
        )
        return settings.network
    out.decide("network", "engine default", "no proxy network to join")
    return None


# --- what every consumer is handed ------------------------------------------------------------


def ca_bundle(out: Decider, profile: Profile, facts: HostFacts, how: str) -> Path | None:
    """The CA bundle installers are pointed at (``CA_VARIABLES``); ``how`` says how the
    consumer gets it."""
    path = profile.ca_bundle_path(facts.host_ca_bundle)
    if path is None:
        out.decide("CA bundle", "none", "off, or no host bundle found")
        return None
    out.decide("CA bundle", str(path), how)
    return path


def ca_variables(target: str) -> dict[str, str]:
    return dict.fromkeys(CA_VARIABLES, target)


def choose_user(profile: Profile, facts: HostFacts) -> tuple[BuildUser, str] | None:
    """The user builds and runs take (None with ``user: off``), and why: the invoking user,
    a stand-in for root, or the profile's; the profile's own USER_* build args win."""
    if profile.user == "off":
        return None
    if profile.user == "host":
        if facts.uid == 0:
            user = BuildUser(name="builder", uid=FALLBACK_UID, gid=FALLBACK_UID)
            reason = "the host user is root; a root user would defeat a non-root image"
        else:
            user = BuildUser(name=facts.user_name, uid=facts.uid, gid=facts.gid)
            reason = "the invoking user, so files in mounted volumes keep their owner"
    else:
        user, reason = profile.user, "given by the profile"
    args = profile.build_args
    uid, gid = args.get("USER_ID", ""), args.get("GROUP_ID", "")
    if args.get("USER_NAME") or uid.isdigit() or gid.isdigit():
        reason += "; the profile's USER_* build args win"
    return BuildUser(
        name=args.get("USER_NAME", user.name),
        uid=int(uid) if uid.isdigit() else user.uid,
        gid=int(gid) if gid.isdigit() else user.gid,
    ), reason


def ssh_socket(resolved: ResolvedProfile, facts: HostFacts) -> str | None:
    """The ssh-agent socket the profile forwards, or None when it forwards none."""
    if not resolved.profile.ssh:
        return None
    if not facts.ssh_auth_sock:
        raise inputs.no_agent(str(resolved.sources[0]))
    return facts.ssh_auth_sock


def check_secrets(resolved: ResolvedProfile, facts: HostFacts) -> None:
    """Every secret held in a variable needs that variable set."""
    for key, secret in resolved.profile.secrets.items():
        if secret.env is not None and secret.env not in facts.env_names:
            raise inputs.unset_variable(str(resolved.sources[0]), f"secrets.{key}.env", secret.env)
