"""Planning a build: a resolved profile, its parsed Dockerfile and facts become one plan.

Nothing here touches the engine, the network or the file system, so every decision can
be unit-tested and shown by ``--dry-run`` exactly as it will be carried out. Each step
adds arguments and records the decision behind them, with a reason a person can check.
"""

from __future__ import annotations

import hashlib
import shlex

from orchestrator.dockerfile import ParsedDockerfile
from orchestrator.errors import ProxyUnavailable
from orchestrator.facts.model import BuilderFacts, HostFacts, ProxyFacts
from orchestrator.plan import handover, modes
from orchestrator.plan.draft import Draft
from orchestrator.plan.model import (
    ENV_SECRET,
    ENV_VARIABLE,
    PIP_CONF_SECRET,
    PIP_CONF_VARIABLE,
    UV_TOML_SECRET,
    UV_TOML_VARIABLE,
    BuildOptions,
    BuildPlan,
)
from orchestrator.plan.settings import cache_settings, installer_settings
from orchestrator.plan.steps import plan_rendering
from orchestrator.profiles import ResolvedProfile
from orchestrator.urls import is_loopback, offline_url, redact

PROXY_CONTAINER_PORT = 5000


def plan_build(
    resolved: ResolvedProfile,
    parsed: ParsedDockerfile,
    facts: HostFacts,
    options: BuildOptions | None = None,
) -> BuildPlan:
    """Turn a profile, its Dockerfile and host facts into the exact build to run."""
    draft = Draft(resolved, parsed, facts, options or BuildOptions())
    for step in (
        _plan_builder,
        _plan_mode,
        _plan_network,
        _plan_index,
        handover.plan_ca,
        handover.plan_user,
        handover.plan_ssh,
        handover.plan_secrets,
        handover.plan_output,
    ):
        step(draft)
    rendered = plan_rendering(draft)
    return _finish(draft, rendered)


def _finish(draft: Draft, rendered: str | None) -> BuildPlan:
    profile = draft.profile
    rendered_path = None
    if rendered is not None:
        digest = hashlib.sha256(rendered.encode()).hexdigest()[:12]
        rendered_path = draft.facts.render_dir / f"{draft.resolved.name}-{digest}.Dockerfile"
    dockerfile = rendered_path or profile.dockerfile_path
    head = ["docker", "buildx", "build", "--file", str(dockerfile)]
    if profile.target:
        head += ["--target", profile.target]
    build_args = {**draft.build_args, **profile.build_args}
    for key, value in build_args.items():
        head += ["--build-arg", f"{key}={value}"]
    secret_env = _settings_secrets(draft)
    return BuildPlan(
        profile=draft.resolved.name,
        sources=draft.resolved.sources,
        mode=draft.mode,
        argv=(*head, *draft.args, str(profile.context)),
        context=profile.context,
        dockerfile=profile.dockerfile_path,
        tags=profile.tags,
        decisions=tuple(draft.decisions),
        index_url=draft.index_url,
        build_env=dict(draft.env),
        rendered_path=rendered_path,
        rendered_text=rendered,
        prepare=tuple(draft.prepare),
        build_args=build_args,
        secrets=tuple(draft.secrets),
        ssh=tuple(draft.ssh),
        labels=draft.labels,
        network=draft.network,
        secret_env=secret_env,
        files=dict(draft.files),
        proxy_front=_proxy_front(draft),
        outage=draft.facts.proxy.offline if draft.mode == "offline" and draft.facts.proxy else None,
    )


def _proxy_front(draft: Draft) -> str | None:
    """The managed proxy's URL from this machine, when the build goes through it."""
    settings = draft.profile.proxy
    return settings.host_url if draft.mode in ("proxy", "offline") and not settings.url else None


_SETTINGS = (
    (ENV_SECRET, ENV_VARIABLE),
    (PIP_CONF_SECRET, PIP_CONF_VARIABLE),
    (UV_TOML_SECRET, UV_TOML_VARIABLE),
)


def _settings_secrets(draft: Draft) -> dict[str, str]:
    """The secrets that carry the settings, fed from variables of the build's environment.

    Each secret the rendered Dockerfile mounts is passed in every mode, empty where a mode
    sets nothing, so the rendered text and its mounts stay the same when the mode changes.
    """
    contents = {
        ENV_SECRET: "".join(f"{k}={shlex.quote(v)}\n" for k, v in draft.env.items()),
        PIP_CONF_SECRET: draft.config_files.get("pip.conf", ""),
        UV_TOML_SECRET: draft.config_files.get("uv.toml", ""),
    }
    env = {}
    for secret, variable in _SETTINGS:
        if secret in draft.used_secrets:
            draft.secret(f"id={secret},env={variable}")
            env[variable] = contents[secret]
    return env


# --- where and how ----------------------------------------------------------------------


def _plan_builder(draft: Draft) -> None:
    profile = draft.profile
    builder = draft.facts.builder
    if profile.builder:
        draft.args += ["--builder", profile.builder]
    reason = "named by the profile" if profile.builder else "buildx's current builder"
    if not builder.checked:
        reason += "; not checked (the engine did not answer), capabilities assumed absent"
    draft.decide("builder", builder.label, reason)
    if builder.checked:
        draft.decide("frontend", _capabilities(builder), "probed by building tiny Dockerfiles")
    if profile.progress != "auto":
        draft.args += ["--progress", profile.progress]


def _capabilities(builder: BuilderFacts) -> str:
    """What the builder's Dockerfile frontend was seen to accept, as the plan relies on it."""
    found = {
        "heredocs": builder.heredocs,
        "variables in --mount": builder.mount_variables,
        "secrets as env": builder.secret_env,
    }
    return ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in found.items())


def _plan_mode(draft: Draft) -> None:
    settled = modes.preset(draft.resolved, no_proxy=draft.options.no_proxy)
    if settled is None:
        _choose_proxy_or_fallback(draft, draft.facts.proxy)
        return
    draft.mode = "off" if settled.off else "cache-mount"
    draft.decide("mode", draft.mode, settled.reason)


def _choose_proxy_or_fallback(draft: Draft, proxy: ProxyFacts | None) -> None:
    """The proxy if it serves and RUN steps can reach it; else say why and fall back."""
    if proxy is None:
        why: str | None = "the proxy was not checked"
    elif not proxy.healthy:
        why = proxy.reason
    else:
        why = _unreachable_reason(draft, proxy)
        if why is None and proxy.offline and not draft.profile.proxy.url:
            draft.mode = "offline"
            draft.decide(
                "mode",
                "offline",
                f"the upstream is down ({proxy.offline}): the proxy serves only what it "
                "has cached, and asks the upstream nothing",
            )
            return
        if why is None:
            draft.mode = "proxy"
            draft.decide("mode", "proxy", f"the proxy serves: {proxy.reason}")
            return
    if draft.profile.proxy.mode == "require":
        raise ProxyUnavailable(f"profile '{draft.resolved.name}' requires the proxy: {why}")
    draft.mode = "cache-mount"
    draft.decide(
        "mode",
        "cache-mount",
        f"the proxy cannot serve ({why}); "
        "locked BuildKit cache mounts keep packages from being downloaded twice",
    )


def _unreachable_reason(draft: Draft, proxy: ProxyFacts) -> str | None:
    """Why RUN steps could not reach a proxy that serves the host, if they could not."""
    settings = draft.profile.proxy
    loopback = is_loopback(settings.url or settings.host_url)
    if draft.facts.builder.driver != "docker":
        if settings.url:
            return "a container builder cannot reach this loopback URL" if loopback else None
        missing = proxy.address is None
        return f"it has no address on network '{settings.network}'" if missing else None
    if draft.options.bake and not _bake_host_network(draft) and loopback:
        if settings.bridge and draft.facts.bridge_gateway:
            return None
        return "this buildx cannot give bake targets host networking and proxy.bridge is off"
    if loopback and draft.profile.network == "default":
        return "network: default cannot reach the proxy on this machine's loopback"
    return None


def _bake_host_network(draft: Draft) -> bool:
    """Bake targets get host networking: an override attribute (buildx 0.17+) or, before,
    a compose file merged by target name (the only way 0.13 to 0.16 set a network)."""
    return draft.profile.network != "default"


def _proxy_url(draft: Draft) -> str:
    """The proxy's index URL as a RUN step sees it, which depends on the builder."""
    settings = draft.profile.proxy
    if settings.url:
        draft.decide("proxy address", redact(settings.url), "an external proxy, used as given")
        return settings.url
    if draft.facts.builder.driver == "docker":
        if draft.network == "host":
            draft.decide(
                "proxy address",
                settings.host_url,
                "the docker driver cannot join a custom network (moby/buildkit#978); "
                "with host networking the loopback-published port is reachable",
            )
            return settings.host_url
        url = f"http://{draft.facts.bridge_gateway}:{settings.port}/index/"
        draft.decide(
            "proxy address", url, "the proxy is also published on the default bridge's gateway"
        )
        return url
    address = draft.facts.proxy.address if draft.facts.proxy else None
    assert address is not None, "_unreachable_reason sends an address-less proxy to the fallback"
    url = f"http://{address}:{PROXY_CONTAINER_PORT}/index/"
    draft.decide(
        "proxy address",
        url,
        "container names do not resolve inside RUN steps of a "
        "container builder (docker/buildx#2306); its IP on the shared network does",
    )
    _plan_container_builder(draft)
    return url


def _plan_container_builder(draft: Draft) -> None:
    network = draft.profile.proxy.network
    name = draft.profile.builder or "orchestrator"
    if draft.profile.builder is None:
        draft.args += ["--builder", name]
    create = ("docker", "buildx", "create", "--name", name, "--driver", "docker-container")
    draft.prepare.append((*create, "--driver-opt", f"network={network}"))
    draft.decide(
        "builder network",
        network,
        "the builder must be created on the proxy's network; create it once as shown",
    )


def _plan_index(draft: Draft) -> None:
    if draft.mode == "off":
        return
    settings = draft.profile.proxy
    if draft.mode in ("proxy", "offline"):
        url = _proxy_url(draft)
        if draft.mode == "offline":
            url = offline_url(url)
        draft.index_url = url
        draft.env.update(installer_settings(url, proxy=True))
        draft.decide(
            "package index",
            redact(url),
            "pip and uv use only the proxy: pip's config files are ignored so no "
            "extra-index-url can bypass it (pip gives indexes no priority)",
        )
        return
    draft.index_url = settings.index
    if settings.index_is_pypi:
        draft.env.update(cache_settings())
        draft.decide(
            "package index", "installers' own", "the upstream is PyPI, the installers' default"
        )
        return
    draft.env.update(installer_settings(settings.index, proxy=False))
    draft.decide("package index", redact(settings.index), "the proxy's upstream, reached directly")


def _plan_network(draft: Draft) -> None:
    """One network in every mode: the network is part of every RUN step's cache key, so
    switching between the proxy and the fallback must not change it."""
    choice: str = draft.profile.network
    if draft.facts.builder.driver != "docker" and not draft.options.bake:
        draft.decide(
            "network", "builder's", "a container builder's network is set when it is created"
        )
        return
    if choice == "auto":
        choice, reason = _auto_network(draft)
    else:
        reason = "set by the profile"
    if choice == "host":
        draft.network = "host"
        if not draft.options.bake:
            draft.args += ["--network", "host"]
    draft.decide("network", choice, reason)


def _auto_network(draft: Draft) -> tuple[str, str]:
    settings = draft.profile.proxy
    if draft.mode == "off":
        return "default", "the proxy is off"
    url = settings.url or settings.host_url
    if is_loopback(url):
        return "host", (
            f"the proxy ({redact(url)}) is on this machine's loopback; host networking in "
            "every mode, so a switch to the fallback and back keeps the layer cache"
        )
    if is_loopback(settings.index):
        return "host", f"the upstream index ({redact(settings.index)}) is on loopback"
    return "default", "the proxy and the index are reached by address, not loopback"
