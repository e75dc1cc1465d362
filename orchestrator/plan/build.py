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
from orchestrator.plan.base_images import seed_stages
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
    PIP_BUSY_VARIABLE,
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
        seed_stages,
        _plan_builder,
        _plan_mode,
        _plan_builder_reach,
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
        bypasses=tuple(draft.bypasses),
        **_credentials(draft),
    )


def _credentials(draft: Draft) -> dict[str, str | None]:
    """Where the credentials of the URL that needs them are kept; never their value."""
    settings = draft.profile.proxy
    credentials = settings.credentials
    if credentials is None or draft.mode == "off":
        return {}
    return {
        "credentials_url": settings.url or settings.index,
        "credentials_source": credentials.source,
    }


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
        if _builder_route(draft) is not None:
            return None
        builder = draft.facts.builder
        where = f"network '{builder.network}'" if builder.network else "a network of its own"
        return (
            f"builder '{builder.name}' runs on {where}, from which its RUN steps do not reach "
            "the proxy: create one that does (prepare once) and name it in the profile"
        )
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


def _builder_route(draft: Draft) -> str | None:
    """How a container builder's RUN steps reach the proxy, if they do. They share the
    builder container's network (docker/buildx#2255: "host" inside the container, which
    needs no entitlement): ``address`` for an external proxy reached by address,
    ``host`` for a builder on the engine host's network (the loopback-published port),
    ``network`` for one on the managed proxy's network (its IP there: names do not
    resolve in RUN steps, docker/buildx#2306)."""
    settings = draft.profile.proxy
    builder = draft.facts.builder
    if settings.url and not is_loopback(settings.url):
        return "address"
    if builder.network == "host":
        return "host"
    address = draft.facts.proxy.address if draft.facts.proxy else None
    if not settings.url and builder.network == settings.network and address:
        return "network"
    return None


def _proxy_url(draft: Draft) -> str:
    """The proxy's index URL as a RUN step sees it, which depends on the builder."""
    settings = draft.profile.proxy
    route = _builder_route(draft)
    if draft.facts.builder.driver == "docker" or route == "address":
        host_network = draft.network == "host"
        return steps_proxy_url(draft, settings, draft.facts, host_network=host_network)
    if route == "host":
        url = settings.url or settings.host_url
        draft.decide(
            "proxy address",
            url,
            "the builder runs on the engine host's network (--driver-opt network=host): "
            "its RUN steps reach the loopback-published port",
        )
        return url
    address = draft.facts.proxy.address if draft.facts.proxy else None
    assert address is not None, "_unreachable_reason sends an address-less proxy to the fallback"
    return builder_proxy_url(draft, address)


def _plan_builder_reach(draft: Draft) -> None:
    """A container builder that cannot reach the proxy: the one to create, said once."""
    asked = draft.facts.proxy is not None and draft.facts.proxy.healthy
    if draft.facts.builder.driver == "docker" or not asked or _builder_route(draft):
        return
    name = draft.profile.builder or "orchestrator"
    create = ("docker", "buildx", "create", "--name", name, "--driver", "docker-container")
    draft.prepare.append((*create, "--driver-opt", "network=host"))
    draft.decide(
        "builder network",
        "host",
        f"create builder '{name}' once as shown, and name it in the profile (builder: {name}): "
        "on the host's network its RUN steps reach the proxy (buildx 0.13 and newer allow "
        "it, docker/buildx#2266)",
    )


def _plan_index(draft: Draft) -> None:
    if draft.mode == "off":
        return
    url = _proxy_url(draft) if draft.mode in ("proxy", "offline") else None
    draft.index_url, env = choose_index(draft, draft.profile.proxy, draft.mode, url)
    draft.env.update({**cache_settings(), **env})
    if draft.mode in ("proxy", "offline"):
        draft.env[PIP_BUSY_VARIABLE] = "skip"  # the proxy has the files: no pip waits


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
