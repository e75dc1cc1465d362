"""Planning: a resolved profile, its parsed Dockerfile and facts about the host become one plan.

Nothing here touches the engine, the network or the file system, so every decision can
be unit-tested and shown by ``--dry-run`` exactly as it will be carried out. Each step
adds arguments and records the decision behind them, with a reason a person can check.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from orchestrator.dockerfile import (
    VARIABLE as _VARIABLE,
)
from orchestrator.dockerfile import (
    ParsedDockerfile,
    RunStep,
    RunWiring,
    expand,
    render,
)
from orchestrator.errors import BadInput, ProxyUnavailable
from orchestrator.profiles import BuildUser, Profile, ResolvedProfile
from orchestrator.urls import is_loopback, redact

PROFILE_LABEL = "io.orchestrator.profile"
ENV_SECRET = "orchestrator-env"
CA_SECRET = "orchestrator-ca"
ENV_VARIABLE = "ORCHESTRATE_BUILD_ENV"
FRESH_ARG = "ORCHESTRATE_FRESH"
CACHE_ROOT = "/var/cache/orchestrator"
PROXY_CONTAINER_PORT = 5000
USER_ARGS = ("USER_NAME", "USER_ID", "GROUP_ID")
FALLBACK_UID = 1000

Mode = Literal["proxy", "cache-mount", "off"]


@dataclass(frozen=True)
class Decision:
    """One choice the planner made, and why, for people reading ``--dry-run``."""

    topic: str
    choice: str
    reason: str


@dataclass(frozen=True)
class ProxyFacts:
    """What the planner needs to know about the proxy, gathered before planning."""

    healthy: bool
    reason: str
    address: str | None = None  # the container's IP on its network, for container builders


@dataclass(frozen=True)
class HostFacts:
    """What the planner needs to know about the machine, gathered before planning."""

    uid: int = 0
    gid: int = 0
    user_name: str = "root"
    ssh_auth_sock: str | None = None
    env_names: frozenset[str] = frozenset()
    builder_driver: str = "docker"
    proxy: ProxyFacts | None = None
    bridge_gateway: str | None = None
    render_dir: Path = Path("/nonexistent")
    fresh_token: str = "0"


@dataclass(frozen=True)
class BuildOptions:
    """Command-line choices that change a plan."""

    no_proxy: bool = False
    fresh: bool = False
    bake: bool = False  # planning one target of `docker buildx bake`


@dataclass(frozen=True)
class BuildPlan:
    """Everything `orchestrate build` will do, as data."""

    profile: str
    sources: tuple[Path, ...]
    mode: Mode
    argv: tuple[str, ...]
    context: Path
    dockerfile: Path
    tags: tuple[str, ...]
    decisions: tuple[Decision, ...]
    index_url: str | None = None
    build_env: Mapping[str, str] = field(default_factory=dict)
    rendered_path: Path | None = None
    rendered_text: str | None = None
    prepare: tuple[tuple[str, ...], ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def bake_target(self) -> dict[str, Any]:
        """The same wiring as a bake target override (buildx 0.13 JSON keys)."""
        target: dict[str, Any] = {
            "dockerfile": str(self.rendered_path or self.dockerfile),
            "args": dict(self.build_args),
            "labels": dict(self.labels),
            "output": ["type=docker"],
        }
        if self.secrets:
            target["secret"] = list(self.secrets)
        if self.ssh:
            target["ssh"] = list(self.ssh)
        return target

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def mode_reason(self) -> str:
        return next((d.reason for d in self.decisions if d.topic == "mode"), "")

    @property
    def secret_env(self) -> dict[str, str]:
        """Process environment the build needs: the build settings, fed to a secret."""
        if not self.build_env:
            return {}
        return {ENV_VARIABLE: "".join(f"{k}={shlex.quote(v)}\n" for k, v in self.build_env.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "sources": [str(s) for s in self.sources],
            "mode": self.mode,
            "index_url": redact(self.index_url or "") or None,
            "context": str(self.context),
            "dockerfile": str(self.dockerfile),
            "rendered_dockerfile": str(self.rendered_path) if self.rendered_path else None,
            "tags": list(self.tags),
            "decisions": [asdict(d) for d in self.decisions],
            "build_env": {k: redact(v) for k, v in self.build_env.items()},
            "prepare": [list(p) for p in self.prepare],
            "argv": list(self.argv),
            "command": self.command_line,
        }


@dataclass
class _Draft:
    """The plan while it is being made."""

    resolved: ResolvedProfile
    parsed: ParsedDockerfile
    facts: HostFacts
    options: BuildOptions
    args: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    build_user: BuildUser | None = None
    secrets: list[str] = field(default_factory=list)
    ssh: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    mode: Mode = "off"
    index_url: str | None = None
    prepare: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def profile(self) -> Profile:
        return self.resolved.profile

    def decide(self, topic: str, choice: str, reason: str) -> None:
        self.decisions.append(Decision(topic, redact(choice), redact(reason)))

    def secret(self, spec: str) -> None:
        self.secrets.append(spec)
        self.args += ["--secret", spec]


def plan_build(
    resolved: ResolvedProfile,
    parsed: ParsedDockerfile,
    facts: HostFacts,
    options: BuildOptions | None = None,
) -> BuildPlan:
    """Turn a profile, its Dockerfile and host facts into the exact build to run."""
    draft = _Draft(resolved, parsed, facts, options or BuildOptions())
    for step in (
        _plan_builder,
        _plan_mode,
        _plan_network,
        _plan_index,
        _plan_ca,
        _plan_user,
        _plan_ssh,
        _plan_secrets,
        _plan_output,
    ):
        step(draft)
    rendered = _plan_rendering(draft)
    return _finish(draft, rendered)


def _finish(draft: _Draft, rendered: str | None) -> BuildPlan:
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
    if draft.env:
        draft.secret(f"id={ENV_SECRET},env={ENV_VARIABLE}")
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
    )


# --- where and how ----------------------------------------------------------------------


def _plan_builder(draft: _Draft) -> None:
    profile = draft.profile
    if profile.builder:
        draft.args += ["--builder", profile.builder]
    driver = draft.facts.builder_driver
    draft.decide(
        "builder",
        f"{profile.builder or 'current'} ({driver} driver)",
        "named by the profile" if profile.builder else "buildx's current builder",
    )
    if profile.progress != "auto":
        draft.args += ["--progress", profile.progress]


def _plan_mode(draft: _Draft) -> None:
    settings = draft.profile.proxy
    proxy = draft.facts.proxy
    if settings.mode == "off":
        draft.mode = "off"
        draft.decide("mode", "off", "the profile sets proxy: off; package installs are not wired")
    elif draft.options.no_proxy:
        if settings.mode == "require":
            raise BadInput(
                f"{draft.resolved.sources[0]}: field 'proxy.mode' is require, "
                "which --no-proxy contradicts"
            )
        draft.mode = "cache-mount"
        draft.decide("mode", "cache-mount", "--no-proxy forces the fallback")
    else:
        _choose_proxy_or_fallback(draft, proxy)


def _choose_proxy_or_fallback(draft: _Draft, proxy: ProxyFacts | None) -> None:
    """The proxy if it serves and RUN steps can reach it; else say why and fall back."""
    if proxy is None:
        why: str | None = "the proxy was not checked"
    elif not proxy.healthy:
        why = proxy.reason
    else:
        why = _unreachable_reason(draft, proxy)
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


def _unreachable_reason(draft: _Draft, proxy: ProxyFacts) -> str | None:
    """Why RUN steps could not reach a proxy that serves the host, if they could not."""
    settings = draft.profile.proxy
    loopback = is_loopback(settings.url or settings.host_url)
    if draft.options.bake:
        return _unreachable_from_bake(draft, loopback=loopback)
    if draft.facts.builder_driver != "docker":
        if settings.url:
            return "a container builder cannot reach this loopback URL" if loopback else None
        missing = proxy.address is None
        return f"it has no address on network '{settings.network}'" if missing else None
    if loopback and draft.profile.network == "default":
        return "network: default cannot reach the proxy on this machine's loopback"
    return None


def _unreachable_from_bake(draft: _Draft, *, loopback: bool) -> str | None:
    settings = draft.profile.proxy
    if settings.url:
        return "bake builds run on the default bridge, away from loopback" if loopback else None
    if settings.bridge and draft.facts.bridge_gateway:
        return None
    return (
        "bake builds run on the default bridge and the proxy is published on "
        "loopback only: set proxy.bridge: true"
    )


def _proxy_url(draft: _Draft) -> str:
    """The proxy's index URL as a RUN step sees it, which depends on the builder."""
    settings = draft.profile.proxy
    if settings.url:
        draft.decide("proxy address", redact(settings.url), "an external proxy, used as given")
        return settings.url
    if draft.options.bake:
        url = f"http://{draft.facts.bridge_gateway}:{settings.port}/index/"
        draft.decide(
            "proxy address",
            url,
            "the proxy is also published on the default bridge's gateway, which bake builds reach",
        )
        return url
    if draft.facts.builder_driver == "docker":
        draft.decide(
            "proxy address",
            settings.host_url,
            "the docker driver cannot join a custom network (moby/buildkit#978); "
            "with host networking the loopback-published port is reachable",
        )
        return settings.host_url
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


def _plan_container_builder(draft: _Draft) -> None:
    network = draft.profile.proxy.network
    name = draft.profile.builder or "orchestrator"
    if draft.profile.builder is None:
        draft.args += ["--builder", name]
    draft.prepare.append(
        (
            "docker",
            "buildx",
            "create",
            "--name",
            name,
            "--driver",
            "docker-container",
            "--driver-opt",
            f"network={network}",
        )
    )
    draft.decide(
        "builder network",
        network,
        "the builder must be created on the proxy's network; create it once as shown",
    )


def _plan_index(draft: _Draft) -> None:
    settings = draft.profile.proxy
    if draft.mode == "off":
        return
    url = _proxy_url(draft) if draft.mode == "proxy" else settings.index
    draft.index_url = url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    draft.env.update({"PIP_INDEX_URL": url, "UV_DEFAULT_INDEX": url, "UV_INDEX_URL": url})
    if parts.scheme == "http":
        name = parts.hostname or host
        trusted = f"[{name}]" if ":" in name else name
        draft.env.update({"PIP_TRUSTED_HOST": trusted, "UV_INSECURE_HOST": host})
    if draft.mode == "proxy":
        # The proxy is the cache: pip's and uv's own would only be copied into the layer.
        draft.env.update(
            {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_CACHE_DIR": "1", "UV_NO_CACHE": "1"}
        )
        draft.decide(
            "package index",
            redact(url),
            "pip and uv use only the proxy; pip config "
            "files are ignored so no extra-index-url can bypass it (pip gives indexes "
            "no priority); their own caches are off, as the proxy is the cache and "
            "theirs would only be copied into the layer",
        )
    else:
        draft.decide("package index", redact(url), "the proxy's upstream, reached directly")


def _plan_network(draft: _Draft) -> None:
    choice = draft.profile.network
    if draft.options.bake:
        draft.decide(
            "network",
            "default",
            "bake has no network attribute before buildx 0.17, "
            "so its builds run on the default bridge",
        )
        return
    if draft.facts.builder_driver != "docker":
        draft.decide(
            "network", "builder's", "a container builder's network is set when it is created"
        )
        return
    if choice == "auto":
        url = _probable_index(draft)
        choice = "host" if url and is_loopback(url) else "default"
        reason = (
            f"{redact(url or '')} is on this machine's loopback"
            if choice == "host"
            else "the index is reachable through the default bridge"
        )
    else:
        reason = "set by the profile"
    if choice == "host":
        draft.args += ["--network", "host"]
    draft.decide("network", choice, reason)


def _probable_index(draft: _Draft) -> str | None:
    settings = draft.profile.proxy
    if draft.mode == "proxy":
        return settings.url or settings.host_url
    return settings.index if draft.mode == "cache-mount" else None


# --- what the build gets ------------------------------------------------------------------


def _plan_ca(draft: _Draft) -> None:
    path = draft.profile.ca_bundle_path()
    if path is None:
        draft.decide("CA bundle", "none", "off, or no host bundle found")
        return
    draft.secret(f"id={CA_SECRET},src={path}")
    target = f"/run/secrets/{CA_SECRET}"
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        draft.env[name] = target
    draft.decide("CA bundle", str(path), "mounted into RUN steps as a secret, never a layer")


def _plan_user(draft: _Draft) -> None:
    setting = draft.profile.user
    if setting == "off":
        draft.decide("build user", "off", "the profile sets user: off")
        return
    if setting == "host":
        facts = draft.facts
        if facts.uid == 0:
            user = BuildUser(name="builder", uid=FALLBACK_UID, gid=FALLBACK_UID)
            reason = "the host user is root; a root build user would defeat a non-root image"
        else:
            user = BuildUser(name=facts.user_name, uid=facts.uid, gid=facts.gid)
            reason = "the invoking user, so files in mounted volumes keep their owner"
    else:
        user, reason = setting, "given by the profile"
    user = _with_profile_overrides(user, draft.profile.build_args)
    draft.build_user = user
    values = dict(zip(USER_ARGS, (user.name, str(user.uid), str(user.gid)), strict=True))
    declared = [name for name in USER_ARGS if draft.parsed.declares(name)]
    draft.build_args.update({name: values[name] for name in declared})
    passed = ", ".join(f"{n}={values[n]}" for n in declared) or "none declared by the Dockerfile"
    draft.decide("build user", passed, reason)


def _with_profile_overrides(user: BuildUser, build_args: Mapping[str, str]) -> BuildUser:
    """The profile's own USER_* build args win, so mounts must use their values too."""
    uid, gid = build_args.get("USER_ID", ""), build_args.get("GROUP_ID", "")
    return BuildUser(
        name=build_args.get("USER_NAME", user.name),
        uid=int(uid) if uid.isdigit() else user.uid,
        gid=int(gid) if gid.isdigit() else user.gid,
    )


def _plan_ssh(draft: _Draft) -> None:
    if not draft.profile.ssh:
        return
    sock = draft.facts.ssh_auth_sock
    if not sock:
        raise BadInput(
            f"{draft.resolved.sources[0]}: field 'ssh' is true but no ssh-agent "
            "socket was found: start one (eval $(ssh-agent); ssh-add) so "
            "SSH_AUTH_SOCK is set"
        )
    draft.ssh.append(f"default={sock}")
    draft.args += ["--ssh", f"default={sock}"]
    draft.decide(
        "ssh", f"default={sock}", "the profile forwards the ssh-agent; keys stay on the host"
    )


def _plan_secrets(draft: _Draft) -> None:
    for key, secret in draft.profile.secrets.items():
        if secret.env is not None:
            if secret.env not in draft.facts.env_names:
                raise BadInput(
                    f"{draft.resolved.sources[0]}: field 'secrets.{key}.env': "
                    f"environment variable {secret.env} is not set"
                )
            draft.secret(f"id={key},env={secret.env}")
        else:
            draft.secret(f"id={key},src={secret.file}")
    if draft.profile.secrets:
        draft.decide("secrets", ", ".join(draft.profile.secrets), "passed as BuildKit secrets")


def _plan_output(draft: _Draft) -> None:
    profile = draft.profile
    labels = {**profile.labels, PROFILE_LABEL: draft.resolved.name}
    draft.labels = labels
    for key, value in labels.items():
        draft.args += ["--label", f"{key}={value}"]
    for tag in profile.tags:
        draft.args += ["--tag", tag]
    if profile.platforms:
        draft.args += ["--platform", ",".join(profile.platforms)]
    if len(profile.platforms) > 1:
        draft.decide(
            "output",
            "build cache only",
            "a multi-platform image cannot be loaded into the engine's image store",
        )
        return
    draft.args.append("--load")
    draft.decide(
        "output", "load into the engine", "so `docker run` and `docker image inspect` see it"
    )


# --- the rendered Dockerfile ----------------------------------------------------------------


def _plan_rendering(draft: _Draft) -> str | None:
    """Render a build-time copy when RUN steps need mounts or settings, else build as is."""
    after_from: list[str] = []
    if draft.options.fresh:
        after_from.append(f"ARG {FRESH_ARG}")
        draft.build_args[FRESH_ARG] = draft.facts.fresh_token
        draft.decide(
            "fresh",
            "every RUN step rebuilt",
            f"a new {FRESH_ARG} per build; plain --no-cache would also empty the cache "
            "mounts (moby/buildkit#2447), and so would --no-cache-filter on BuildKit 0.8",
        )
    wiring = {run.line: w for run in draft.parsed.runs if (w := _wire_run(draft, run))}
    if not wiring and not after_from:
        draft.decide("Dockerfile", "used as is", "no RUN step needs wiring")
        return None
    draft.decide(
        "Dockerfile",
        f"rendered copy ({len(wiring)} RUN steps wired)",
        "mount values must be literals (moby/buildkit#1173, uid=${VAR} does not parse); "
        "the user's file is never modified",
    )
    return render(draft.parsed, wiring, after_from)


def _wire_run(draft: _Draft, run: RunStep) -> RunWiring | None:
    if run.exec_form or run.heredoc:
        if draft.env or (draft.mode == "cache-mount" and run.installs_packages):
            form = "an exec-form RUN has no shell" if run.exec_form else "a heredoc RUN has no "
            draft.decide(
                f"RUN line {run.line}",
                "not wired",
                f"{form if run.exec_form else form + 'command line'} to load settings into; "
                "write it as a plain RUN in shell form",
            )
        return None
    flags = tuple(_fix_mount(flag, draft, run) for flag in run.flags)
    mounts: list[str] = []
    prefix = ""
    if draft.env:
        mounts.append(f"--mount=type=secret,id={ENV_SECRET},mode=0444")
        if "PIP_CERT" in draft.env:
            mounts.append(f"--mount=type=secret,id={CA_SECRET},mode=0444")
        prefix = f"set -a; . /run/secrets/{ENV_SECRET}; set +a; "
    if draft.mode == "cache-mount" and run.installs_packages:
        cache_mounts, cache_prefix = _cache_mounts(draft, run)
        mounts += cache_mounts
        prefix += cache_prefix
    if flags == run.flags and not mounts:
        return None
    return RunWiring(flags=flags, mounts=tuple(mounts), prefix=prefix)


_OWNED_MOUNTS = ("type=ssh", "type=secret", "type=cache")


def _fix_mount(flag: str, draft: _Draft, run: RunStep) -> str:
    """Make a user's own --mount work as written for a non-root RUN on BuildKit's frontend.

    Variables in mount options are replaced by their literal values (the frontend rejects
    ``uid=${USER_ID}`` and does not expand a target), and ssh, secret and cache mounts get
    the RUN user's uid and gid, without which that user cannot use them (moby/moby#47415).
    """
    if not flag.startswith("--mount="):
        return flag
    fixed = _literal_mount(flag, draft, run)
    options = _mount_options(fixed)
    if f"type={options.get('type', 'bind')}" not in _OWNED_MOUNTS:
        return fixed
    owner = _run_owner(draft, run)
    if owner is None or owner == (0, 0):
        return fixed
    missing = [
        f"{key}={value}"
        for key, value in zip(("uid", "gid"), owner, strict=True)
        if key not in options
    ]
    return ",".join([fixed, *missing]) if missing else fixed


def _mount_options(flag: str) -> dict[str, str]:
    """``--mount=type=cache,id=x,ro`` as ``{"type": "cache", "id": "x", "ro": ""}``."""
    pairs = (item.partition("=") for item in flag.removeprefix("--mount=").split(","))
    return {key: value for key, _, value in pairs}


def _literal_mount(flag: str, draft: _Draft, run: RunStep) -> str:
    if "$" not in flag:
        return flag
    variables = _variables(draft)
    names = {m.group(1) or m.group(3) for m in _VARIABLE.finditer(flag)}
    unknown = sorted(names - set(variables))
    if unknown:
        draft.decide(
            f"RUN line {run.line}",
            "mount left as written",
            f"no value known for {', '.join(unknown)}; BuildKit will not expand it",
        )
        return flag
    draft.decide(
        f"RUN line {run.line}",
        "mount variables made literal",
        "BuildKit's frontend does not expand variables in --mount options",
    )
    return expand(flag, variables)


def _variables(draft: _Draft) -> dict[str, str]:
    return {**draft.parsed.arg_defaults, **draft.build_args, **draft.profile.build_args}


def _cache_mounts(draft: _Draft, run: RunStep) -> tuple[list[str], str]:
    owner = _run_owner(draft, run)
    if owner is None:
        draft.decide(
            f"RUN line {run.line}",
            "cache owned by root",
            f"cannot tell the uid of USER {run.user}; give the profile a user: setting",
        )
        owner = (0, 0)
    uid, gid = owner
    mounts, exports = [], []
    for tool, env_name in (
        ("pip", "PIP_CACHE_DIR"),
        ("uv", "UV_CACHE_DIR"),
        ("poetry", "POETRY_CACHE_DIR"),
    ):
        target = f"{CACHE_ROOT}/{tool}"
        mounts.append(
            f"--mount=type=cache,id={draft.profile.cache_namespace}-{tool}-{uid},target={target},"
            f"uid={uid},gid={gid},sharing=locked"
        )
        exports.append(f"{env_name}={target}")
    if run.disables_pip_cache:
        draft.decide(
            f"RUN line {run.line}",
            "cache defeated",
            "--no-cache-dir (or PIP_NO_CACHE_DIR) stops pip from using the cache mount",
        )
    return mounts, f"export {' '.join(exports)}; "


def _run_owner(draft: _Draft, run: RunStep) -> tuple[int, int] | None:
    """The uid and gid a RUN step runs as, when the Dockerfile and build args tell."""
    name, _, group = expand(run.user, _variables(draft)).partition(":")
    user = draft.build_user
    if name in ("", "root", "0"):
        return 0, 0
    if user is not None and name in (user.name, str(user.uid)):
        return user.uid, user.gid
    if name.isdigit():
        return int(name), int(group) if group.isdigit() else int(name)
    return None


def render_text(plan: BuildPlan, *, command: bool = True) -> str:
    """The human-readable plan printed by ``--dry-run``."""
    lines = [
        f"profile:    {plan.profile} ({', '.join(str(s) for s in plan.sources)})",
        f"mode:       {plan.mode}",
        f"context:    {plan.context}",
        f"dockerfile: {plan.dockerfile}",
        f"rendered:   {plan.rendered_path or '(none: the Dockerfile is used as is)'}",
        f"tags:       {', '.join(plan.tags) or '(none)'}",
        "decisions:",
        *(f"  - {d.topic}: {d.choice} ({d.reason})" for d in plan.decisions),
    ]
    if plan.build_env:
        lines += [
            "build settings (secret, never a layer):",
            *(f"  {k}={redact(v)}" for k, v in plan.build_env.items()),
        ]
    if plan.prepare:
        lines += ["prepare once:", *(f"  {shlex.join(p)}" for p in plan.prepare)]
    if plan.rendered_text is not None:
        changed = [
            line
            for line in plan.rendered_text.splitlines()
            if f"id={ENV_SECRET}" in line or "id=orchestrator-" in line or FRESH_ARG in line
        ]
        lines += ["rendered steps:", *(f"  {line}" for line in changed)]
    if not command:
        return "\n".join(lines)
    lines += [
        "command:",
        f"  {ENV_VARIABLE}=... {plan.command_line}" if plan.build_env else f"  {plan.command_line}",
    ]
    return "\n".join(lines)
