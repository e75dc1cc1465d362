"""Planning a build: a resolved profile, its parsed Dockerfile and facts become one plan.

Nothing here touches the engine, the network or the file system, so every decision can
be unit-tested and shown by ``--dry-run`` exactly as it will be carried out. Each step
adds arguments and records the decision behind them, with a reason a person can check.
"""

from __future__ import annotations

import hashlib
import shlex

from orchestrator.dockerfile import ParsedDockerfile
from orchestrator.facts.model import BuilderFacts, HostFacts, ProxyFacts
from orchestrator.plan import handover
from orchestrator.plan.decisions import (
    builder_proxy_url,
    choose_index,
    choose_mode,
    steps_network,
    steps_proxy_url,
)
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
from orchestrator.plan.settings import cache_settings
from orchestrator.plan.steps import plan_rendering
from orchestrator.profiles import ResolvedProfile
from orchestrator.urls import is_loopback


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
        proxy_name=draft.profile.proxy.name if _proxy_front(draft) else "",
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
    proxy = draft.facts.proxy
    draft.mode = choose_mode(
        draft,
        draft.resolved,
        proxy,
        no_proxy=draft.options.no_proxy,
        fallback="cache-mount",
        keeps="locked BuildKit cache mounts keep packages from being downloaded twice",
        unreachable=_unreachable_reason(draft, proxy) if proxy and proxy.healthy else None,
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
    if settings.url or draft.facts.builder.driver == "docker":
        host_network = draft.network == "host"
        return steps_proxy_url(draft, settings, draft.facts, host_network=host_network)
    address = draft.facts.proxy.address if draft.facts.proxy else None
    assert address is not None, "_unreachable_reason sends an address-less proxy to the fallback"
    url = builder_proxy_url(draft, address)
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
    url = _proxy_url(draft) if draft.mode in ("proxy", "offline") else None
    draft.index_url, env = choose_index(draft, draft.profile.proxy, draft.mode, url)
    draft.env.update({**cache_settings(), **env})


def _plan_network(draft: Draft) -> None:
    """One network in every mode (``steps_network``); a container builder's is its own."""
    if draft.facts.builder.driver != "docker" and not draft.options.bake:
        draft.decide(
            "network", "builder's", "a container builder's network is set when it is created"
        )
        return
    if steps_network(draft, draft.profile, draft.mode) == "host":
        draft.network = "host"
        if not draft.options.bake:
            draft.args += ["--network", "host"]
